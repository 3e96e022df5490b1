package main

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/testenv"
)

// logsChild prints three lines, then two more a while later, then idles.
var logsChild = []any{"-c", "echo a1; echo a2; echo a3; sleep 1.5; echo b1; echo b2; exec sleep 300"}

// capturedLines returns the capture time of each line of process pid's
// stdout that gafferd holds, as the API gives them.
func capturedLines(t *testing.T, cl *gaffer.Client, pid int) map[string]time.Time {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	backlog, _, err := cl.FollowOutput(ctx, pid, "stdout", 0)
	if err != nil {
		t.Fatal(err)
	}
	at := map[string]time.Time{}
	for _, ch := range backlog {
		for _, l := range strings.Split(strings.TrimSuffix(string(ch.Data), "\n"), "\n") {
			at[l] = ch.Time
		}
	}
	return at
}

// stamp is the console's HH:MM:SS of t.
func stamp(t time.Time) string { return t.Format("15:04:05") }

// gaffer logs starts with what gafferd holds (-n, --since, --backlog),
// each line stamped with the time gafferd captured it, follows the output
// and the lifecycle events (an exit among them), and with --no-follow
// exits once it has printed what gafferd holds.
func TestLogsPrintsCaptureTimes(t *testing.T) {
	addr, cl := startGafferd(t)
	ctx := context.Background()
	if err := cl.LoadMap(ctx, "myapp", map[string]any{"name": "web", "cmd": "sh", "args": logsChild,
		"redirect_output": []string{"stdout"}, "graceful_timeout": 1}); err != nil {
		t.Fatal(err)
	}
	var pid int
	var at map[string]time.Time
	waitFor(t, 20*time.Second, "the child's five lines", func() bool {
		if pids, _ := cl.JobPids(ctx, "myapp.web"); len(pids) == 1 {
			pid = pids[0]
			at = capturedLines(t, cl, pid)
		}
		return !at["b2"].IsZero()
	})
	if !at["a3"].Before(at["b1"]) {
		t.Fatalf("capture times a3 %v, b1 %v", at["a3"], at["b1"])
	}
	// Old enough that the time printed tells capture from printing.
	waitFor(t, 10*time.Second, "the clock to pass the second of the last line", func() bool {
		return time.Since(at["b2"]) > 1100*time.Millisecond && stamp(time.Now()) != stamp(at["b2"])
	})
	gl := func(args ...string) result {
		return gafferEnv(t, t.TempDir(), []string{"NO_COLOR=1"}, "", append([]string{"-g", addr, "logs", "--app", "myapp"}, args...)...)
	}
	line := func(text string) string {
		return stamp(at[text]) + " web." + itoa(pid) + " | " + text
	}

	// -n 3: the last three lines, with their capture times, then follow.
	logs := gafferCmd(t, "-g", addr, "logs", "--app", "myapp", "-n", "3")
	logs.Env = append(os.Environ(), "NO_COLOR=1")
	lines, logsErr := testenv.Lines(t, logs)
	next := func(what string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("logs ended while waiting for %s: %s", what, logsErr.String())
			}
			return l
		case <-time.After(20 * time.Second):
			t.Fatalf("logs: no %s in 20 s; stderr %s", what, logsErr.String())
		}
		return ""
	}
	// (The job's events since the first of them come in between, in the
	// order they happened: the spawn may be published after the child's
	// first lines.)
	for _, text := range []string{"a3", "b1", "b2"} {
		l := next("line " + text)
		for strings.Contains(l, " myapp.web | ") {
			l = next("line " + text)
		}
		if l != line(text) {
			t.Fatalf("logs -n 3: %q, want %q (captured at %v)", l, line(text), at[text])
		}
	}
	// Following: an exit, the replacement's spawn and its output.
	if err := cl.SignalProcess(ctx, pid, "KILL"); err != nil {
		t.Fatal(err)
	}
	exitRE := regexp.MustCompile(`^\d\d:\d\d:\d\d myapp\.web \| exit process with pid ` + itoa(pid) + `$`)
	spawnRE := regexp.MustCompile(`^\d\d:\d\d:\d\d myapp\.web \| spawn process with pid (\d+)$`)
	var exited bool
	newPid := ""
	for newPid == "" || !exited {
		l := next("the exit and the spawn")
		exited = exited || exitRE.MatchString(l)
		if m := spawnRE.FindStringSubmatch(l); m != nil {
			newPid = m[1]
		}
	}
	for {
		if l := next("the new process's output"); strings.HasSuffix(l, " web."+newPid+" | a1") {
			break
		}
	}
	logs.Process.Signal(syscall.SIGINT)
	if err := logs.Wait(); err != nil {
		t.Fatalf("logs after SIGINT: %v (%s)", err, logsErr.String())
	}

	// --no-follow exits by itself, with everything gafferd holds: the new
	// process's lines and the job's events, in the order they happened.
	pid = atoi(t, newPid)
	waitFor(t, 20*time.Second, "the new process's five lines", func() bool {
		at = capturedLines(t, cl, pid)
		return !at["b2"].IsZero()
	})
	r := gl("--no-follow")
	t.Logf("gaffer logs --no-follow:\n%s", r.Stdout)
	want(t, r, 0, line("a1")+"\n"+line("a2")+"\n"+line("a3")+"\n", line("b1")+"\n"+line("b2")+"\n", "| exit process with pid ", "| spawn process with pid "+newPid)
	for i, ls := 1, strings.Split(strings.TrimSpace(r.Stdout), "\n"); i < len(ls); i++ {
		if ls[i][:8] < ls[i-1][:8] {
			t.Errorf("--no-follow: not in the order things happened:\n%s", r.Stdout)
		}
	}
	// --since: only what was captured since then.
	mid := at["a3"].Add(at["b1"].Sub(at["a3"]) / 2).Format(time.RFC3339Nano)
	r = gl("--no-follow", "--since", mid)
	want(t, r, 0, line("b1")+"\n"+line("b2")+"\n")
	if strings.Contains(r.Stdout, "| a") || strings.Contains(r.Stdout, "spawn process") {
		t.Errorf("--since %s printed what came before:\n%s", mid, r.Stdout)
	}
	if r := gl("--no-follow", "--since", "1h"); !strings.Contains(r.Stdout, line("a1")) {
		t.Errorf("--since 1h:\n%s", r.Stdout)
	}
	if r := gl("--no-follow", "-n", "1"); r.Stdout != line("b2")+"\n" {
		t.Errorf("--no-follow -n 1: %q, want the last line alone", r.Stdout)
	}
	want(t, gl("--since", "yesterday"), 2)
	want(t, gl("-n", "-3"), 2)

	// --backlog: everything the ring holds, then follow.
	logs = gafferCmd(t, "-g", addr, "logs", "--app", "myapp", "--backlog")
	logs.Env = append(os.Environ(), "NO_COLOR=1")
	lines, logsErr = testenv.Lines(t, logs)
	for {
		if l := next("line a1 of --backlog"); l == line("a1") {
			break
		}
	}
	logs.Process.Signal(syscall.SIGINT)
	logs.Wait()
}

func itoa(n int) string { return strconv.Itoa(n) }

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
