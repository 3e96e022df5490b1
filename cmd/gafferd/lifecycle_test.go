package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
