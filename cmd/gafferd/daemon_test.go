package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer/cmd/internal/testenv"
)

// These tests run the real gafferd binary on a temporary configuration and
// drive it over its unix socket, as an operator would.

func TestMain(m *testing.M) { testenv.Main(m) }

func gafferdBinary(t *testing.T) string { return testenv.Binary(t, "gafferd") }

// daemon is a gafferd run by a test, whose API is on the unix socket sock.
type daemon struct {
	*testenv.Proc
	t      *testing.T
	dir    string
	sock   string
	client *http.Client
}

// startDaemon writes cfg (with %SOCK% replaced) to dir/gaffer.ini and
// starts gafferd -vv on it.
func startDaemon(t *testing.T, dir, cfg string, extra ...string) *daemon {
	t.Helper()
	cfg = strings.ReplaceAll(cfg, "%SOCK%", filepath.Join(dir, "g.sock"))
	if err := os.WriteFile(filepath.Join(dir, "gaffer.ini"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return runDaemon(t, dir, append([]string{"-vv"}, extra...)...)
}

// runDaemon starts gafferd on dir/gaffer.ini, whose API must be on the
// unix socket dir/g.sock, and waits until it answers.
func runDaemon(t *testing.T, dir string, extra ...string) *daemon {
	t.Helper()
	return runDaemonArgs(t, dir, append([]string{"-c", filepath.Join(dir, "gaffer.ini")}, extra...)...)
}

// runDaemonArgs starts gafferd with exactly args; its API must be on the
// unix socket dir/g.sock. A gafferd that does not stop on SIGTERM at the
// end of the test is killed.
func runDaemonArgs(t *testing.T, dir string, args ...string) *daemon {
	t.Helper()
	sock := filepath.Join(dir, "g.sock")
	d := &daemon{t: t, dir: dir, sock: sock, client: testenv.UnixClient(sock, 10*time.Second)}
	d.Proc = testenv.Start(t, "gafferd", exec.Command(gafferdBinary(t), args...))
	d.Lenient = true
	d.waitFor(10*time.Second, "the API to answer", func() bool {
		resp, err := d.client.Get("http://localhost/ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return d
}

func (d *daemon) output() string { return d.Output() }

// signalExit sends sig to gafferd and waits for its exit: after timeout
// the test fails with msg.
func (d *daemon) signalExit(sig syscall.Signal, timeout time.Duration, msg string) {
	d.t.Helper()
	d.Cmd.Process.Signal(sig)
	select {
	case <-d.Done:
	case <-time.After(timeout):
		d.t.Fatal(msg)
	}
}

func (d *daemon) waitFor(timeout time.Duration, what string, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-d.Done:
			d.t.Fatalf("gafferd exited (%v) while waiting for %s", d.Err, what)
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (d *daemon) getJSON(path string, v any) int {
	d.t.Helper()
	resp, err := d.client.Get("http://localhost" + path)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		json.NewDecoder(resp.Body).Decode(v)
	}
	return resp.StatusCode
}

type jobInfo struct {
	Name         string         `json:"name"`
	Running      int            `json:"running"`
	MaxProcesses int            `json:"max_processes"`
	Processes    []int          `json:"processes"`
	Restarts     int            `json:"restarts"`
	Config       map[string]any `json:"config"`
}

type procInfo struct {
	OSPid int               `json:"os_pid"`
	Env   map[string]string `json:"env"`
}

func (d *daemon) job(name string) jobInfo {
	var ji jobInfo
	sid, job, _ := strings.Cut(name, ".")
	if code := d.getJSON("/jobs/"+sid+"/"+job, &ji); code != 200 {
		d.t.Fatalf("GET job %s: %d", name, code)
	}
	return ji
}

func (d *daemon) osPids(name string) []int {
	var out []int
	for _, pid := range d.job(name).Processes {
		var pi procInfo
		if d.getJSON("/"+strconv.Itoa(pid), &pi) == 200 {
			out = append(out, pi.OSPid)
		}
	}
	return out
}

func processAlive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(data), ')')
	return i > 0 && i+2 < len(data) && data[i+2] != 'Z'
}

const baseConfig = `[gaffer]
http_endpoints = sock
[endpoint:sock]
bind = unix:%SOCK%
`

func TestDaemonRunsConfigPriorityEnvAndStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig + `
[process:late]
cmd = sleep 300
numprocesses = 2

[process:app:first]
cmd = sleep 300
priority = 0

[process:web]
cmd = sh -c 'echo "port=$PORT greeting=$GREETING"; exec sleep 300'
redirect_output = stdout, stderr
env:GREETING = hi
graceful_timeout = 0.5

[env:web]
port = 80
`
	d := startDaemon(t, dir, cfg)
	d.waitFor(10*time.Second, "all processes", func() bool {
		return d.job("default.late").Running == 2 && d.job("default.web").Running == 1
	})
	// priority 0 first: its spawn line comes before the others'.
	d.waitFor(5*time.Second, "the child's output on the console", func() bool {
		return strings.Contains(d.output(), "port=80 greeting=hi")
	})
	out := d.output()
	iFirst := strings.Index(out, "app.first | spawn")
	iLate := strings.Index(out, "default.late | spawn")
	if iFirst < 0 || iLate < 0 || iFirst > iLate {
		t.Fatalf("priority order not respected:\n%s", out)
	}
	if !regexp.MustCompile(`\d\d:\d\d:\d\d default\.web \| port=80 greeting=hi`).MatchString(out) {
		t.Fatalf("console line format:\n%s", out)
	}
	var pids []int
	for _, j := range []string{"default.late", "app.first", "default.web"} {
		pids = append(pids, d.osPids(j)...)
	}
	d.signalExit(syscall.SIGTERM, 15*time.Second, "gafferd did not stop on SIGTERM")
	if d.Err != nil {
		t.Fatalf("gafferd exit: %v", d.Err)
	}
	for _, p := range pids {
		if processAlive(p) {
			t.Fatalf("process %d survived gafferd", p)
		}
	}
	if _, err := os.Stat(d.sock); err == nil {
		t.Fatal("the unix socket was left behind")
	}
}

func TestSighupReloadTouchesOnlyChangedJobs(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig + `
[process:keep]
cmd = sleep 300
[process:change]
cmd = sleep 300
[process:remove]
cmd = sleep 300
`
	d := startDaemon(t, dir, cfg)
	d.waitFor(10*time.Second, "processes", func() bool {
		return d.job("default.keep").Running == 1 && d.job("default.change").Running == 1
	})
	keep := d.job("default.keep").Processes
	change := d.job("default.change").Processes
	cfg2 := baseConfig + `
[process:keep]
cmd = sleep 300
[process:change]
cmd = sleep 301
[process:added]
cmd = sleep 300
`
	os.WriteFile(filepath.Join(dir, "gaffer.ini"), []byte(strings.ReplaceAll(cfg2, "%SOCK%", d.sock)), 0o644)
	d.Cmd.Process.Signal(syscall.SIGHUP)
	d.waitFor(10*time.Second, "the reload", func() bool {
		var jobs struct{ Jobs []string }
		d.getJSON("/jobs", &jobs)
		s := strings.Join(jobs.Jobs, ",")
		return strings.Contains(s, "default.added") && !strings.Contains(s, "default.remove")
	})
	if got := d.job("default.keep").Processes; fmt.Sprint(got) != fmt.Sprint(keep) {
		t.Fatalf("unchanged job's processes replaced: %v -> %v", keep, got)
	}
	d.waitFor(10*time.Second, "changed job respawned", func() bool {
		got := d.job("default.change")
		return got.Running == 1 && fmt.Sprint(got.Processes) != fmt.Sprint(change) && got.Config["cmd"] == "sleep 301"
	})
	// dry run through the API shows an empty diff now.
	resp, err := d.client.Post("http://localhost/reload?dry_run=1", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var diff map[string][]string
	json.NewDecoder(resp.Body).Decode(&diff)
	resp.Body.Close()
	if len(diff["added"])+len(diff["removed"])+len(diff["changed"]) != 0 || len(diff["unchanged"]) != 3 {
		t.Fatalf("dry-run diff after reload: %v", diff)
	}
}

func TestBadConfigIsAClearError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gaffer.ini")
	os.WriteFile(path, []byte("[process:x]\ncmd = sleep 1\nnumprocesses = many\n"), 0o644)
	out, err := exec.Command(gafferdBinary(t), "-c", path).CombinedOutput()
	if err == nil {
		t.Fatal("gafferd accepted a bad config")
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v", err)
	}
	if !strings.Contains(string(out), "gaffer.ini:3") || !strings.Contains(string(out), "numprocesses") {
		t.Fatalf("error does not name file, line and key: %s", out)
	}
}
