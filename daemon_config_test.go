package gaffer

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testDaemon is a Daemon running in the test process on a configuration
// (file or directory), listening on a loopback port.
type testDaemon struct {
	*Daemon
	url  string
	log  *authLogBuffer
	stop func()
}

func runTestDaemon(t *testing.T, configPath string) *testDaemon {
	t.Helper()
	logs := &authLogBuffer{}
	d, err := NewDaemon(DaemonOptions{ConfigPath: configPath, Binds: []string{"127.0.0.1:0"},
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("daemon: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not start")
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("the daemon did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return &testDaemon{Daemon: d, url: "http://" + d.Addrs()[0].String(), log: logs, stop: stop}
}

func (d *testDaemon) post(t *testing.T, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(d.url+path, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var v map[string]any
	json.Unmarshal(data, &v)
	return resp.StatusCode, v
}

// testChildINI is a process section running the test binary in a mode.
func testChildINI(t *testing.T, name, mode string, extra string) string {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return "[process:" + name + "]\ncmd = " + self + "\nenv:GAFFER_TEST_CHILD = " + mode + "\ngraceful_timeout = 5\n" + extra
}

// A reload in directory mode whose gafferd.ini went missing (or cannot be
// read) is a 400 that changes nothing, as in file mode; it used to unload
// every job of the file.
func TestReloadWithoutTheConfigFileChangesNothing(t *testing.T) {
	dir := t.TempDir()
	ini := filepath.Join(dir, "gafferd.ini")
	os.WriteFile(ini, []byte(testChildINI(t, "a", "sleep", "")+testChildINI(t, "s:b", "sleep", "")), 0o644)
	d := runTestDaemon(t, dir)
	waitFor(t, 10*time.Second, "the file's jobs to run", func() bool {
		a, _ := d.Manager.Pids("default.a")
		b, _ := d.Manager.Pids("s.b")
		return len(a) == 1 && len(b) == 1
	})
	before, _ := d.Manager.Pids("")
	check := func(what string) {
		t.Helper()
		for _, path := range []string{"/reload", "/reload?dry_run=1"} {
			code, v := d.post(t, path)
			reason, _ := v["reason"].(string)
			if code != 400 || v["error"] != CodeInvalidConfig || !strings.Contains(reason, "gafferd.ini") {
				t.Errorf("%s: POST %s answered %d %v, want 400 invalid_config naming gafferd.ini", what, path, code, v)
			}
		}
		if _, err := d.Reload(false); err == nil {
			t.Errorf("%s: a reload (SIGHUP) succeeded", what)
		}
		jobs, _ := d.Manager.Jobs("")
		if strings.Join(jobs, ",") != "default.a,s.b" {
			t.Errorf("%s: jobs are now %v", what, jobs)
		}
		if after, _ := d.Manager.Pids(""); len(after) != len(before) || after[0] != before[0] || after[1] != before[1] {
			t.Errorf("%s: processes %v, were %v", what, after, before)
		}
	}
	os.Remove(ini)
	check("gafferd.ini removed")
	os.Mkdir(ini, 0o755) // a directory in its place: exists, cannot be read
	check("gafferd.ini unreadable")
	os.Remove(ini)

	// The file back, with one job removed: the reload applies again.
	os.WriteFile(ini, []byte(testChildINI(t, "a", "sleep", "")), 0o644)
	if code, v := d.post(t, "/reload"); code != 200 || len(v["removed"].([]any)) != 1 {
		t.Fatalf("reload with the file back: %d %v", code, v)
	}
}

// The limits are read at start: a reload whose jobs exceed the limits in
// force is refused as a whole, before anything changes.
func TestReloadOverTheLimitsInForceChangesNothing(t *testing.T) {
	dir := t.TempDir()
	ini := filepath.Join(dir, "gaffer.ini")
	os.WriteFile(ini, []byte(testChildINI(t, "a", "sleep", "numprocesses = 0\n")), 0o644)
	d := runTestDaemon(t, ini)
	os.WriteFile(ini, []byte("[gaffer]\nmax_processes = 2000\n"+testChildINI(t, "a", "sleep", "numprocesses = 0\n")+
		testChildINI(t, "big", "sleep", "numprocesses = 1500\nstart = false\n")), 0o644)
	code, v := d.post(t, "/reload")
	reason, _ := v["reason"].(string)
	if code != 400 || !strings.Contains(reason, "default.big: numprocesses: 1500 processes is more than max_processes, the limit of 1024") {
		t.Fatalf("reload over the limits: %d %v", code, v)
	}
	if jobs, _ := d.Manager.Jobs(""); len(jobs) != 1 {
		t.Fatalf("jobs after a refused reload: %v", jobs)
	}
	if !strings.Contains(d.log.String(), "apply at the next start") {
		t.Errorf("no warning about the changed limits:\n%s", d.log)
	}
}

// A state saved under higher limits is held to the limits in force at
// start: the saved version over them is not restored (a file job loads as
// the file says), it is logged, and the state file is copied.
func TestRestoreHeldToTheLimitsInForce(t *testing.T) {
	dir := t.TempDir()
	ini := filepath.Join(dir, "gaffer.ini")
	os.WriteFile(ini, []byte("[gaffer]\nmax_processes = 10\n"+testChildINI(t, "f", "sleep", "numprocesses = 1\nstart = false\n")), 0o644)
	d := runTestDaemon(t, ini)
	api := childConfig(t, "api", "sleep", nil)
	api.NumProcesses = 8
	if err := d.Manager.Load("x", api, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Manager.Scale("default.f", ScaleOp{Set: true, Value: 9}); err != nil {
		t.Fatal(err)
	}
	if err := d.state.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.stop()

	os.WriteFile(ini, []byte("[gaffer]\nmax_processes = 5\n"+testChildINI(t, "f", "sleep", "numprocesses = 1\nstart = false\n")), 0o644)
	d = runTestDaemon(t, ini)
	if jobs, _ := d.Manager.Jobs(""); strings.Join(jobs, ",") != "default.f" {
		t.Errorf("jobs restored: %v, want default.f alone", jobs)
	}
	if cfg, err := d.Manager.JobConfig("default.f"); err != nil || cfg.NumProcesses != 1 {
		t.Errorf("default.f: %+v %v, want the file's numprocesses 1", cfg, err)
	}
	if n, _ := d.Manager.JobInfo("default.f", false); n.MaxProcesses != 1 {
		t.Errorf("default.f target %d, want the file's 1", n.MaxProcesses)
	}
	l := d.log.String()
	for _, want := range []string{"job=x.api", "job=default.f", "max_processes, the limit of 5"} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
	if copies, _ := filepath.Glob(filepath.Join(dir, StateFileName+".unrestored-*")); len(copies) != 1 {
		t.Errorf("copies of the state file: %v", copies)
	}
}
