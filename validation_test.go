package gaffer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// apiSnapshot is what a refused request must leave as it was: the job
// list, the session list and the info of the job already loaded.
func apiSnapshot(a *apiT) string {
	a.t.Helper()
	var b strings.Builder
	for _, p := range []string{"/jobs", "/sessions", "/jobs/default/keep", "/jobs/default/keep/numprocesses"} {
		code, _, body := a.do("GET", p, "")
		b.WriteString(p + " " + string(rune('0'+code/100)) + " " + string(body) + "\n")
	}
	return b.String()
}

// refused checks that a request is a 400 whose reason names want, and that
// nothing changed.
func refused(t *testing.T, a *apiT, method, path, body, want string) {
	t.Helper()
	before := apiSnapshot(a)
	code, _, data := a.do(method, path, body)
	var e struct {
		Error  string
		Reason string
		Errno  int
	}
	json.Unmarshal(data, &e)
	if code != 400 || e.Errno != 400 || !strings.Contains(e.Reason, want) {
		t.Errorf("%s %s %.120q: status %d %s, want 400 naming %q", method, path, body, code, data, want)
	}
	if after := apiSnapshot(a); after != before {
		t.Errorf("%s %s %.120q changed the state:\nbefore %s\nafter  %s", method, path, body, before, after)
	}
}

func TestBadJobInputIsRefusedAndChangesNothing(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	// Nothing here is started, and the command is harmless: should a
	// check regress, no fork bomb follows.
	cmd := `"/bin/sleep 300"`
	a.json("POST", "/jobs/default", `{"name": "keep", "cmd": `+cmd+`, "start": false}`, 200)
	job := func(name string, extra string) string {
		n, _ := json.Marshal(name)
		return `{"name": ` + string(n) + `, "cmd": ` + cmd + `, "start": false` + extra + `}`
	}
	for _, name := range []string{"..", ".", ".x", "x.", "a..b", "a/b", "../etc", "a\x00b", "a\nb", "a\tb", "a b",
		"a\x7fb", "a\x1bb", "-x", "x-", "é", "a:b", strings.Repeat("a", 10240), strings.Repeat("a", maxNameLen+1)} {
		refused(t, a, "POST", "/jobs/default", job(name, ""), "name:")
	}
	for _, sid := range []string{"a:b", "a.b", "-s", strings.Repeat("s", maxNameLen+1), "%2E%2E", "a%2Fb", "a%00b", "a%0Ab", "%C3%A9"} {
		refused(t, a, "POST", "/jobs/"+sid, job("ok", ""), "sessionid:")
	}
	bad := []struct{ extra, want string }{
		{`"numprocesses": 1e9`, "max_processes"},
		{`"numprocesses": 1025`, "max_processes"},
		{`"numprocesses": -1`, "numprocesses"},
		{`"numprocesses": 1.5`, "numprocesses"},
		{`"numprocesses": "many"`, "numprocesses"},
		{`"numprocesses": true`, "numprocesses"},
		{`"numprocesses": 1e300`, "numprocesses"},
		{`"env": {"A": null}`, "env.A"},
		{`"env": {"A": {"b": 1}}`, "env.A"},
		{`"env": {"A": ["x"]}`, "env.A"},
		{`"env": {"A": "x\u0000y"}`, "env.A"},
		{`"env": ["A=1"]`, "env"},
		{`"graceful_timeout": "NaN"`, "graceful_timeout"},
		{`"graceful_timeout": "Inf"`, "graceful_timeout"},
		{`"graceful_timeout": "-Inf"`, "graceful_timeout"},
		{`"graceful_timeout": -1`, "graceful_timeout"},
		{`"graceful_timeout": -1e300`, "graceful_timeout"},
		{`"graceful_timeout": 1e9`, "max_graceful_timeout"},
		{`"graceful_timeout": 1e300`, "max_graceful_timeout"},
		{`"graceful_timeout": 3601`, "max_graceful_timeout"},
		{`"graceful_timeout": null`, "graceful_timeout"},
		{`"args": 42`, "args"},
		{`"args": {"a": 1}`, "args"},
		{`"args": [1, 2]`, "args[0]"},
		{`"args": true`, "args"},
		{`"args": "unterminated 'quote"`, "args"},
		{`"redirect_output": ["a/b"]`, "redirect_output"},
		{`"redirect_output": [".."]`, "redirect_output"},
		{`"custom_streams": ["x.y"]`, "custom_streams"},
		{`"custom_streams": ["a\nb"]`, "custom_streams"},
	}
	for _, b := range bad {
		refused(t, a, "POST", "/jobs/default", job("new", ", "+b.extra), b.want)
		// The same value in an update of the loaded job.
		refused(t, a, "PUT", "/jobs/default/keep", job("keep", ", "+b.extra), b.want)
	}
	// Scale and commit are bounded too.
	for _, v := range []string{`1025`, `"+1025"`, `"=1025"`, `"=999999999"`, `1000000000`} {
		refused(t, a, "POST", "/jobs/default/keep/numprocesses", `{"scale": `+v+`}`, "max_processes")
	}
	refused(t, a, "POST", "/jobs/default/keep/numprocesses", `{"scale": 1e9}`, "scale")
	refused(t, a, "POST", "/jobs/default/keep/commit", `{"graceful_timeout": 1e9}`, "max_graceful_timeout")
	// The 0.4 routes go through the same checks.
	refused(t, a, "POST", "/processes", `{"name": "..", "cmd": `+cmd+`, "start": false}`, "name")
	refused(t, a, "POST", "/processes", `{"name": "n", "cmd": `+cmd+`, "numprocesses": 5000, "start": false}`, "max_processes")

	// What is accepted: the limit itself, numbers and booleans as env text.
	a.json("POST", "/jobs/default", job("edge."+strings.Repeat("b", maxNameLen-5), `, "numprocesses": 1024, "graceful_timeout": 3600`), 200)
	a.json("POST", "/jobs/default", job("coerced", `, "env": {"PORT": 8080, "DEBUG": true, "RATIO": 0.5}`), 200)
	cfg, err := a.m.JobConfig("default.coerced")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Env["PORT"] != "8080" || cfg.Env["DEBUG"] != "true" || cfg.Env["RATIO"] != "0.5" {
		t.Errorf("env = %v, want PORT=8080 DEBUG=true RATIO=0.5", cfg.Env)
	}
}

// The limits come from the manager's options ([gaffer] max_processes and
// max_graceful_timeout in gafferd).
func TestManagerLimitsFromOptions(t *testing.T) {
	m := NewManager(Options{MaxProcesses: 3, MaxGracefulTimeout: 2 * time.Minute})
	t.Cleanup(func() { m.Shutdown(t.Context()) })
	cfg := childConfig(t, "w", "sleep", nil)
	cfg.NumProcesses = 4
	if err := m.Load("default", cfg, nil, false); err == nil || !strings.Contains(err.Error(), "max_processes, the limit of 3") {
		t.Fatalf("load of 4 processes with max_processes 3: %v", err)
	}
	cfg.NumProcesses, cfg.GracefulTimeout = 3, 121*time.Second
	if err := m.Load("default", cfg, nil, false); err == nil || !strings.Contains(err.Error(), "max_graceful_timeout, the limit of 120s") {
		t.Fatalf("load with graceful_timeout 121s: %v", err)
	}
	cfg.GracefulTimeout = 2 * time.Minute
	if err := m.Load("default", cfg, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Scale("default.w", ScaleOp{Value: 1}); err == nil || !strings.Contains(err.Error(), "max_processes") {
		t.Fatalf("scale to 4: %v", err)
	}
	if n, _ := m.JobConfig("default.w"); n.NumProcesses != 3 {
		t.Fatalf("numprocesses %d", n.NumProcesses)
	}
	cfg.NumProcesses = 4
	if err := m.Update("default", cfg, nil, false); err == nil || !strings.Contains(err.Error(), "max_processes") {
		t.Fatalf("update to 4: %v", err)
	}
	if _, err := m.Commit("default.w", time.Hour, nil); err == nil || !strings.Contains(err.Error(), "max_graceful_timeout") {
		t.Fatalf("commit with 1h: %v", err)
	}
}

// The control channel's load and update refuse the same input.
func TestChannelLoadRefusesBadInput(t *testing.T) {
	e := chNewEnv(t, false)
	c := chDial(t, e.url, nil)
	const sleep = "/bin/sleep 300"
	for _, cfg := range []map[string]any{
		{"name": "..", "cmd": sleep, "start": false},
		{"name": "a\nb", "cmd": sleep, "start": false},
		{"name": "ok", "cmd": sleep, "numprocesses": 1e9, "start": false},
		{"name": "ok", "cmd": sleep, "env": map[string]any{"A": nil}, "start": false},
		{"name": "ok", "cmd": sleep, "graceful_timeout": 1e9, "start": false},
	} {
		if errno, _ := c.fails("load", cfg); errno != 400 {
			t.Errorf("load %v: errno %v, want 400", cfg, errno)
		}
	}
	if errno, _ := c.fails("load", map[string]any{"name": "ok", "cmd": sleep, "start": false}, ".."); errno != 400 {
		t.Errorf("load into session ..: errno %v", errno)
	}
	if jobs, _ := e.m.Jobs(""); len(jobs) != 0 {
		t.Fatalf("jobs loaded: %v", jobs)
	}
}

// The configuration file checks names and limits with file:line errors.
func TestConfigRefusesBadNamesAndLimits(t *testing.T) {
	cases := []struct{ ini, want string }{
		{"[process:..]\ncmd = x\n", "gaffer.ini:1 (section [process:..]): sessionid: missing"},
		{"[process:a..b]\ncmd = x\n", `gaffer.ini:1 (section [process:a..b]): job name: ".b" must not start or end with '.'`},
		{"[process:s:a..b]\ncmd = x\n", `gaffer.ini:1 (section [process:s:a..b]): job name: "a..b" must not contain ".."`},
		{"[process:s:x" + strings.Repeat("y", 200) + "]\ncmd = x\n", `job name: "xyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"… is 201 bytes long (a name is at most 128)`},
		{"[process:-web]\ncmd = x\n", `must not start or end with '-'`},
		{"[process:s:we b]\ncmd = x\n", `job name: "we b" must not contain ' '`},
		{"[process:web]\ncmd = x\nredirect_output = out, a.b\n", "gaffer.ini:3 (section [process:web]): redirect_output: \"a.b\" must not contain '.'"},
		{"[process:web]\ncmd = x\n\nnumprocesses = 1025\n", "gaffer.ini:4 (section [process:web]): numprocesses: 1025 processes is more than max_processes, the limit of 1024"},
		{"[process:web]\ncmd = x\nnumprocesses = 1e9\n", "gaffer.ini:3 (section [process:web]): numprocesses: expected an integer"},
		{"[process:web]\ncmd = x\nnumprocesses = -1\n", "gaffer.ini:3 (section [process:web]): numprocesses: must be >= 0"},
		{"[gaffer]\nmax_processes = 10\n[process:web]\ncmd = x\nnumprocesses = 11\n", "gaffer.ini:5 (section [process:web]): numprocesses: 11 processes is more than max_processes, the limit of 10"},
		{"[process:web]\ncmd = x\ngraceful_timeout = 1e9\n", "gaffer.ini:3 (section [process:web]): graceful_timeout: 1e+09s is more than max_graceful_timeout, the limit of 3600s"},
		{"[process:web]\ncmd = x\ngraceful_timeout = 2h\n", "graceful_timeout: 7200s is more than max_graceful_timeout"},
		{"[process:web]\ncmd = x\ngraceful_timeout = nan\n", "gaffer.ini:3 (section [process:web]): graceful_timeout: expected a number of seconds >= 0"},
		{"[process:web]\ncmd = x\ngraceful_timeout = -inf\n", "graceful_timeout: expected a number of seconds >= 0"},
		{"[gaffer]\nmax_graceful_timeout = 5\n", "gaffer.ini:2 (section [gaffer]): max_graceful_timeout: expected from 30s"},
		{"[gaffer]\nmax_processes = 0\n", "gaffer.ini:2 (section [gaffer]): max_processes: expected an integer from 1 to 100000"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		path := filepath.Join(dir, "gaffer.ini")
		os.WriteFile(path, []byte(c.ini), 0o644)
		_, err := LoadConfig(path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.ini, err, c.want)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "gaffer.ini")
	os.WriteFile(path, []byte("[gaffer]\nmax_processes = 2000\nmax_graceful_timeout = 2h\n[process:web]\ncmd = x\nnumprocesses = 2000\ngraceful_timeout = 7200\n"), 0o644)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxProcesses != 2000 || cfg.MaxGracefulTimeout != 2*time.Hour || cfg.Jobs[0].Config.NumProcesses != 2000 {
		t.Fatalf("limits %d %v, job %+v", cfg.MaxProcesses, cfg.MaxGracefulTimeout, cfg.Jobs[0].Config)
	}
}
