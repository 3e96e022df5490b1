package gaffer

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

type apiT struct {
	t   *testing.T
	m   *Manager
	srv *httptest.Server
	c   *http.Client
}

func newAPI(t *testing.T, opts ServerOptions) *apiT {
	t.Helper()
	m := newTestManager(t)
	opts.Manager = m
	s := NewServer(opts)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &apiT{t: t, m: m, srv: srv, c: srv.Client()}
}

func (a *apiT) do(method, path, body string, hdr ...string) (int, http.Header, []byte) {
	a.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, a.srv.URL+path, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := a.c.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, data
}

func (a *apiT) json(method, path, body string, wantStatus int) map[string]any {
	a.t.Helper()
	code, h, data := a.do(method, path, body)
	if code != wantStatus {
		a.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, wantStatus, data)
	}
	if !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		a.t.Fatalf("%s %s: content type %q", method, path, h.Get("Content-Type"))
	}
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		a.t.Fatalf("%s %s: body %q: %v", method, path, data, err)
	}
	return v
}

func childJSON(t *testing.T, name, mode string, extra string) string {
	self, _ := os.Executable()
	b, _ := json.Marshal(self)
	return `{"name": "` + name + `", "cmd": ` + string(b) + `, "env": {"GAFFER_TEST_CHILD": "` + mode + `"}, "graceful_timeout": 2` + extra + `}`
}

func TestRoutesJobsLifecycle(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	a.json("GET", "/", "", 200)
	if code, _, body := a.do("GET", "/ping", ""); code != 200 || string(body) != "OK" {
		t.Fatalf("/ping: %d %q", code, body)
	}
	a.json("GET", "/version", "", 200)
	a.json("POST", "/jobs/app", childJSON(t, "web", "sleep", `, "numprocesses": 2, "redirect_output": ["out", "err"]`), 200)
	conflict := a.json("POST", "/jobs/app", childJSON(t, "web", "sleep", ""), 409)
	if conflict["error"] != CodeConflict || conflict["errno"] != float64(409) || conflict["reason"] == "" {
		t.Fatalf("conflict body %v", conflict)
	}
	if v := a.json("GET", "/sessions", "", 200); len(v["sessions"].([]any)) != 1 {
		t.Fatalf("sessions %v", v)
	}
	if v := a.json("GET", "/jobs", "", 200); v["jobs"].([]any)[0] != "app.web" {
		t.Fatalf("jobs %v", v)
	}
	if v := a.json("GET", "/jobs/app", "", 200); v["sessionid"] != "app" {
		t.Fatalf("session jobs %v", v)
	}
	info := a.json("GET", "/jobs/app/web", "", 200)
	if info["running"] != float64(2) || info["max_processes"] != float64(2) || info["active"] != true {
		t.Fatalf("info %v", info)
	}
	if code, _, _ := a.do("HEAD", "/jobs/app/web", ""); code != 200 {
		t.Fatalf("HEAD job: %d", code)
	}
	if v := a.json("GET", "/jobs/app/web/numprocesses", "", 200); v["numprocesses"] != float64(2) {
		t.Fatalf("numprocesses %v", v)
	}
	if v := a.json("POST", "/jobs/app/web/numprocesses", `{"scale": "+1"}`, 200); v["numprocesses"] != float64(3) {
		t.Fatalf("scale %v", v)
	}
	a.json("POST", "/jobs/app/web/numprocesses", `{"scale": "*2"}`, 400)
	a.json("POST", "/jobs/app/web/numprocesses", `{}`, 400)
	a.json("POST", "/jobs/app/web/numprocesses", `not json`, 400)
	pids := a.json("GET", "/jobs/app/web/pids", "", 200)["pids"].([]any)
	if len(pids) != 3 {
		t.Fatalf("pids %v", pids)
	}
	pid := strconv.Itoa(int(pids[0].(float64)))
	pinfo := a.json("GET", "/"+pid, "", 200)
	if pinfo["name"] != "app.web" || pinfo["os_pid"].(float64) <= 0 || pinfo["commited"] != false {
		t.Fatalf("process info %v", pinfo)
	}
	if code, _, _ := a.do("HEAD", "/"+pid, ""); code != 200 {
		t.Fatal("HEAD pid")
	}
	if code, _, _ := a.do("HEAD", "/9999", ""); code != 404 {
		t.Fatal("HEAD unknown pid")
	}
	st := a.json("GET", "/"+pid+"/stats", "", 200)["stats"].(map[string]any)
	for _, k := range []string{"mem_info1", "mem_info2", "cpu", "mem", "ctime", "rss_bytes"} {
		if _, ok := st[k]; !ok {
			t.Fatalf("stats lack %s: %v", k, st)
		}
	}
	js := a.json("GET", "/jobs/app/web/stats", "", 200)
	if len(js["stats"].([]any)) != 3 {
		t.Fatalf("job stats %v", js)
	}
	a.json("POST", "/"+pid+"/signal", `{"signal": "NOPE"}`, 400)
	a.json("POST", "/"+pid+"/signal", `{"signal": "SIGCONT"}`, 202)
	a.json("POST", "/jobs/app/web/signal", `{"signal": "CONT"}`, 202)
	a.json("DELETE", "/"+pid, "", 202)
	a.json("GET", "/abc/def", "", 404)
	a.json("GET", "/9999", "", 404)
	a.json("PUT", "/9999", "", 405)
	// state: stop, check, start
	a.json("POST", "/jobs/app/web/state", "0", 202)
	waitFor(t, 5*time.Second, "job stopped", func() bool {
		_, _, body := a.do("GET", "/jobs/app/web/state", "")
		return string(body) == "0"
	})
	a.json("POST", "/jobs/app/web/state", "7", 400)
	a.json("POST", "/jobs/app/web/state", "1", 202)
	if _, _, body := a.do("GET", "/jobs/app/web/state", ""); string(body) != "1" {
		t.Fatalf("state after start: %q", body)
	}
	if v := a.json("GET", "/jobs/app/web", "", 200); v["running"] != float64(3) {
		t.Fatalf("start after stop kept the scaled target? %v", v)
	}
	a.json("POST", "/jobs/app/web/state", "2", 202)
	// commit
	c := a.json("POST", "/jobs/app/web/commit", `{"env": {"X": "1"}, "graceful_timeout": 1.5}`, 200)
	cpid := strconv.Itoa(int(c["pid"].(float64)))
	if v := a.json("GET", "/"+cpid, "", 200); v["commited"] != true {
		t.Fatalf("commit info %v", v)
	}
	a.json("POST", "/jobs/app/web/commit", `{"graceful_timeout": "soon"}`, 400)
	// update
	a.json("PUT", "/jobs/app/web", childJSON(t, "other", "sleep", ""), 400)
	a.json("PUT", "/jobs/app/web", childJSON(t, "web", "sleep", `, "numprocesses": 1`), 201)
	if v := a.json("GET", "/jobs/app/web", "", 200); v["max_processes"] != float64(1) {
		t.Fatalf("update %v", v)
	}
	a.json("PUT", "/jobs/app/nope", childJSON(t, "nope", "sleep", ""), 404)
	// validation names the failing field
	for body, field := range map[string]string{
		`{"name": "x", "cmd": "sleep 1", "numprocesses": "many"}`: "numprocesses",
		`{"name": "x", "cmd": "sleep 1", "bogus": 1}`:             "bogus",
		`{"name": "x"}`:                     "cmd",
		`{"cmd": "sleep 1"}`:                "name",
		`[1, 2]`:                            "object",
		`{"name": "a/b", "cmd": "sleep 1"}`: "name",
	} {
		v := a.json("POST", "/jobs/app", body, 400)
		if !strings.Contains(v["reason"].(string), field) {
			t.Errorf("POST %s: reason %q does not name %s", body, v["reason"], field)
		}
	}
	a.json("DELETE", "/jobs/app/web", "", 200)
	a.json("DELETE", "/jobs/app/web", "", 404)
	a.json("GET", "/jobs/app", "", 404)
}

func TestRoutesCORSHostAndUnixSocket(t *testing.T) {
	a := newAPI(t, ServerOptions{CORSOrigins: []string{"http://ui.example:8080"}})
	code, h, _ := a.do("OPTIONS", "/jobs", "", "Origin", "http://ui.example:8080", "Access-Control-Request-Method", "POST")
	if code != 204 || h.Get("Access-Control-Allow-Origin") != "http://ui.example:8080" || h.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("preflight: %d %v", code, h)
	}
	code, h, _ = a.do("GET", "/jobs", "", "Origin", "http://evil.example")
	if code != 403 || h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign origin: %d %v", code, h)
	}

	// A real loopback listener refuses foreign Host headers.
	m := newTestManager(t)
	s := NewServer(ServerOptions{Manager: m})
	l, hnd, err := s.Listen(EndpointConfig{Name: "t", Bind: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l, hnd)
	t.Cleanup(func() { s.Shutdown(nil) })
	req, _ := http.NewRequest("GET", "http://"+l.Addr().String()+"/jobs", nil)
	req.Host = "attacker.example:5000"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("foreign Host on loopback: %d", resp.StatusCode)
	}
	resp, err = http.Get("http://" + l.Addr().String() + "/jobs")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("loopback Host: %v %v", resp, err)
	}
	resp.Body.Close()

	// Unix socket: mode 0600, a live socket is not replaced, a stale one is.
	dir := t.TempDir()
	sock := filepath.Join(dir, "g.sock")
	ul, uh, err := s.Listen(EndpointConfig{Name: "u", Bind: "unix:" + sock})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ul, uh)
	st, err := os.Stat(sock)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", st.Mode(), err)
	}
	if _, _, err := s.Listen(EndpointConfig{Name: "u2", Bind: "unix:" + sock}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a live socket was taken over: %v", err)
	}
	uc := &http.Client{Transport: &http.Transport{Dial: func(_, _ string) (net.Conn, error) { return net.Dial("unix", sock) }}}
	resp, err = uc.Get("http://localhost/ping")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("over the unix socket: %v %v", resp, err)
	}
	resp.Body.Close()
	stale := filepath.Join(dir, "stale.sock")
	sl, _ := net.Listen("unix", stale)
	sl.(*net.UnixListener).SetUnlinkOnClose(false)
	sl.Close()
	l2, _, err := s.Listen(EndpointConfig{Name: "s", Bind: "unix:" + stale})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()
}

// TestRoutesWrongMethod: a known path with a wrong method answers 405
// method_not_allowed with an Allow header, in the JSON error shape (PUT
// /pids used to answer 404); an unknown path stays 404.
func TestRoutesWrongMethod(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	cases := []struct{ method, path, allow string }{
		{"PUT", "/pids", "GET, HEAD"},
		{"DELETE", "/pids", "GET, HEAD"},
		{"POST", "/", "GET, HEAD"},
		{"POST", "/ping", "GET, HEAD"},
		{"DELETE", "/version", "GET, HEAD"},
		{"POST", "/sessions", "GET, HEAD"},
		{"PUT", "/jobs", "GET, HEAD"},
		{"DELETE", "/jobs/app", "GET, HEAD, POST"},
		{"POST", "/jobs/app/web", "GET, HEAD, PUT, DELETE"},
		{"PATCH", "/jobs/app/web", "GET, HEAD, PUT, DELETE"},
		{"POST", "/jobs/app/web/stats", "GET, HEAD"},
		{"PUT", "/jobs/app/web/numprocesses", "GET, HEAD, POST"},
		{"GET", "/jobs/app/web/signal", "POST"},
		{"DELETE", "/jobs/app/web/state", "GET, HEAD, POST"},
		{"POST", "/jobs/app/web/pids", "GET, HEAD"},
		{"GET", "/jobs/app/web/commit", "POST"},
		{"GET", "/reload", "POST"},
		{"PUT", "/streams/1/stdout", "GET, HEAD, POST"},
		{"POST", "/wstreams/1", "GET, HEAD"},
		{"POST", "/watch/a/b", "GET, HEAD"},
		{"DELETE", "/metrics", "GET, HEAD"},
		{"POST", "/keys/abc", "GET, HEAD, DELETE"}, // auth off: the routes exist and answer 404 with GET
		{"PUT", "/1", "GET, HEAD, DELETE"},
		{"GET", "/1/signal", "POST"},
	}
	for _, c := range cases {
		code, h, body := a.do(c.method, c.path, "")
		if code != 405 || h.Get("Allow") != c.allow || !contains(body, `"error":"method_not_allowed"`) || !contains(body, `"errno":405`) {
			t.Errorf("%s %s: %d Allow=%q %s, want 405 Allow=%q method_not_allowed", c.method, c.path, code, h.Get("Allow"), body, c.allow)
		}
	}
	for _, p := range []string{"/nope", "/jobs/app/web/nope", "/1/nope"} {
		if code, _, body := a.do("PUT", p, ""); code != 404 || !contains(body, `"not_found"`) {
			t.Errorf("PUT %s: %d %s, want 404", p, code, body)
		}
	}
}
