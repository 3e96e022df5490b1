package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/testenv"
)

// The tests build gafferctl and gafferd and run them as real processes;
// every command's effect is checked through the HTTP API.

func TestMain(m *testing.M) { testenv.Main(m) }

var waitFor = testenv.WaitFor

// startGafferd runs gafferd on 127.0.0.1:0 and returns its URL (read from
// its "listening" log line) and a client of it.
func startGafferd(t *testing.T) (string, *gaffer.Client) {
	t.Helper()
	return startGafferdData(t, filepath.Join(t.TempDir(), "data"), gaffer.ClientOptions{})
}

// startGafferdData is startGafferd with its data directory, more options
// and the options of the returned client.
func startGafferdData(t *testing.T, data string, opts gaffer.ClientOptions, extra ...string) (string, *gaffer.Client) {
	t.Helper()
	return testenv.Gafferd(t, opts, append([]string{"--bind", "127.0.0.1:0", "--data-dir", data}, extra...)...)
}

type result = testenv.Result

// gafferctl is the gafferctl program, built for the tests.
func gafferctl(t *testing.T, args ...string) *exec.Cmd {
	return exec.Command(testenv.Binary(t, "gafferctl"), args...)
}

func ctlRun(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return ctlEnv(t, nil, stdin, args...)
}

// ctlEnv runs gafferctl with GAFFERD_ADDRESS and GAFFER_API_KEY empty,
// then env.
func ctlEnv(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	cmd := gafferctl(t, args...)
	cmd.Env = append(append(os.Environ(), "GAFFERD_ADDRESS=", "GAFFER_API_KEY="), env...)
	cmd.Stdin = strings.NewReader(stdin)
	return testenv.Run(t, cmd)
}

func want(t *testing.T, r result, code int, stdout string) {
	t.Helper()
	if r.Code != code || (stdout != "*" && r.Stdout != stdout) {
		t.Fatalf("exit %d stdout %q (want %d %q); stderr %q", r.Code, r.Stdout, code, stdout, r.Stderr)
	}
}

func TestCommands(t *testing.T) {
	url, cl := startGafferd(t)
	ctx := context.Background()
	ctl := func(stdin string, args ...string) result {
		return ctlRun(t, stdin, append([]string{"--connect=" + url}, args...)...)
	}
	active := func(full string) bool {
		a, _ := cl.JobActive(ctx, full)
		return a
	}

	want(t, ctl("", "processes"), 0, "")
	want(t, ctl("", "processes", "--json"), 0, "[]\n")
	want(t, ctl("", "add_process", "--start", "dummy", "sleep 300"), 0, "dummy\n")
	waitFor(t, 10*time.Second, "dummy to run", func() bool { return active("default.dummy") })
	want(t, ctl("", "add_process", "dummy", "sleep 300"), 1, "")
	want(t, ctl("", "add_process", "quiet", "sleep 300"), 0, "quiet\n")
	if info, err := cl.JobInfo(ctx, "default.quiet"); err != nil || info.Active || info.State == gaffer.JobRunning {
		t.Fatalf("add_process without --start: %+v %v", info, err)
	}
	want(t, ctl("", "PROCESSES"), 0, "dummy\nquiet\n") // one per line (0.4 printed ['dummy', 'quiet'])
	pids, _ := cl.Pids(ctx)
	want(t, ctl("", "processes", "--running"), 0, fmt.Sprintf("[%d]\n", pids[0]))
	r := ctl("", "processes", "--json")
	var names []string
	if json.Unmarshal([]byte(r.Stdout), &names) != nil || len(names) != 2 {
		t.Fatalf("processes --json: %q", r.Stdout)
	}

	r = ctl("", "get_process", "dummy")
	var cfg map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &cfg); err != nil || cfg["name"] != "dummy" || cfg["cmd"] != "sleep 300" {
		t.Fatalf("get_process: %v %q", err, r.Stdout)
	}
	want(t, ctl("", "status", "dummy"), 0, "active\n")
	want(t, ctl("", "status", "quiet"), 0, "stopped\n")
	want(t, ctl("", "running", "dummy"), 0, "1\n")
	want(t, ctl("", "numprocesses", "dummy"), 0, "1\n")
	want(t, ctl("", "pids", "dummy"), 0, fmt.Sprintf("[%d]\n", pids[0]))
	// A pid stands for its template.
	want(t, ctl("", "numprocesses", strconv.Itoa(pids[0])), 0, "1\n")

	want(t, ctl("", "add", "dummy", "2"), 0, "3\n")
	if info, _ := cl.JobInfo(ctx, "default.dummy"); info.MaxProcesses != 3 {
		t.Fatalf("after add: %d", info.MaxProcesses)
	}
	want(t, ctl("", "sub", "dummy", "5"), 0, "0\n")
	want(t, ctl("", "add", "dummy"), 0, "1\n")
	want(t, ctl("", "add", "dummy", "x"), 2, "")

	want(t, ctl("", "kill", "dummy", "cont"), 0, "ok\n")
	waitFor(t, 10*time.Second, "one dummy", func() bool {
		p, _ := cl.JobPids(ctx, "default.dummy")
		pids = p
		return len(p) == 1
	})
	want(t, ctl("", "kill", strconv.Itoa(pids[0]), "SIGCONT"), 0, "ok\n")
	want(t, ctl("", "kill", "dummy", "NOPE"), 2, "")

	// stop then start works (0.4's BUG S1).
	want(t, ctl("", "stop", "dummy"), 0, "ok\n")
	waitFor(t, 10*time.Second, "dummy stopped", func() bool { return !active("default.dummy") })
	want(t, ctl("", "status", "dummy"), 0, "stopped\n")
	want(t, ctl("", "start", "dummy"), 0, "ok\n")
	waitFor(t, 10*time.Second, "dummy started", func() bool { return active("default.dummy") })

	// update_process really updates, and keeps the job running.
	want(t, ctl("", "update_process", "dummy", "sleep 200"), 0, "dummy\n")
	waitFor(t, 10*time.Second, "dummy updated", func() bool {
		info, _ := cl.JobInfo(ctx, "default.dummy")
		return info.Config["cmd"] == "sleep 200" && info.Active
	})
	want(t, ctl(`{"numprocesses": 2}`, "update_process", "--start", "quiet", "-"), 0, "quiet\n")
	waitFor(t, 10*time.Second, "quiet started", func() bool { return active("default.quiet") })

	// load_process from stdin and from a file, with a group.
	want(t, ctl(`{"name": "grp:web", "cmd": "sleep 300"}`, "load_process", "--start", "-"), 0, "grp:web\n")
	waitFor(t, 10*time.Second, "grp.web", func() bool { return active("grp.web") })
	f := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(f, []byte(`{"name": "fromfile", "cmd": "sleep", "args": ["300"]}`), 0o644)
	want(t, ctl("", "load_process", f), 0, "fromfile\n")
	if ok, _ := cl.JobExists(ctx, "default.fromfile"); !ok {
		t.Fatal("fromfile not loaded")
	}
	want(t, ctl(`{"cmd": "x"}`, "load_process", "-"), 1, "")
	r = ctl("", "load_process", "/nonexistent.json")
	if r.Code != 1 || !strings.Contains(r.Stderr, `"/nonexistent.json" not found`) {
		t.Fatalf("missing file: %d %q", r.Code, r.Stderr)
	}
	want(t, ctl("", "status", "grp:web"), 0, "active\n")

	// watch: dotted and proc(...) patterns.
	type watcher struct {
		cmd   *exec.Cmd
		lines <-chan string
	}
	startWatch := func(pattern string) watcher {
		w := watcher{cmd: gafferctl(t, "--connect="+url, "watch", pattern)}
		w.lines, _ = testenv.Lines(t, w.cmd)
		return w
	}
	watchers := []watcher{startWatch("proc(dummy).spawn"), startWatch("proc.dummy"), startWatch(".")}
	// A pattern shows the name it matched; no pattern, the primary name.
	spawnREs := []*regexp.Regexp{
		regexp.MustCompile(`^\d\d:\d\d:\d\d dummy \| proc\.dummy\.spawn dummy$`),
		regexp.MustCompile(`^\d\d:\d\d:\d\d dummy \| proc\.dummy\.spawn dummy$`),
		regexp.MustCompile(`^\d\d:\d\d:\d\d dummy \| spawn dummy$`),
	}
	got := make([]bool, len(watchers))
	waitFor(t, 20*time.Second, "spawn lines in every watcher", func() bool {
		ctl("", "add", "dummy") // the watchers subscribe asynchronously
		for i, w := range watchers {
		drain:
			for {
				select {
				case l := <-w.lines:
					if spawnREs[i].MatchString(l) {
						got[i] = true
					} else if i == 0 {
						t.Errorf("proc(dummy).spawn printed %q", l)
					}
				default:
					break drain
				}
			}
		}
		return got[0] && got[1] && got[2]
	})
	for _, w := range watchers {
		w.cmd.Process.Signal(syscall.SIGINT)
		if err := w.cmd.Wait(); err != nil {
			t.Fatalf("watch after SIGINT: %v", err)
		}
	}
	want(t, ctlRun(t, "", "--connect="+url, "watch", "proc(dummy"), 2, "")

	want(t, ctl("", "del_process", "dummy"), 0, "ok\n")
	if ok, _ := cl.JobExists(ctx, "default.dummy"); ok {
		t.Fatal("dummy still loaded")
	}
	r = ctl("", "status", "dummy")
	if r.Code != 1 || strings.Count(r.Stderr, "\n") != 1 || !strings.HasPrefix(r.Stderr, "gafferctl: ") {
		t.Fatalf("status of a deleted template: %d %q", r.Code, r.Stderr)
	}
}

func TestErrorsAndHelp(t *testing.T) {
	l := filepath.Join(t.TempDir(), "none.sock")
	for _, env := range []bool{false, true} {
		args := []string{"--connect=unix:" + l, "processes"}
		cmd := gafferctl(t, args...)
		if env {
			cmd = gafferctl(t, "processes")
			cmd.Env = append(os.Environ(), "GAFFERD_ADDRESS=unix:"+l)
		}
		var errb bytes.Buffer
		cmd.Stderr = &errb
		err := cmd.Run()
		ee, _ := err.(*exec.ExitError)
		if ee == nil || ee.ExitCode() != 1 || errb.String() != "gafferctl: cannot reach gafferd at unix:"+l+": no such file or directory\n" {
			t.Fatalf("env=%v: %v %q", env, err, errb.String())
		}
	}
	r := ctlRun(t, "", "help")
	want(t, r, 0, "*")
	names := regexp.MustCompile(`(?m)^\t(\S+)`).FindAllStringSubmatch(r.Stdout, -1)
	if len(names) != 19 { // 0.4's 17, help, version and restart
		t.Fatalf("help lists %d commands:\n%s", len(names), r.Stdout)
	}
	for _, n := range names {
		if r := ctlRun(t, "", n[1], "-h"); r.Code != 0 || !strings.Contains(r.Stderr, "usage: gafferctl "+n[1]) {
			t.Errorf("%s -h: %d %q", n[1], r.Code, r.Stderr)
		}
	}
	want(t, ctlRun(t, "", "version"), 0, "gaffer (version "+gaffer.Version+")\nAvailable in the public domain.\n\n")
	want(t, ctlRun(t, "", "nosuch"), 2, "")
	want(t, ctlRun(t, "", "--nosuch", "processes"), 2, "")
	want(t, ctlRun(t, "", "status", "a", "b"), 2, "")
	want(t, ctlRun(t, "", "--certfile=/x", "processes"), 1, "")
}

func TestWatchPatterns(t *testing.T) {
	cases := map[string]string{
		"":                  ".",
		"proc(dummy)":       "proc.dummy",
		"proc(dummy).spawn": "proc.dummy.spawn",
		"proc.ga:a.exit":    "proc.ga.a.exit",
		"job.ga:a.":         "job.ga.a",
		"proc.3.kill":       "proc.3.kill",
		"spawn":             "spawn",
	}
	for in, out := range cases {
		got, err := watchPattern(in)
		if err != nil || got != out {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"proc(", "proc()x", "a b"} {
		if _, err := watchPattern(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if got := legacyEventName("proc.default.dummy.spawn", "default.dummy"); got != "proc.dummy.spawn" {
		t.Errorf("legacyEventName: %q", got)
	}
}
