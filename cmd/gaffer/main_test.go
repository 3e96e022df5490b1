package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
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

// The tests build gaffer and gafferd and run them as real processes.

func TestMain(m *testing.M) { testenv.Main(m) }

var waitFor = testenv.WaitFor

// startGafferd runs gafferd on a unix socket (with the extra options)
// and returns its address and a client of it.
func startGafferd(t *testing.T, extra ...string) (string, *gaffer.Client) {
	t.Helper()
	dir := t.TempDir()
	return startGafferdData(t, dir, filepath.Join(dir, "data"), gaffer.ClientOptions{}, extra...)
}

// startGafferdData is startGafferd with its data directory and the
// options of the returned client.
func startGafferdData(t *testing.T, dir, data string, opts gaffer.ClientOptions, extra ...string) (string, *gaffer.Client) {
	t.Helper()
	return testenv.Gafferd(t, opts, append([]string{"--bind", "unix:" + filepath.Join(dir, "g.sock"), "--data-dir", data}, extra...)...)
}

type result = testenv.Result

// gaffer is the gaffer program, built for the tests.
func gafferCmd(t *testing.T, args ...string) *exec.Cmd {
	return exec.Command(testenv.Binary(t, "gaffer"), args...)
}

// gafferIn runs the gaffer binary in dir.
func gafferIn(t *testing.T, dir, stdin string, args ...string) result {
	t.Helper()
	return gafferEnv(t, dir, nil, stdin, args...)
}

// gafferEnv runs the gaffer binary in dir with GAFFERD_ADDRESS and
// GAFFER_API_KEY empty, then env.
func gafferEnv(t *testing.T, dir string, env []string, stdin string, args ...string) result {
	t.Helper()
	cmd := gafferCmd(t, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GAFFER_CONFIG="+filepath.Join(t.TempDir(), "gaffer.ini"), "GAFFERD_ADDRESS=", "GAFFER_API_KEY="), env...)
	cmd.Stdin = strings.NewReader(stdin)
	return testenv.Run(t, cmd)
}

func want(t *testing.T, r result, code int, stdoutHas ...string) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.Code, code, r.Stdout, r.Stderr)
	}
	for _, s := range stdoutHas {
		if !strings.Contains(r.Stdout, s) {
			t.Fatalf("stdout lacks %q:\n%s\nstderr: %s", s, r.Stdout, r.Stderr)
		}
	}
}

// writeApp makes an app directory "myapp" with a Procfile and a .env.
func writeApp(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "myapp")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pf := "web: sh -c 'i=0; while true; do i=$((i+1)); echo \"web $i port $PORT $GREETING\"; sleep 0.2; done'\n" +
		"worker: sh -c 'while true; do echo worker tick; sleep 0.2; done'\n"
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte(pf), 0o644)
	os.WriteFile(filepath.Join(dir, ".env"), []byte("GREETING=hello\n"), 0o644)
	return dir
}

func TestServerCommands(t *testing.T) {
	addr, cl := startGafferd(t)
	ctx := context.Background()
	app := writeApp(t)
	g := func(stdin string, args ...string) result {
		return gafferIn(t, app, stdin, append([]string{"-g", addr}, args...)...)
	}

	want(t, g("", "load"), 0, "==> 'myapp' has been loaded in "+addr)
	want(t, g("", "load"), 0, "'myapp.web' already loaded")
	info, err := cl.JobInfo(ctx, "myapp.web")
	if err != nil || info.Config["cwd"] != app {
		t.Fatalf("job info %+v %v", info, err)
	}
	want(t, g("", "apps"), 0, "myapp\n")
	waitFor(t, 10*time.Second, "web to run", func() bool {
		a, _ := cl.JobActive(ctx, "myapp.web")
		return a
	})
	r := g("", "ps")
	want(t, r, 0, "=== web: `sh -c", "=== worker: `sh", "Total CPU: ")
	if !regexp.MustCompile(`(?m)^web\.\d+: up for \d+`).MatchString(r.Stdout) {
		t.Fatalf("ps: no process line:\n%s", r.Stdout)
	}
	var psj []struct {
		Job gaffer.JobInfo `json:"job"`
	}
	r = g("", "ps", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &psj); err != nil || len(psj) != 2 {
		t.Fatalf("ps --json: %v\n%s", err, r.Stdout)
	}

	// logs sees live output lines and lifecycle events.
	logs := gafferCmd(t, "-g", addr, "logs")
	logs.Dir = app
	logs.Env = append(os.Environ(), "NO_COLOR=1")
	lines, logsErr := testenv.Lines(t, logs)
	outputRE := regexp.MustCompile(`^\d\d:\d\d:\d\d web\.\d+ \| web \d+ port 5000 hello$`)
	spawnRE := regexp.MustCompile(`^\d\d:\d\d:\d\d myapp\.web \| spawn process with pid \d+$`)
	seenOut, seenSpawn, seenScaledOut := false, false, false
	scaled := false
	deadline := time.After(20 * time.Second)
	for !(seenOut && seenSpawn && seenScaledOut) {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("logs ended early: %s", logsErr.String())
			}
			seenOut = seenOut || outputRE.MatchString(l)
			if spawnRE.MatchString(l) {
				seenSpawn = true
			}
			if seenSpawn && outputRE.MatchString(l) {
				seenScaledOut = true // output of a process spawned after logs started
			}
		case <-deadline:
			t.Fatalf("logs: out=%v spawn=%v scaled=%v; stderr %s", seenOut, seenSpawn, seenScaledOut, logsErr.String())
		}
		if seenOut && !scaled {
			scaled = true
			want(t, g("", "scale", "web=3", "worker+1"), 0,
				"Scaling myapp.web processes... done, now running 3\n",
				"Scaling myapp.worker processes... done, now running 2\n")
		}
	}
	logs.Process.Signal(syscall.SIGINT)
	if err := logs.Wait(); err != nil {
		t.Fatalf("logs after SIGINT: %v (%s)", err, logsErr.String())
	}
	if info, _ := cl.JobInfo(ctx, "myapp.web"); info.MaxProcesses != 3 {
		t.Fatalf("web max_processes %d", info.MaxProcesses)
	}
	want(t, g("", "scale", "web-2"), 0, "now running 1")
	want(t, g("", "ps:scale", "nothere=1"), 1)
	want(t, g("", "scale", "web"), 2)

	want(t, g("", "ps:info", "web"), 0, "num_processes: 1\n", "active: true\n")
	pids, _ := cl.JobPids(ctx, "myapp.web")
	want(t, g("", "ps:info", strconv.Itoa(pids[0])), 0, "name: myapp.web\n")
	want(t, g("", "ps:info", "99999"), 1)
	want(t, g("", "ps:kill", "web", "CONT"), 0, "'CONT' sent to 'web'")
	want(t, g("", "ps:kill", "web", "NOSUCH"), 2)
	r = g("", "commit", "web", "-p", "EXTRA=1")
	want(t, r, 0, "'myapp.web': new process ")
	want(t, g("", "ps:stop", "worker"), 0, "'worker' stopped")
	waitFor(t, 10*time.Second, "worker stopped", func() bool {
		a, _ := cl.JobActive(ctx, "myapp.worker")
		return !a
	})
	want(t, g("", "ps:start", "worker"), 0, "'worker' started")
	waitFor(t, 10*time.Second, "worker started", func() bool {
		a, _ := cl.JobActive(ctx, "myapp.worker")
		return a
	})
	want(t, g("", "reload", "--no-input", "web"), 0, "job 'web' reloaded")

	// send and recv: a job with stdin.
	job := gaffer.NewJobConfig("cat", "cat")
	job.RedirectInput, job.RedirectOutput = true, []string{"out"}
	job.OSEnv = true
	if err := cl.Load(ctx, "myapp", job); err != nil {
		t.Fatal(err)
	}
	var catPid int
	waitFor(t, 10*time.Second, "cat", func() bool {
		p, _ := cl.JobPids(ctx, "myapp.cat")
		if len(p) == 1 {
			catPid = p[0]
		}
		return catPid != 0
	})
	recv := gafferCmd(t, "-g", addr, "recv", strconv.Itoa(catPid))
	rpipe, _ := recv.StdoutPipe()
	recv.Start()
	got := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(rpipe)
		for sc.Scan() {
			got <- sc.Text()
		}
	}()
	// recv subscribes asynchronously: send until a line comes back.
	var line string
	waitFor(t, 10*time.Second, "recv to get the line", func() bool {
		want(t, g("", "send", strconv.Itoa(catPid), "hello", "cat"), 0)
		select {
		case line = <-got:
			return true
		case <-time.After(200 * time.Millisecond):
			return false
		}
	})
	if line != "hello cat" {
		t.Fatalf("recv got %q", line)
	}
	recv.Process.Signal(syscall.SIGINT)
	if err := recv.Wait(); err != nil {
		t.Fatalf("recv: %v", err)
	}
	want(t, g("", "send", "999999", "x"), 1)

	want(t, g("", "unload", "--no-input"), 0, "==> app 'myapp' unloaded")
	if jobs, _ := cl.Jobs(ctx); len(jobs) != 0 {
		t.Fatalf("jobs left after unload: %v", jobs)
	}
	r = g("", "ps")
	want(t, r, 1)
	if r.Stderr != "gaffer: 'myapp' not loaded\n" {
		t.Fatalf("ps after unload: %q", r.Stderr)
	}
	// unload without --no-input and no answer aborts.
	want(t, g("", "load"), 0)
	want(t, g("", "unload"), 1)
	want(t, g("y\n", "unload"), 0, "==> app 'myapp' unloaded")

	// A JSON job file, with an app prefix in the name.
	jf := filepath.Join(t.TempDir(), "jobs.json")
	os.WriteFile(jf, []byte(`{"jobs": [{"name": "other.sleeper", "cmd": "sleep 300", "os_env": true}]}`), 0o644)
	want(t, g("", "load", jf), 0, "'other.sleeper' has been loaded in ", "'"+jf+"' has been loaded")
	if ok, _ := cl.JobExists(ctx, "other.sleeper"); !ok {
		t.Fatal("other.sleeper not loaded")
	}
	want(t, g("", "unload", "--app", "other", "--no-input", "sleeper"), 0, "job 'sleeper' unloaded")
	want(t, g("", "unload", "--app", "other", "--no-input", "sleeper"), 1)
}

func TestErrorsAndHelp(t *testing.T) {
	app := writeApp(t)
	missing := "unix:" + filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{{"ps"}, {"apps"}, {"load"}, {"scale", "web=1"}, {"logs"}} {
		r := gafferIn(t, app, "", append([]string{"-g", missing}, args...)...)
		if r.Code != 1 || r.Stderr != "gaffer: cannot reach gafferd at "+missing+": no such file or directory\n" {
			t.Fatalf("%v: exit %d stderr %q", args, r.Code, r.Stderr)
		}
	}
	r := gafferIn(t, app, "", "help")
	want(t, r, 0, "start (dev:start)")
	names := regexp.MustCompile(`(?m)^    (\S+)`).FindAllStringSubmatch(r.Stdout, -1)
	if len(names) < 30 {
		t.Fatalf("help lists %d commands:\n%s", len(names), r.Stdout)
	}
	for _, n := range names {
		if r := gafferIn(t, app, "", n[1], "-h"); r.Code != 0 || !strings.Contains(r.Stderr, "usage: gaffer "+n[1]) {
			t.Errorf("%s -h: exit %d stderr %q", n[1], r.Code, r.Stderr)
		}
	}
	want(t, gafferIn(t, app, "", "nosuchcommand"), 2)
	want(t, gafferIn(t, app, "", "ps", "--nosuchflag"), 2)
	want(t, gafferIn(t, app, "", "--version"), 0, "gaffer version "+gaffer.Version)
	r = gafferIn(t, app, "", "-f", "nope/Procfile", "start")
	if r.Code != 1 || !strings.Contains(r.Stderr, "config error: procfile 'nope/Procfile' not found") {
		t.Fatalf("missing procfile: %d %q", r.Code, r.Stderr)
	}
	want(t, gafferIn(t, app, "", "start", "-c", "nosuch=2"), 2)
}

func TestExportAndRun(t *testing.T) {
	app := writeApp(t)
	want(t, gafferIn(t, app, "", "export", "-c", "web=2"), 0, "[process:myapp:web]\n", "numprocesses = 2\n", "env:GREETING = hello\n")
	out := filepath.Join(t.TempDir(), "app.json")
	want(t, gafferIn(t, app, "", "export", "json", "--out", out, "worker"), 0)
	var doc struct {
		Jobs []struct{ Name string } `json:"jobs"`
	}
	data, _ := os.ReadFile(out)
	if err := json.Unmarshal(data, &doc); err != nil || len(doc.Jobs) != 1 || doc.Jobs[0].Name != "myapp.worker" {
		t.Fatalf("export json: %v %s", err, data)
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o600 {
		t.Fatalf("export file mode %v", st.Mode())
	}
	want(t, gafferIn(t, app, "", "export", "yaml"), 2)

	r := gafferIn(t, app, "", "run", "sh", "-c", `echo "$GREETING from $(pwd)"; exit 3`)
	want(t, r, 3, "hello from "+app)
	want(t, gafferIn(t, app, "", "dev:run", "true"), 0)
	want(t, gafferIn(t, app, "", "run", "no-such-command-here"), 1)
}

// procGroups lists the process groups of every process on the system.
func procGroups() map[int][]int {
	out := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(data, ')')
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		pgrp, _ := strconv.Atoi(f[2])
		out[pgrp] = append(out[pgrp], pid)
	}
	return out
}

func TestStartForeground(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	examples, _ := filepath.Abs("../../examples")
	cmd := gafferCmd(t, "start", "-c", "web=2")
	cmd.Dir = examples
	cmd.Env = append(os.Environ(), "GAFFER_CONFIG=/nonexistent", "PORT=")
	lines, stderr := testenv.Lines(t, cmd)
	prefix := `^\d\d:\d\d:\d\d `
	// The names are padded to the longest, worker.1, as foreman does.
	webRE := regexp.MustCompile(prefix + `web\.(1|2)    \| dummy \d+$`)
	workerRE := regexp.MustCompile(prefix + `worker\.1 \| worker 5100 tick: hello world$`)
	startedRE := regexp.MustCompile(prefix + `\S+ +\| started with pid (\d+)$`)
	var all []string
	groups := map[int]bool{}
	web := map[string]bool{}
	worker := false
	deadline := time.After(20 * time.Second)
	for !(web["1"] && web["2"] && worker && len(groups) == 3) {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("gaffer start ended early:\n%s\nstderr: %s", strings.Join(all, "\n"), stderr.String())
			}
			all = append(all, l)
			if m := webRE.FindStringSubmatch(l); m != nil {
				web[m[1]] = true
			}
			worker = worker || workerRE.MatchString(l)
			if m := startedRE.FindStringSubmatch(l); m != nil {
				pid, _ := strconv.Atoi(m[1])
				groups[pid] = true // each process leads its own group
			}
		case <-deadline:
			t.Fatalf("missing lines (web %v worker %v groups %v):\n%s\nstderr: %s", web, worker, groups, strings.Join(all, "\n"), stderr.String())
		}
	}
	if strings.Contains(strings.Join(all, "\n"), "\x1b[") {
		t.Fatal("colour codes although stdout is a pipe")
	}
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() {
		for l := range lines {
			all = append(all, l)
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("gaffer start after SIGINT: %v\n%s\nstderr: %s", err, strings.Join(all, "\n"), stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("gaffer start did not stop on SIGINT")
	}
	text := strings.Join(all, "\n")
	for _, s := range []string{"system   | sending SIGTERM to all processes", "web.1    | dummy: got SIGTERM, exiting", "web.1    | exited with code 0"} {
		if !strings.Contains(text, s) {
			t.Errorf("output lacks %q:\n%s", s, text)
		}
	}
	for _, l := range all {
		if i := strings.Index(l, " | "); i != len("15:04:05 worker.1") {
			t.Errorf("the | column is not aligned at %d: %q", len("15:04:05 worker.1"), l)
		}
	}
	// No process of the three groups (the jobs and their children, such
	// as sleep) is left.
	for pg := range groups {
		if left := procGroups()[pg]; len(left) > 0 {
			t.Errorf("group %d still has processes %v", pg, left)
		}
	}
	if io.Discard == nil {
		t.Fatal()
	}
}

// gaffer start --exit-on-error: a process that fails stops every process
// gracefully and gaffer exits 1 (goreman's -exit-on-error); one that
// exits 0 just ends.
func TestStartExitOnError(t *testing.T) {
	app := t.TempDir()
	pf := "keeper: sh -c 'echo $$ > keeper.pid; exec sleep 300'\nok: sh -c 'exit 0'\nbad: sh -c 'sleep 1; exit 4'\n"
	if err := os.WriteFile(filepath.Join(app, "Procfile"), []byte(pf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := gafferCmd(t, "start", "--exit-on-error")
	cmd.Dir = app
	cmd.Env = append(os.Environ(), "GAFFER_CONFIG=/nonexistent")
	var out testenv.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("gaffer start --exit-on-error did not exit:\n%s", out.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit status %d, want 1:\n%s", code, out.String())
	}
	text := out.String()
	for _, s := range []string{"ok.1     | exited with code 0", "bad.1    | exited with code 4", "bad.1 failed: stopping every process", "keeper.1 | terminated by SIGTERM"} {
		if !strings.Contains(text, s) {
			t.Errorf("output lacks %q:\n%s", s, text)
		}
	}
	data, _ := os.ReadFile(filepath.Join(app, "keeper.pid"))
	if pid, _ := strconv.Atoi(strings.TrimSpace(string(data))); pid == 0 || syscall.Kill(pid, 0) == nil {
		t.Fatalf("the keeper (%d) survived", pid)
	}
}
