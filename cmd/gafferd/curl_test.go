package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer/cmd/internal/testenv"
)

// The seed's HTTP examples (docs/commands/*.rst, the 0.4 API) run with
// the real curl against a real gafferd: this test binary, re-run as
// gafferd by TestCurlHelperGafferd.

const curlHelperEnv = "GAFFERD_CURL_HELPER_ARGS"

// TestCurlHelperGafferd is not a test: it is gafferd when the curl test
// runs this binary with curlHelperEnv set.
func TestCurlHelperGafferd(t *testing.T) {
	args := os.Getenv(curlHelperEnv)
	if args == "" {
		t.Skip("helper process for TestCurlLegacyAPI")
	}
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		t.Fatalf("%s: %v", curlHelperEnv, err)
	}
	os.Exit(run(argv, os.Stdout, os.Stderr))
}

// curlGafferd starts gafferd with the seed's style of configuration on a
// free loopback port and returns its base URL.
func curlGafferd(t *testing.T) string {
	t.Helper()
	port := testenv.FreePort(t)
	dir := t.TempDir()
	ini := filepath.Join(dir, "gaffer.ini")
	conf := fmt.Sprintf("[gaffer]\nhttp_endpoints = public\n\n[endpoint:public]\nbind = 127.0.0.1:%d\n", port)
	if err := os.WriteFile(ini, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCurlHelperGafferd$")
	argv, _ := json.Marshal([]string{"-c", ini, "--data-dir", filepath.Join(dir, "data")})
	cmd.Env = append(os.Environ(), curlHelperEnv+"="+string(argv))
	p := testenv.Start(t, "gafferd", cmd)
	base := fmt.Sprintf("http://localhost:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if p.Exited() {
			t.Fatalf("gafferd exited: %v\n%s", p.Err, p.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("gafferd did not answer /ping within 20 s\n%s", p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// curl runs curl with args and returns the body and the HTTP status.
func curl(t *testing.T, args ...string) (string, int) {
	t.Helper()
	args = append([]string{"-s", "-S", "-w", "\n%{http_code}"}, args...)
	out, err := exec.Command("curl", args...).Output()
	if err != nil {
		t.Fatalf("curl %s: %v", strings.Join(args, " "), err)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	code, err := strconv.Atoi(s[i+1:])
	if err != nil {
		t.Fatalf("curl %s: no status in %q", strings.Join(args, " "), s)
	}
	return s[:i], code
}

// curlJSON runs curl, wants the status and decodes the JSON body.
func curlJSON(t *testing.T, status int, args ...string) any {
	t.Helper()
	body, code := curl(t, args...)
	if code != status {
		t.Fatalf("curl %s: status %d, want %d; body %s", strings.Join(args, " "), code, status, body)
	}
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("curl %s: body %q is not JSON", strings.Join(args, " "), body)
	}
	return v
}

func curlWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCurlLegacyAPI(t *testing.T) {
	if os.Getenv(curlHelperEnv) != "" {
		t.Skip("inside the helper")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed: the seed's curl examples cannot be run")
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep program")
	}
	base := curlGafferd(t)
	ok := map[string]any{"ok": true}
	isOK := func(v any, what string) {
		t.Helper()
		if m, _ := v.(map[string]any); m == nil || m["ok"] != true {
			t.Fatalf("%s: %v, want %v", what, v, ok)
		}
	}

	// add_process.rst: POST /processes with the documented properties (the
	// page's pseudo-JSON made valid).
	tmpl := fmt.Sprintf(`{"name": "somename", "cmd": "%s 3600", "args": [], "env": {}, "uid": "", "gid": "",
		"cwd": %q, "detach": false, "shell": false, "os_env": false, "numprocesses": 1}`, sleep, t.TempDir())
	isOK(curlJSON(t, 200, "-XPOST", "-H", "Content-Type: application/json", "-H", "Accept: application/json",
		"-d", tmpl, base+"/processes"), "POST /processes")
	if v := curlJSON(t, 409, "-XPOST", "-d", tmpl, base+"/processes").(map[string]any); v["error"] != "conflict" {
		t.Fatalf("second POST: %v", v)
	}
	if v := curlJSON(t, 200, base+"/processes"); fmt.Sprint(v) != "[somename]" {
		t.Fatalf("GET /processes: %v", v)
	}
	if v := curlJSON(t, 200, base+"/processes/somename").(map[string]any); v["name"] != "somename" || v["cmd"] != sleep+" 3600" {
		t.Fatalf("GET /processes/somename: %v", v)
	}
	if _, code := curl(t, "-I", base+"/processes/somename"); code != 200 {
		t.Fatalf("HEAD /processes/somename: %d", code)
	}
	status := func() map[string]any { return curlJSON(t, 200, base+"/status/somename").(map[string]any) }
	curlWait(t, "somename to run", func() bool { return status()["running"] == float64(1) })
	pids := curlJSON(t, 200, base+"/processes/somename/_pids").(map[string]any)
	if pids["ok"] != true || len(pids["pids"].([]any)) != 1 {
		t.Fatalf("_pids: %v", pids)
	}
	pid := strconv.Itoa(int(pids["pids"].([]any)[0].(float64)))
	if v := curlJSON(t, 200, base+"/processes?running=true"); fmt.Sprint(v) != "["+pid+"]" {
		t.Fatalf("GET /processes?running=true: %v", v)
	}

	// add.rst / sub.rst: POST /processes/<name>/_add/<n>, _sub/<n>.
	if v := curlJSON(t, 200, "-XPOST", base+"/processes/somename/_add/2").(map[string]any); v["numprocesses"] != float64(3) {
		t.Fatalf("_add/2: %v", v)
	}
	curlWait(t, "3 processes", func() bool { return status()["running"] == float64(3) })
	if st := status(); st["active"] != true || st["max_processes"] != float64(3) {
		t.Fatalf("status: %v", st)
	}
	if v := curlJSON(t, 200, "-XPOST", base+"/processes/somename/_sub/2").(map[string]any); v["numprocesses"] != float64(1) {
		t.Fatalf("_sub/2: %v", v)
	}
	curlWait(t, "1 process", func() bool { return status()["running"] == float64(1) })

	// kill.rst: POST /processes/<name_or_id>/_signal/<signum>, by name and
	// by id; sleep dies of HUP and is replaced.
	first := curlJSON(t, 200, base+"/processes/somename/_pids").(map[string]any)["pids"].([]any)[0]
	isOK(curlJSON(t, 200, "-XPOST", base+"/processes/somename/_signal/HUP"), "_signal/HUP")
	var second any
	curlWait(t, "a replacement after HUP", func() bool {
		p := curlJSON(t, 200, base+"/processes/somename/_pids").(map[string]any)["pids"].([]any)
		if len(p) == 1 && p[0] != first {
			second = p[0]
			return true
		}
		return false
	})
	id := strconv.Itoa(int(second.(float64)))
	isOK(curlJSON(t, 200, "-XPOST", base+"/processes/"+id+"/_signal/15"), "_signal/15 by id")
	curlWait(t, "a replacement after TERM", func() bool {
		p := curlJSON(t, 200, base+"/processes/somename/_pids").(map[string]any)["pids"].([]any)
		return len(p) == 1 && p[0] != second
	})

	// stop.rst / start.rst.
	isOK(curlJSON(t, 200, "-XPOST", base+"/processes/somename/_stop"), "_stop")
	curlWait(t, "stopped", func() bool { return status()["running"] == float64(0) })
	isOK(curlJSON(t, 200, "-XPOST", base+"/processes/somename/_start"), "_start")
	curlWait(t, "started again", func() bool { return status()["running"] == float64(1) })

	// update_process (Recommended): PUT /processes/<name>.
	isOK(curlJSON(t, 200, "-XPUT", "-d", fmt.Sprintf(`{"cmd": "%s 3601"}`, sleep), base+"/processes/somename"), "PUT")
	if v := curlJSON(t, 200, base+"/processes/somename").(map[string]any); v["cmd"] != sleep+" 3601" {
		t.Fatalf("after PUT: %v", v)
	}
	curlWait(t, "running after PUT", func() bool { return status()["running"] == float64(1) })

	// Groups and stats.
	if v := curlJSON(t, 200, base+"/groups"); fmt.Sprint(v) != "[default]" {
		t.Fatalf("GET /groups: %v", v)
	}
	if v := curlJSON(t, 200, base+"/groups/default"); fmt.Sprint(v) != "[somename]" {
		t.Fatalf("GET /groups/default: %v", v)
	}
	stats := curlJSON(t, 200, base+"/stats").([]any)
	if len(stats) != 1 || stats[0].(map[string]any)["name"] != "somename" {
		t.Fatalf("GET /stats: %v", stats)
	}
	curlStatsFeed(t, base+"/stats/somename?feed=eventsource")

	// /metrics as any scraper reads it.
	metrics, code := curl(t, base+"/metrics")
	if code != 200 || !strings.Contains(metrics, `gaffer_job_desired_processes{session="default",name="somename"} 1`+"\n") {
		t.Fatalf("GET /metrics: %d\n%s", code, metrics)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(metrics)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool check metrics: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool is not on PATH: skipping promtool check metrics")
	}

	// del_process.rst: DELETE /processes/<name>.
	isOK(curlJSON(t, 200, "-XDELETE", base+"/processes/somename"), "DELETE")
	if v := curlJSON(t, 404, base+"/processes/somename").(map[string]any); v["error"] != "not_found" || v["errno"] != float64(404) {
		t.Fatalf("GET after DELETE: %v", v)
	}
	if v := curlJSON(t, 200, base+"/processes"); fmt.Sprint(v) != "[]" {
		t.Fatalf("GET /processes after DELETE: %v", v)
	}
}

// curlStatsFeed reads the first "stat" event of `curl -N` on an
// eventsource feed, then ends curl.
func curlStatsFeed(t *testing.T, url string) {
	t.Helper()
	cmd := exec.Command("curl", "-s", "-N", url)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	sc := bufio.NewScanner(out)
	var event, data string
	for sc.Scan() && (event == "" || data == "") {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			data = v
		}
	}
	var v map[string]any
	if event != "stat" || json.Unmarshal([]byte(data), &v) != nil || v["ctime"] == nil || v["id"] == nil {
		t.Fatalf("curl -N %s: event %q data %q", url, event, data)
	}
}
