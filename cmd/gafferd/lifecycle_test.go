package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// An essential job that gives up (restart = never and a failed exit)
// makes gafferd stop every job gracefully and exit 1, with nothing left.
func TestEssentialJobMakesGafferdExit1(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig + `
[process:db]
cmd = sh -c 'echo $$ > db.pid; exec sleep 300'
ready = exec:test -s db.pid

[process:app]
cmd = sh -c 'echo $$ > app.pid; exec sleep 300'
depends_on = db

[process:migrate]
cmd = sh -c 'sleep 2; exit 3'
depends_on = db:ready
restart = never
essential = true
`
	d := startDaemon(t, dir, cfg)
	var pids []int
	d.waitFor(10*time.Second, "db and app running", func() bool {
		pids = nil
		for _, f := range []string{"db.pid", "app.pid"} {
			data, err := os.ReadFile(filepath.Join(dir, f))
			n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
			if err != nil || n == 0 {
				return false
			}
			pids = append(pids, n)
		}
		return true
	})
	select {
	case <-d.Done:
	case <-time.After(30 * time.Second):
		t.Fatal("gafferd did not exit after its essential job gave up")
	}
	if code := d.Code(); code != 1 {
		t.Fatalf("gafferd exited with %d, want 1:\n%s", code, d.output())
	}
	out := d.output()
	if !strings.Contains(out, "the essential job default.migrate gave up") {
		t.Fatalf("no reason given:\n%s", out)
	}
	for _, p := range pids {
		if processAlive(p) {
			t.Fatalf("process %d survived gafferd", p)
		}
	}
	// Dependents first: app was stopped before db.
	iApp, iDB := strings.Index(out, "default.app | stop_process"), strings.Index(out, "default.db | stop_process")
	if iApp < 0 || iDB < 0 || iApp > iDB {
		t.Fatalf("stop order:\n%s", out)
	}
}

// Jobs loaded through the API with lifecycle settings come back after a
// restart of gafferd with their settings, dependencies first, and wait
// for them again.
func TestLifecycleSettingsSurviveRestart(t *testing.T) {
	dir, script := stSetup(t)
	g := stStart(t, dir)
	flag := filepath.Join(dir, "db-ready")
	g.must("POST", "/jobs/api", fmt.Sprintf(`{"name": "db", "cmd": %q, "ready": "exec:test -e %s", "ready_timeout": 60, "restart_delay": [1, 30], "health": "exec:true"}`, script, flag))
	g.must("POST", "/jobs/api", fmt.Sprintf(`{"name": "web", "cmd": %q, "depends_on": ["db:healthy"], "restart": "on-failure", "success_exit_codes": [0, 3]}`, script))
	var web map[string]any
	web = g.must("GET", "/jobs/api/web", "")
	if web["state"] != "waiting" || !strings.Contains(fmt.Sprint(web["waiting_for"]), "api.db:healthy") {
		t.Fatalf("web before db is ready: %v", web)
	}
	os.WriteFile(flag, nil, 0o644)
	g.waitFor(20*time.Second, "web running", func() bool { return g.pids("api.web") == 1 })
	os.Remove(flag)
	g.stop(syscall.SIGTERM)

	g = stStart(t, dir)
	// The saved jobs are restored once the API is open: until the start
	// step has run, they are listed as not_started.
	g.waitFor(20*time.Second, "the saved jobs started", func() bool {
		web = g.must("GET", "/jobs/api/web", "")
		return web["state"] != "not_started"
	})
	cfg, _ := web["config"].(map[string]any)
	if fmt.Sprint(cfg["depends_on"]) != "[db:healthy]" || cfg["restart"] != "on-failure" || fmt.Sprint(cfg["success_exit_codes"]) != "[0 3]" {
		t.Fatalf("web's config after the restart: %v", cfg)
	}
	db := g.must("GET", "/jobs/api/db", "")
	dcfg, _ := db["config"].(map[string]any)
	if fmt.Sprint(dcfg["restart_delay"]) != "[1 30]" || dcfg["ready_timeout"] != float64(60) || db["state"] != "starting" {
		t.Fatalf("db after the restart: %v", db)
	}
	if web["state"] != "waiting" {
		t.Fatalf("web after the restart: %v", web["state"])
	}
	os.WriteFile(flag, nil, 0o644)
	g.waitFor(20*time.Second, "web running again", func() bool { return g.pids("api.web") == 1 })
}

// A reload whose changes touch dependencies applies them in an order that
// works: dependents unload first, a removed dependency goes once the job
// that used it no longer does, additions come before their dependents.
func TestReloadWithDependencies(t *testing.T) {
	dir := t.TempDir()
	v1 := baseConfig + `
[process:db]
cmd = sleep 300
[process:app]
cmd = sleep 300
depends_on = db:started
[process:old]
cmd = sleep 300
depends_on = db:started
`
	d := startDaemon(t, dir, v1)
	d.waitFor(10*time.Second, "app running", func() bool { return d.job("default.app").Running == 1 })
	v2 := baseConfig + `
[process:app]
cmd = sleep 301
depends_on = cache:started
[process:cache]
cmd = sleep 300
`
	os.WriteFile(filepath.Join(dir, "gaffer.ini"), []byte(strings.ReplaceAll(v2, "%SOCK%", d.sock)), 0o644)
	resp, err := d.client.Post("http://localhost/reload", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	var jobs struct{ Jobs []string }
	d.getJSON("/jobs", &jobs)
	if strings.Join(jobs.Jobs, ",") != "default.app,default.cache" {
		t.Fatalf("jobs after the reload: %v", jobs.Jobs)
	}
	d.waitFor(10*time.Second, "app running again", func() bool {
		j := d.job("default.app")
		return j.Running == 1 && j.Config["cmd"] == "sleep 301"
	})
}
