package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ctlWatcher is a running `gafferctl watch [pattern]` whose lines (the
// time stamp cut off) arrive on lines.
type ctlWatcher struct {
	pattern string
	cmd     *exec.Cmd
	lines   chan string
	got     []string
}

var watchStampRE = regexp.MustCompile(`^\d\d:\d\d:\d\d `)

func startCtlWatch(t *testing.T, url string, pattern ...string) *ctlWatcher {
	t.Helper()
	args := append([]string{"--connect=" + url, "watch"}, pattern...)
	w := &ctlWatcher{pattern: strings.Join(pattern, " "), cmd: gafferctl(t, args...),
		lines: make(chan string, 1000)}
	pipe, _ := w.cmd.StdoutPipe()
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.cmd.Process.Signal(syscall.SIGINT)
		w.cmd.Wait()
	})
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			w.lines <- watchStampRE.ReplaceAllString(sc.Text(), "")
		}
		close(w.lines)
	}()
	return w
}

// settle collects lines until every watcher has at least want[i] lines
// and then none for quiet (the duplicates of one event are published
// together, so they would come within it); it returns what each got
// and resets them.
func settle(t *testing.T, ws []*ctlWatcher, want []int, quiet time.Duration) [][]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	lastLine := time.Now()
	for {
		moved := false
		for _, w := range ws {
			select {
			case l, ok := <-w.lines:
				if !ok {
					t.Fatalf("watch %q ended", w.pattern)
				}
				w.got = append(w.got, l)
				moved = true
			default:
			}
		}
		if moved {
			lastLine = time.Now()
			continue
		}
		enough := true
		for i, w := range ws {
			enough = enough && len(w.got) >= want[i]
		}
		if enough && time.Since(lastLine) >= quiet {
			break
		}
		if time.Now().After(deadline) {
			var got []string
			for _, w := range ws {
				got = append(got, fmt.Sprintf("%q: %q", w.pattern, w.got))
			}
			t.Fatalf("timed out: %s", strings.Join(got, "; "))
		}
		time.Sleep(10 * time.Millisecond)
	}
	out := make([][]string, len(ws))
	for i, w := range ws {
		out[i], w.got = w.got, nil
	}
	return out
}

// gafferctl watch, with and without a pattern, prints each happening of
// the job dummy (default session) once, in the documentation's forms.
func TestWatchPrintsEachHappeningOnce(t *testing.T) {
	url, cl := startGafferd(t)
	ctx := context.Background()
	want(t, ctlRun(t, "", "--connect="+url, "add_process", "--start", "dummy", "sleep 300"), 0, "dummy\n")
	current := func() int {
		var pids []int
		waitFor(t, 20*time.Second, "one dummy process", func() bool {
			pids, _ = cl.JobPids(ctx, "default.dummy")
			return len(pids) == 1
		})
		return pids[0]
	}
	ws := []*ctlWatcher{
		startCtlWatch(t, url),
		startCtlWatch(t, url, "proc(dummy)"),
		startCtlWatch(t, url, "proc(dummy).spawn"),
		startCtlWatch(t, url, "proc.dummy.spawn"),
	}
	// The watchers subscribe asynchronously: kill the process until each
	// has printed something, then let them settle.
	var lastKill time.Time
	waitFor(t, 30*time.Second, "every watcher to print", func() bool {
		if time.Since(lastKill) > 2*time.Second {
			cl.SignalProcess(ctx, current(), "KILL")
			lastKill = time.Now()
		}
		for _, w := range ws {
		drain:
			for {
				select {
				case l := <-w.lines:
					w.got = append(w.got, l)
				default:
					break drain
				}
			}
		}
		for _, w := range ws {
			if len(w.got) == 0 {
				return false
			}
		}
		return true
	})
	settle(t, ws, []int{0, 0, 0, 0}, 1500*time.Millisecond)

	pid := current()
	if err := cl.SignalProcess(ctx, pid, "KILL"); err != nil {
		t.Fatal(err)
	}
	exp := [][]string{
		{fmt.Sprintf("dummy | proc.%d.kill dummy", pid), "dummy | exit dummy", "dummy | spawn dummy"},
		{"dummy | proc.dummy.exit dummy", "dummy | proc.dummy.spawn dummy"},
		{"dummy | proc.dummy.spawn dummy"},
		{"dummy | proc.dummy.spawn dummy"},
	}
	check := func(what string, exp [][]string) {
		t.Helper()
		n := make([]int, len(exp))
		for i := range exp {
			n[i] = len(exp[i])
		}
		got := settle(t, ws, n, 1500*time.Millisecond)
		for i, w := range ws {
			if strings.Join(got[i], "\n") != strings.Join(exp[i], "\n") {
				t.Errorf("%s: watch %q printed %q, want %q", what, w.pattern, got[i], exp[i])
			}
		}
	}
	check("kill -9", exp)

	want(t, ctlRun(t, "", "--connect="+url, "add", "dummy"), 0, "*")
	check("add", [][]string{
		{"dummy | update dummy", "dummy | spawn dummy"},
		{"dummy | proc.dummy.spawn dummy"},
		{"dummy | proc.dummy.spawn dummy"},
		{"dummy | proc.dummy.spawn dummy"},
	})
}
