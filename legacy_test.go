package gaffer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// lgFixture is a manager behind a real HTTP server.
type lgFixture struct {
	t   *testing.T
	m   *Manager
	srv *httptest.Server
	key string // X-Api-Key sent by do, when set
}

// lgNewFixture starts a server; wrap, when set, wraps its handler.
func lgNewFixture(t *testing.T, opts ServerOptions, wrap func(http.Handler) http.Handler) *lgFixture {
	t.Helper()
	m := newTestManager(t)
	opts.Manager = m
	var h http.Handler = NewServer(opts)
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &lgFixture{t: t, m: m, srv: srv}
}

// do sends a request and returns the status, headers and body.
func (f *lgFixture) do(method, path, body string) (int, http.Header, []byte) {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if f.key != "" {
		req.Header.Set("X-Api-Key", f.key)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, data
}

// ok sends a request that must answer 200 with JSON, and decodes it.
func (f *lgFixture) ok(method, path, body string) any {
	f.t.Helper()
	status, h, data := f.do(method, path, body)
	if status != 200 {
		f.t.Fatalf("%s %s: status %d, want 200; body %s", method, path, status, data)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		f.t.Fatalf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		f.t.Fatalf("%s %s: body %q is not JSON: %v", method, path, data, err)
	}
	return v
}

// okTrue sends a request that must answer 200 {"ok": true}.
func (f *lgFixture) okTrue(method, path, body string) {
	f.t.Helper()
	if v := f.ok(method, path, body); !reflect.DeepEqual(v, map[string]any{"ok": true}) {
		f.t.Fatalf("%s %s: body %v, want {\"ok\": true}", method, path, v)
	}
}

// fail sends a request that must fail with status and the error code,
// in the standard error shape.
func (f *lgFixture) fail(method, path, body string, status int, code string) string {
	f.t.Helper()
	st, h, data := f.do(method, path, body)
	if st != status {
		f.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, st, status, data)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		f.t.Fatalf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	var e map[string]any
	if err := json.Unmarshal(data, &e); err != nil {
		f.t.Fatalf("%s %s: body %q is not JSON", method, path, data)
	}
	reason, _ := e["reason"].(string)
	if e["error"] != code || reason == "" || e["errno"] != float64(status) || len(e) != 3 {
		f.t.Fatalf("%s %s: error body %s, want error %q, a reason and errno %d", method, path, data, code, status)
	}
	return reason
}

// status returns the /status of a job.
func (f *lgFixture) status(name string) (active bool, running, max int) {
	f.t.Helper()
	v := f.ok("GET", "/status/"+name, "").(map[string]any)
	if len(v) != 3 {
		f.t.Fatalf("/status/%s: %v, want exactly active, running, max_processes", name, v)
	}
	return v["active"].(bool), int(v["running"].(float64)), int(v["max_processes"].(float64))
}

func (f *lgFixture) waitRunning(name string, n int) {
	f.t.Helper()
	waitFor(f.t, 10*time.Second, fmt.Sprintf("%s to run %d processes", name, n), func() bool {
		_, running, _ := f.status(name)
		return running == n
	})
}

// pids returns GET /processes/<name>/_pids.
func (f *lgFixture) pids(name string) []int {
	f.t.Helper()
	v := f.ok("GET", "/processes/"+name+"/_pids", "").(map[string]any)
	if v["ok"] != true {
		f.t.Fatalf("_pids: %v", v)
	}
	var out []int
	for _, p := range v["pids"].([]any) {
		out = append(out, int(p.(float64)))
	}
	return out
}

// lgJobBody is a 0.4 template running the test binary in mode.
func lgJobBody(t *testing.T, name, mode string, extra map[string]any) string {
	t.Helper()
	cfg := childConfig(t, "x", mode, nil)
	b := map[string]any{"name": name, "cmd": cfg.Cmd, "env": cfg.Env, "graceful_timeout": 5}
	for k, v := range extra {
		b[k] = v
	}
	js, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(js)
}

func TestLegacyNewServerNoPanic(t *testing.T) {
	store, err := OpenAuthStore(filepath.Join(t.TempDir(), "auth"))
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []ServerOptions{{}, {Auth: store, RequireKey: true}} {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("NewServer panicked: %v", p)
				}
			}()
			opts.Manager = NewManager(Options{})
			NewServer(opts)
		}()
	}
	// Every legacy path reaches a legacy handler, never the catch-all.
	f := lgNewFixture(t, ServerOptions{}, nil)
	for _, p := range []string{"/processes", "/processes/x", "/processes/x/_pids", "/processes/x/_add/1",
		"/status/x", "/groups", "/groups/g", "/groups/g/_start", "/stats", "/stats/x", "/stats/x/1", "/metrics"} {
		_, _, data := f.do("PATCH", p, "")
		if !strings.Contains(string(data), "method_not_allowed") {
			t.Errorf("PATCH %s: %s, want 405 method_not_allowed from the legacy routes", p, data)
		}
	}
}

func TestLegacyProcessLifecycle(t *testing.T) {
	f := lgNewFixture(t, ServerOptions{}, nil)
	if v := f.ok("GET", "/processes", ""); !reflect.DeepEqual(v, []any{}) {
		t.Fatalf("GET /processes on an empty manager: %v, want []", v)
	}
	f.okTrue("POST", "/processes", lgJobBody(t, "dummy", "sleep", nil))
	f.fail("POST", "/processes", lgJobBody(t, "dummy", "sleep", nil), 409, "conflict")
	if v := f.ok("GET", "/processes", ""); !reflect.DeepEqual(v, []any{"dummy"}) {
		t.Fatalf("GET /processes: %v, want [dummy]", v)
	}
	if _, err := f.m.JobInfo("default.dummy", false); err != nil {
		t.Fatalf("a 0.4 name without group is not the job default.dummy: %v", err)
	}
	f.waitRunning("dummy", 1)
	pid := f.pids("dummy")[0]
	for _, q := range []string{"?running=1", "?running=true"} {
		if v := f.ok("GET", "/processes"+q, ""); !reflect.DeepEqual(v, []any{float64(pid)}) {
			t.Fatalf("GET /processes%s: %v, want [%d]", q, v, pid)
		}
	}
	if v := f.ok("GET", "/processes?running=0", ""); !reflect.DeepEqual(v, []any{"dummy"}) {
		t.Fatalf("GET /processes?running=0: %v", v)
	}
	f.fail("GET", "/processes?running=maybe", "", 400, "bad_value")

	// HEAD and GET by name and by pid.
	for path, want := range map[string]int{"/processes/dummy": 200, "/processes/nope": 404,
		"/processes/" + strconv.Itoa(pid): 200, "/processes/999999": 404} {
		if st, _, body := f.do("HEAD", path, ""); st != want || len(body) != 0 {
			t.Errorf("HEAD %s: %d %q, want %d and no body", path, st, body, want)
		}
	}
	for _, name := range []string{"dummy", strconv.Itoa(pid), "default:dummy", "default.dummy"} {
		v := f.ok("GET", "/processes/"+name, "").(map[string]any)
		if v["name"] != "dummy" || v["os_env"] != true || v["numprocesses"] != float64(1) || !strings.Contains(v["cmd"].(string), filepath.Base(os.Args[0])) {
			t.Errorf("GET /processes/%s: %v", name, v)
		}
		if _, ok := v["group"]; ok {
			t.Errorf("GET /processes/%s: a template of the default session has a group: %v", name, v)
		}
	}
	f.fail("GET", "/processes/nope", "", 404, "not_found")
	f.fail("GET", "/processes/999999", "", 404, "not_found")
	f.fail("GET", "/processes/1234567890", "", 400, "bad_value")
	f.fail("GET", "/processes/nope/_pids", "", 404, "not_found")
	f.fail("GET", "/processes/dummy/_other", "", 404, "resource_not_found")
	f.fail("GET", "/processes/"+strconv.Itoa(pid)+"/_pids", "", 405, "method_not_allowed")

	if a, r, m := f.status("dummy"); !a || r != 1 || m != 1 {
		t.Fatalf("/status/dummy: active %v running %d max %d", a, r, m)
	}
	f.fail("GET", "/status/nope", "", 404, "not_found")

	// Scale: _add, _add/n, _sub/n clamped at 0.
	scale := func(path string, want int) {
		t.Helper()
		v := f.ok("POST", "/processes/dummy/"+path, "").(map[string]any)
		if v["ok"] != true || v["numprocesses"] != float64(want) {
			t.Fatalf("POST %s: %v, want numprocesses %d", path, v, want)
		}
	}
	scale("_add/2", 3)
	f.waitRunning("dummy", 3)
	scale("_sub", 2)
	scale("_sub/5", 0)
	f.waitRunning("dummy", 0)
	if a, _, m := f.status("dummy"); a || m != 0 {
		t.Fatalf("after _sub/5: active %v max %d", a, m)
	}
	scale("_add", 1)
	f.waitRunning("dummy", 1)
	f.fail("POST", "/processes/dummy/_add/x", "", 400, "bad_value")
	f.fail("POST", "/processes/dummy/_add/-1", "", 400, "bad_value")
	f.fail("POST", "/processes/nope/_add", "", 404, "not_found")

	// Stop, then start again: it spawns (0.4's BUG S1 is fixed), and stop
	// keeps max_processes.
	f.okTrue("POST", "/processes/dummy/_stop", "")
	f.waitRunning("dummy", 0)
	if _, _, m := f.status("dummy"); m != 1 {
		t.Fatalf("after _stop: max_processes %d, want 1", m)
	}
	f.okTrue("POST", "/processes/dummy/_start", "")
	f.waitRunning("dummy", 1)

	// Restart: a new process.
	old := f.pids("dummy")[0]
	f.okTrue("POST", "/processes/dummy/_restart", "")
	waitFor(t, 10*time.Second, "a new process after _restart", func() bool {
		p := f.pids("dummy")
		return len(p) == 1 && p[0] != old
	})
	// Restart of a stopped job starts it.
	f.okTrue("POST", "/processes/dummy/_stop", "")
	f.waitRunning("dummy", 0)
	f.okTrue("POST", "/processes/dummy/_restart", "")
	f.waitRunning("dummy", 1)

	// Signals by name and number on the job, then on one pid.
	for _, sig := range []string{"TERM", "sighup", "15"} {
		old := f.pids("dummy")[0]
		f.okTrue("POST", "/processes/dummy/_signal/"+sig, "")
		waitFor(t, 10*time.Second, "a replacement after _signal/"+sig, func() bool {
			p := f.pids("dummy")
			return len(p) == 1 && p[0] != old
		})
	}
	f.fail("POST", "/processes/dummy/_signal/BOGUS", "", 400, "bad_value")
	f.fail("POST", "/processes/dummy/_signal", "", 400, "bad_value")
	f.fail("POST", "/processes/dummy/_bogus", "", 404, "resource_not_found")
	f.fail("POST", "/processes/dummy/_start/now", "", 404, "resource_not_found")

	pid = f.pids("dummy")[0]
	ps := strconv.Itoa(pid)
	f.okTrue("POST", "/processes/"+ps+"/_signal/KILL", "")
	waitFor(t, 10*time.Second, "a replacement after a pid _signal/KILL", func() bool {
		p := f.pids("dummy")
		return len(p) == 1 && p[0] != pid
	})
	f.fail("POST", "/processes/"+ps+"/_stop", "", 404, "not_found")
	pid = f.pids("dummy")[0]
	ps = strconv.Itoa(pid)
	f.fail("POST", "/processes/"+ps+"/_signal/nope", "", 400, "bad_value")
	f.fail("POST", "/processes/"+ps+"/_start", "", 404, "resource_not_found")
	f.fail("POST", "/processes/"+ps+"/_bogus/1", "", 404, "resource_not_found")
	f.okTrue("POST", "/processes/"+ps+"/_stop", "")
	waitFor(t, 10*time.Second, "a replacement after a pid _stop", func() bool {
		p := f.pids("dummy")
		return len(p) == 1 && p[0] != pid
	})
	pid = f.pids("dummy")[0]
	f.okTrue("DELETE", "/processes/"+strconv.Itoa(pid), "")
	waitFor(t, 10*time.Second, "a replacement after DELETE /processes/<pid>", func() bool {
		p := f.pids("dummy")
		return len(p) == 1 && p[0] != pid
	})

	// PUT replaces the config and restarts the processes with it.
	pid = f.pids("dummy")[0]
	f.okTrue("PUT", "/processes/dummy", lgJobBody(t, "ignored", "sleep", map[string]any{"env": map[string]any{"GAFFER_TEST_CHILD": "sleep", "LG_MARK": "2"}, "numprocesses": 2}))
	f.waitRunning("dummy", 2)
	if p := f.pids("dummy"); slices.Contains(p, pid) {
		t.Fatalf("PUT kept the old process %d: %v", pid, p)
	}
	v := f.ok("GET", "/processes/dummy", "").(map[string]any)
	if env := v["env"].(map[string]any); env["LG_MARK"] != "2" || v["name"] != "dummy" || v["numprocesses"] != float64(2) {
		t.Fatalf("GET after PUT: %v", v)
	}
	f.fail("PUT", "/processes/nope", lgJobBody(t, "nope", "sleep", nil), 404, "not_found")
	f.fail("PUT", "/processes/dummy", "{", 400, "invalid_json")
	f.fail("PUT", "/processes/dummy", `{"numprocesses": 1}`, 400, "invalid_process_info")
	f.fail("PUT", "/processes/"+strconv.Itoa(f.pids("dummy")[0]), lgJobBody(t, "x", "sleep", nil), 405, "method_not_allowed")

	// DELETE removes the template.
	f.okTrue("DELETE", "/processes/dummy", "")
	f.fail("GET", "/processes/dummy", "", 404, "not_found")
	f.fail("DELETE", "/processes/dummy", "", 404, "not_found")
	if v := f.ok("GET", "/processes", ""); !reflect.DeepEqual(v, []any{}) {
		t.Fatalf("GET /processes after DELETE: %v", v)
	}
}

func TestLegacyCreate(t *testing.T) {
	f := lgNewFixture(t, ServerOptions{}, nil)
	f.fail("POST", "/processes", "{", 400, "invalid_json")
	f.fail("POST", "/processes", "", 400, "invalid_json")
	f.fail("POST", "/processes", `["a"]`, 400, "invalid_json")
	for body, want := range map[string]string{
		`{"name": "a"}`:                                        "cmd",
		`{"cmd": "sleep 1"}`:                                   "name",
		`{"name": 3, "cmd": "sleep 1"}`:                        "name",
		`{"name": "123", "cmd": "sleep 1"}`:                    "digits",
		`{"name": "a.b:c", "cmd": "sleep 1"}`:                  "sessionid",
		`{"name": "a", "cmd": "sleep 1", "bogus": 1}`:          "bogus",
		`{"name": "a", "cmd": "sleep 1", "numprocesses": "x"}`: "numprocesses",
	} {
		if reason := f.fail("POST", "/processes", body, 400, "invalid_process_info"); !strings.Contains(reason, want) {
			t.Errorf("POST %s: reason %q does not mention %q", body, reason, want)
		}
	}
	// start: false loads without starting; a group is a session.
	f.okTrue("POST", "/processes", lgJobBody(t, "ga:idle", "sleep", map[string]any{"start": false}))
	if a, r, m := f.status("ga:idle"); a || r != 0 || m != 1 {
		t.Fatalf("start false: active %v running %d max %d", a, r, m)
	}
	if info, err := f.m.JobInfo("ga.idle", false); err != nil || info.State != JobNotStarted {
		t.Fatalf("ga:idle is not the job ga.idle, not started: %+v %v", info, err)
	}
	v := f.ok("GET", "/processes/ga:idle", "").(map[string]any)
	if v["name"] != "ga:idle" || v["group"] != "ga" {
		t.Fatalf("GET /processes/ga:idle: %v", v)
	}
	f.okTrue("POST", "/processes/ga:idle/_start", "")
	f.waitRunning("ga:idle", 1)
	// Our session.job form is accepted, and a job named with digits is
	// reachable with its group.
	f.okTrue("POST", "/processes", lgJobBody(t, "app.web", "sleep", nil))
	f.okTrue("POST", "/processes", lgJobBody(t, "default:42", "sleep", nil))
	names := f.ok("GET", "/processes", "").([]any)
	if !reflect.DeepEqual(names, []any{"ga:idle", "app:web", "default:42"}) {
		t.Fatalf("GET /processes: %v", names)
	}
	f.waitRunning("app:web", 1)
	f.waitRunning("default:42", 1)

	// With args, a cmd naming an existing file is run whole (0.4); the
	// directory has a space in it.
	dir := filepath.Join(t.TempDir(), "with space")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	prog := filepath.Join(dir, "child")
	if err := os.Link(self, prog); err != nil {
		data, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(prog, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	body, _ := json.Marshal(map[string]any{"name": "spaced", "cmd": prog, "args": []string{"x"},
		"env": map[string]string{"GAFFER_TEST_CHILD": "sleep"}, "graceful_timeout": 5})
	f.okTrue("POST", "/processes", string(body))
	f.waitRunning("spaced", 1)
	procs, _ := f.m.JobProcesses("default.spaced")
	if len(procs) != 1 || procs[0].Cmd != prog || !reflect.DeepEqual(procs[0].Args, []string{"x"}) {
		t.Fatalf("spaced: %+v", procs)
	}
}

func TestLegacyGroups(t *testing.T) {
	f := lgNewFixture(t, ServerOptions{}, nil)
	for _, n := range []string{"ga:a", "ga:b", "ga:c", "solo"} {
		f.okTrue("POST", "/processes", lgJobBody(t, n, "sleep", nil))
	}
	groups := f.ok("GET", "/groups", "").([]any)
	sort.Slice(groups, func(i, j int) bool { return groups[i].(string) < groups[j].(string) })
	if !reflect.DeepEqual(groups, []any{"default", "ga"}) {
		t.Fatalf("GET /groups: %v", groups)
	}
	if v := f.ok("GET", "/groups/ga", ""); !reflect.DeepEqual(v, []any{"ga:a", "ga:b", "ga:c"}) {
		t.Fatalf("GET /groups/ga: %v", v)
	}
	f.fail("GET", "/groups/nope", "", 404, "not_found")
	for _, n := range []string{"ga:a", "ga:b", "ga:c"} {
		f.waitRunning(n, 1)
	}
	f.okTrue("POST", "/groups/ga/_stop", "")
	for _, n := range []string{"ga:a", "ga:b", "ga:c"} {
		f.waitRunning(n, 0)
	}
	f.waitRunning("solo", 1)
	f.okTrue("POST", "/groups/ga/_start", "")
	for _, n := range []string{"ga:a", "ga:b", "ga:c"} {
		f.waitRunning(n, 1)
	}
	old := f.pids("ga:b")[0]
	f.okTrue("POST", "/groups/ga/_restart", "")
	waitFor(t, 10*time.Second, "ga:b restarted", func() bool {
		p := f.pids("ga:b")
		return len(p) == 1 && p[0] != old
	})
	f.fail("POST", "/groups/ga/_bogus", "", 404, "resource_not_found")
	f.fail("POST", "/groups/nope/_start", "", 404, "not_found")
	f.okTrue("DELETE", "/groups/ga", "")
	if v := f.ok("GET", "/processes", ""); !reflect.DeepEqual(v, []any{"solo"}) {
		t.Fatalf("after DELETE /groups/ga every job of the group must be gone: %v", v)
	}
	f.fail("GET", "/groups/ga", "", 404, "not_found")
	f.fail("DELETE", "/groups/ga", "", 404, "not_found")
}

func TestLegacyStats(t *testing.T) {
	var active atomic.Int32
	f := lgNewFixture(t, ServerOptions{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/stats/") {
				active.Add(1)
				defer active.Add(-1)
			}
			h.ServeHTTP(w, r)
		})
	})
	f.okTrue("POST", "/processes", lgJobBody(t, "dummy", "sleep", map[string]any{"numprocesses": 2}))
	f.okTrue("POST", "/processes", lgJobBody(t, "ga:idle", "sleep", map[string]any{"start": false}))
	f.waitRunning("dummy", 2)
	pids := f.pids("dummy")

	all := f.ok("GET", "/stats", "").([]any)
	if len(all) != 2 {
		t.Fatalf("GET /stats: %d objects, want one per job: %v", len(all), all)
	}
	checkJob := func(v map[string]any, name string, n int) {
		t.Helper()
		for _, k := range []string{"name", "stats", "mem", "max_mem", "min_mem", "cpu", "max_cpu", "min_cpu"} {
			if _, ok := v[k]; !ok {
				t.Fatalf("job stats without %q: %v", k, v)
			}
		}
		if v["name"] != name || len(v["stats"].([]any)) != n {
			t.Fatalf("job stats of %s: %v", name, v)
		}
	}
	checkJob(all[0].(map[string]any), "dummy", 2)
	checkJob(all[1].(map[string]any), "ga:idle", 0)
	if idle := all[1].(map[string]any); idle["mem"] != "N/A" || idle["min_cpu"] != "N/A" {
		t.Fatalf("stats of a job without process: %v", idle)
	}
	job := f.ok("GET", "/stats/dummy", "").(map[string]any)
	checkJob(job, "dummy", 2)
	checkJob(f.ok("GET", "/stats/dummy?feed=normal", "").(map[string]any), "dummy", 2)
	checkProc := func(v map[string]any, pid int) {
		t.Helper()
		p, _ := f.m.Process(pid)
		if p == nil {
			t.Fatalf("process %d is gone", pid)
		}
		for _, k := range []string{"mem_info1", "mem_info2", "cpu", "mem", "ctime"} {
			if _, ok := v[k]; !ok {
				t.Fatalf("process stats without %q: %v", k, v)
			}
		}
		if v["id"] != float64(pid) || v["pid"] != float64(p.OSPid) || v["os_pid"] != float64(p.OSPid) {
			t.Fatalf("process stats of %d (os pid %d): %v", pid, p.OSPid, v)
		}
	}
	checkProc(job["stats"].([]any)[0].(map[string]any), pids[0])
	ps := strconv.Itoa(pids[1])
	checkProc(f.ok("GET", "/stats/dummy/"+ps, "").(map[string]any), pids[1])
	checkProc(f.ok("GET", "/stats/default.dummy/"+ps, "").(map[string]any), pids[1])
	f.fail("GET", "/stats/ga:idle/"+ps, "", 404, "not_found")
	f.fail("GET", "/stats/dummy/abc", "", 400, "bad_value")
	f.fail("GET", "/stats/dummy/999999", "", 404, "not_found")
	f.fail("GET", "/stats/nope", "", 404, "not_found")
	f.fail("GET", "/stats/nope?feed=eventsource", "", 404, "not_found")
	f.fail("GET", "/stats/dummy?feed=bogus", "", 400, "bad_value")
	f.fail("GET", "/stats/dummy?feed=eventsource&interval=0", "", 400, "bad_value")

	// longpoll: one object and CRLF.
	st, h, data := f.do("GET", "/stats/dummy/"+ps+"?feed=longpoll", "")
	if st != 200 || h.Get("Content-Type") != "application/json" || !strings.HasSuffix(string(data), "}\r\n") {
		t.Fatalf("longpoll: %d %q %q", st, h.Get("Content-Type"), data)
	}
	var one map[string]any
	if err := json.Unmarshal(data, &one); err != nil {
		t.Fatal(err)
	}
	checkProc(one, pids[1])

	// eventsource: "stat" events for every process; the handler ends when
	// the client leaves.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/stats/dummy?feed=eventsource&interval=0.1", nil)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("eventsource Content-Type %q", ct)
	}
	seen := map[float64]bool{}
	for ev := range lgSSE(t, resp.Body) {
		if ev.name != "stat" {
			t.Fatalf("event %q, want stat", ev.name)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(ev.data), &v); err != nil {
			t.Fatalf("stat data %q: %v", ev.data, err)
		}
		seen[v["id"].(float64)] = true
		if len(seen) == 2 {
			break
		}
	}
	if len(seen) != 2 {
		t.Fatalf("eventsource covered %v, want both processes", seen)
	}
	// Earlier handlers may still be returning after their client read the
	// whole answer; only the feed stays.
	waitFor(t, 10*time.Second, "only the eventsource /stats handler to be active", func() bool { return active.Load() == 1 })
	cancel()
	resp.Body.Close()
	waitFor(t, 10*time.Second, "the /stats feed to end after the client left", func() bool { return active.Load() == 0 })

	// A per-process feed ends (event eof) when the process goes away.
	resp2, err := f.srv.Client().Get(f.srv.URL + "/stats/dummy/" + ps + "?feed=eventsource&interval=0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	events := lgSSE(t, resp2.Body)
	if ev := <-events; ev.name != "stat" {
		t.Fatalf("first event %q", ev.name)
	}
	f.okTrue("DELETE", "/processes/"+ps, "")
	last := ""
	for ev := range events {
		last = ev.name
	}
	if last != "eof" {
		t.Fatalf("the per-process feed ended with %q, want eof", last)
	}

	// continuous: JSON lines.
	ctx3, cancel3 := context.WithCancel(context.Background())
	defer cancel3()
	req3, _ := http.NewRequestWithContext(ctx3, "GET", f.srv.URL+"/stats/dummy?feed=continuous&interval=0.1", nil)
	resp3, err := f.srv.Client().Do(req3)
	if err != nil {
		t.Fatal(err)
	}
	defer resp3.Body.Close()
	line, err := bufio.NewReader(resp3.Body).ReadString('\n')
	if err != nil || json.Unmarshal([]byte(line), &one) != nil || one["ctime"] == nil {
		t.Fatalf("continuous: %q %v", line, err)
	}
}

type lgEvent struct{ name, data string }

// lgSSE parses an SSE body into events; the channel closes at EOF.
func lgSSE(t *testing.T, body io.Reader) <-chan lgEvent {
	ch := make(chan lgEvent, 16)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(body)
		var ev lgEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" || ev.data != "" {
					ch <- ev
				}
				ev = lgEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data += line[len("data: "):]
			}
		}
	}()
	return ch
}

func TestLegacyPermissions(t *testing.T) {
	store, err := OpenAuthStore(filepath.Join(t.TempDir(), "auth"))
	if err != nil {
		t.Fatal(err)
	}
	_, admin, err := store.CreateAdminUser("root", "rootpw")
	if err != nil {
		t.Fatal(err)
	}
	mk := func(label string, p Permissions) string {
		k, err := store.CreateKey(admin, label, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		return k.Key
	}
	reader := mk("reader", Permissions{Read: []string{"app"}})
	manager := mk("manager", Permissions{Manage: []string{"app"}})
	f := lgNewFixture(t, ServerOptions{Auth: store, RequireKey: true}, nil)
	for _, sid := range []string{"app", "other"} {
		if err := f.m.Load(sid, childConfig(t, "web", "sleep", nil), nil, true); err != nil {
			t.Fatal(err)
		}
	}
	f.fail("GET", "/processes", "", 401, "unauthorized")
	f.fail("GET", "/status/app:web", "", 401, "unauthorized")

	f.key = reader
	f.fail("GET", "/processes", "", 403, "forbidden")
	f.fail("GET", "/groups", "", 403, "forbidden")
	f.ok("GET", "/processes/app:web", "")
	f.ok("GET", "/status/app:web", "")
	f.ok("GET", "/groups/app", "")
	f.fail("GET", "/processes/other:web", "", 403, "forbidden")
	f.fail("GET", "/groups/other", "", 403, "forbidden")
	f.fail("POST", "/processes/app:web/_stop", "", 403, "forbidden")
	f.fail("DELETE", "/processes/app:web", "", 403, "forbidden")
	f.fail("POST", "/processes", lgJobBody(t, "app:new", "sleep", nil), 403, "forbidden")
	if st, _, _ := f.do("HEAD", "/processes/other:web", ""); st != 403 {
		t.Fatalf("HEAD of an unreadable job: %d, want 403", st)
	}
	stats := f.ok("GET", "/stats", "").([]any)
	if len(stats) != 1 || stats[0].(map[string]any)["name"] != "app:web" {
		t.Fatalf("GET /stats as a reader of app: %v", stats)
	}
	otherPid := strconv.Itoa(f.procsOf("other.web")[0])
	f.fail("GET", "/processes/"+otherPid, "", 403, "forbidden")
	f.fail("GET", "/stats/other:web/"+otherPid, "", 403, "forbidden")

	f.key = manager
	f.okTrue("POST", "/processes/app:web/_stop", "")
	f.okTrue("POST", "/processes", lgJobBody(t, "app:new", "sleep", nil))
	f.fail("POST", "/processes", lgJobBody(t, "other:new", "sleep", nil), 403, "forbidden")
	f.fail("POST", "/processes/"+otherPid+"/_stop", "", 403, "forbidden")
	f.fail("POST", "/groups/other/_stop", "", 403, "forbidden")
	f.fail("DELETE", "/groups/other", "", 403, "forbidden")
	f.okTrue("POST", "/groups/app/_start", "")

	f.key = admin.Key
	if v := f.ok("GET", "/processes", ""); !reflect.DeepEqual(v, []any{"app:web", "app:new", "other:web"}) {
		t.Fatalf("GET /processes as admin: %v", v)
	}
}

func (f *lgFixture) procsOf(full string) []int {
	f.t.Helper()
	var out []int
	waitFor(f.t, 10*time.Second, full+" to run", func() bool {
		out, _ = f.m.Pids(full)
		return len(out) > 0
	})
	return out
}

func TestLegacyNames(t *testing.T) {
	for full, want := range map[string]string{
		"default.web": "web", "app.web": "app:web", "default.a.b": "default:a.b", "default.x:y": "default:x:y",
		"default.42": "default:42", "a:b.c": "a:b.c", "g.x:y": "g:x:y",
	} {
		if got := lgName(full); got != want {
			t.Errorf("lgName(%q) = %q, want %q", full, got, want)
		}
	}
	for name, want := range map[string]string{
		"web": "default.web", "app:web": "app.web", "app.web": "app.web", "default:a.b": "default.a.b",
	} {
		sid, job, err := lgSplit(name)
		if err != nil || sid+"."+job != want {
			t.Errorf("lgSplit(%q) = %q, %q, %v; want %s", name, sid, job, err, want)
		}
	}
	// ':' is not part of the name syntax (ValidateName): "g:x:y" is refused.
	for _, bad := range []string{"", ":web", "app:", "a.b:c", "app.", "default:x:y", "g:x:y"} {
		if _, _, err := lgSplit(bad); err == nil {
			t.Errorf("lgSplit(%q) accepted", bad)
		}
	}
	// A session with ':' cannot exist, so "g:n" is never ambiguous.
	f := lgNewFixture(t, ServerOptions{}, nil)
	if err := f.m.Load("a:b", childConfig(t, "c", "sleep", map[string]string{}), nil, false); err == nil {
		t.Fatal("a session named a:b was loaded")
	}
}
