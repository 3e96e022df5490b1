package gaffer

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newTestManager(t *testing.T) *Manager {
	t.Helper()
	m := NewManager(Options{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return m
}

func osPids(t *testing.T, m *Manager, full string) []int {
	t.Helper()
	procs, err := m.JobProcesses(full)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, p := range procs {
		out = append(out, p.OSPid)
	}
	return out
}

func TestNumProcessesAndRestartAfterKill(t *testing.T) {
	m := newTestManager(t)
	cfg := childConfig(t, "sleeper", "sleep", nil)
	cfg.NumProcesses = 3
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	pids := osPids(t, m, "default.sleeper")
	if len(pids) != 3 {
		t.Fatalf("want 3 processes, got %v", pids)
	}
	for _, p := range pids {
		if !alive(p) {
			t.Fatalf("process %d is not running", p)
		}
	}
	sub := m.Events().Subscribe(0, "job.default.sleeper.spawn")
	defer sub.Unsubscribe()
	syscall.Kill(pids[0], syscall.SIGKILL)
	select {
	case ev := <-sub.C:
		if ev.Data["name"] != "default.sleeper" {
			t.Fatalf("unexpected event %v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("killed process not replaced")
	}
	waitFor(t, 5*time.Second, "3 live processes again", func() bool {
		ps := osPids(t, m, "default.sleeper")
		n := 0
		for _, p := range ps {
			if alive(p) {
				n++
			}
		}
		return len(ps) == 3 && n == 3
	})
	info, _ := m.JobInfo("default.sleeper", true)
	if info.Restarts != 1 || info.State != JobRunning {
		t.Fatalf("info: %+v", info)
	}
}

func TestScaleOperators(t *testing.T) {
	m := newTestManager(t)
	cfg := childConfig(t, "s", "sleep", nil)
	if err := m.Load("app", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	first := osPids(t, m, "app.s")[0]
	cases := []struct {
		v    any
		want int
	}{{2, 3}, {"+1", 4}, {"-2", 2}, {"=5", 5}, {"-9", 0}, {"3", 3}, {0, 3}}
	for _, c := range cases {
		op, err := ParseScale(c.v)
		if err != nil {
			t.Fatal(err)
		}
		n, err := m.Scale("app.s", op)
		if err != nil || n != c.want {
			t.Fatalf("scale %v: got %d, %v; want %d", c.v, n, err, c.want)
		}
		pids, _ := m.Pids("app.s")
		if len(pids) != c.want {
			t.Fatalf("scale %v: %d processes, want %d", c.v, len(pids), c.want)
		}
	}
	if alive(first) {
		waitFor(t, 5*time.Second, "oldest process reaped", func() bool { return !alive(first) })
	}
	for _, bad := range []any{"*2", "+", "x", "", 1.5, "=-1"} {
		if _, err := ParseScale(bad); err == nil {
			t.Errorf("ParseScale(%v) accepted", bad)
		}
	}
}

func TestScaleDownReapsOldestFirst(t *testing.T) {
	m := newTestManager(t)
	cfg := childConfig(t, "s", "sleep", nil)
	cfg.NumProcesses = 3
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	before, _ := m.Pids("default.s")
	if _, err := m.Scale("default.s", ScaleOp{Value: -2}); err != nil {
		t.Fatal(err)
	}
	after, _ := m.Pids("default.s")
	if len(after) != 1 || after[0] != before[2] {
		t.Fatalf("want the newest (%d) kept, got %v", before[2], after)
	}
}

func TestGracefulTimeoutKillsIgnorer(t *testing.T) {
	m := newTestManager(t)
	cfg := childConfig(t, "stubborn", "ignoreterm", nil)
	cfg.GracefulTimeout = 700 * time.Millisecond
	cfg.RedirectOutput = []string{"out"}
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	procs, _ := m.JobProcesses("default.stubborn")
	p := procs[0]
	st, _ := p.Stream("out")
	_, _, sub := st.Subscribe(0, true, 0)
	waitFor(t, 5*time.Second, "child ready", func() bool { return st.LastSeq() > 0 })
	sub.Close()
	start := time.Now()
	if err := m.StopJob("default.stubborn"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	case <-time.After(5 * time.Second):
		t.Fatal("process ignoring SIGTERM was not killed")
	}
	if el := time.Since(start); el < 650*time.Millisecond {
		t.Fatalf("killed after %v, before the graceful timeout", el)
	}
	m.mu.Lock()
	sig := p.termSignal
	m.mu.Unlock()
	if sig != int(syscall.SIGKILL) {
		t.Fatalf("term signal %d, want SIGKILL", sig)
	}
}

func TestStopJobKillsDoubleForkedGrandchild(t *testing.T) {
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("needs /proc")
	}
	m := newTestManager(t)
	pidfile := filepath.Join(t.TempDir(), "gc.pid")
	cfg := childConfig(t, "forker", "doublefork", map[string]string{"PIDFILE": pidfile})
	cfg.GracefulTimeout = 2 * time.Second
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	var gc int
	waitFor(t, 5*time.Second, "grandchild pid file", func() bool {
		data, err := os.ReadFile(pidfile)
		if err != nil || len(data) == 0 {
			return false
		}
		gc, _ = strconv.Atoi(string(data))
		return gc > 0
	})
	waitFor(t, 5*time.Second, "grandchild re-parented to us", func() bool { return ppidOf(gc) == os.Getpid() })
	if err := m.StopJob("default.forker"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "grandchild gone (and reaped)", func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(gc))
		return err != nil
	})
}

func TestEnvSubstitutionAndMissingVariable(t *testing.T) {
	m := newTestManager(t)
	cfg := childConfig(t, "env", "printenv", map[string]string{"PORT": "80", "NAME": "x"})
	cfg.Args = []string{"PORT", "GAFFER_JOB", "$NAME"}
	cfg.RedirectOutput = []string{"out", "err"}
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	procs, _ := m.JobProcesses("default.env")
	st, _ := procs[0].Stream("out")
	var all []byte
	waitFor(t, 5*time.Second, "env printed", func() bool {
		chunks, _ := st.Backlog(0)
		all = nil
		for _, c := range chunks {
			all = append(all, c.Data...)
		}
		return strings.Count(string(all), "\n") >= 3
	})
	if !strings.Contains(string(all), "PORT=80\n") || !strings.Contains(string(all), "GAFFER_JOB=default.env\n") || !strings.Contains(string(all), "x=\n") {
		t.Fatalf("unexpected output %q", all)
	}
	bad := childConfig(t, "bad", "sleep", nil)
	bad.Args = []string{"$UNDEFINED_VAR"}
	err := m.Load("default", bad, nil, true)
	if err == nil || !strings.Contains(err.Error(), "UNDEFINED_VAR") {
		t.Fatalf("want an error naming the variable, got %v", err)
	}
	if _, err := m.JobInfo("default.bad", true); err == nil {
		t.Fatal("a job that cannot spawn stays loaded")
	}
}

func TestShellModeRunsWholeLine(t *testing.T) {
	m := newTestManager(t)
	out := filepath.Join(t.TempDir(), "x")
	cfg := NewJobConfig("sh", "echo hi > "+out+" && sleep 30")
	cfg.Shell = true
	cfg.GracefulTimeout = time.Second
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "file written by the shell", func() bool {
		data, _ := os.ReadFile(out)
		return string(data) == "hi\n"
	})
}

func TestCommitIsNeverRestarted(t *testing.T) {
	m := newTestManager(t)
	cfg := childConfig(t, "c", "sleep", nil)
	cfg.NumProcesses = 0
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	sub := m.Events().Subscribe(0, "exit")
	defer sub.Unsubscribe()
	pid, err := m.Commit("default.c", 0, map[string]string{"EXTRA": "1"})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := m.JobInfo("default.c", true)
	if info.Running != 1 || info.RunningOut != 1 || len(info.Processes) != 1 {
		t.Fatalf("info %+v", info)
	}
	if kept, _ := m.Pids("default.c"); len(kept) != 0 {
		t.Fatalf("commit listed in job pids: %v", kept)
	}
	if err := m.StopProcess(pid); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-sub.C:
		if ev.Data["once"] != true || ev.Data["pid"] != pid {
			t.Fatalf("exit event %v", ev.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit event for a stopped commit")
	}
	info, _ = m.JobInfo("default.c", true)
	if info.Running != 0 {
		t.Fatalf("commit restarted: %+v", info)
	}
}

func TestPriorityIndependentInternalPids(t *testing.T) {
	m := newTestManager(t)
	seen := map[int]bool{}
	cfg := childConfig(t, "p", "exit", nil)
	cfg.NumProcesses = 1
	sub := m.Events().Subscribe(0, "spawn")
	defer sub.Unsubscribe()
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	for len(seen) < 20 {
		select {
		case ev := <-sub.C:
			pid := ev.Data["pid"].(int)
			if seen[pid] {
				t.Fatalf("internal pid %d reused", pid)
			}
			seen[pid] = true
		case <-time.After(5 * time.Second):
			t.Fatal("crashing process not respawned")
		}
	}
	m.StopJob("default.p")
}

func TestFlappingGivesUpAndSaysSo(t *testing.T) {
	m := newTestManager(t)
	cfg := childConfig(t, "flappy", "exit", map[string]string{"EXIT_CODE": "1"})
	cfg.Flapping = &FlapConfig{Attempts: 2, Window: 5, RetryIn: 0.1, MaxRetry: 2}
	sub := m.Events().Subscribe(0, "flap")
	defer sub.Unsubscribe()
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	var retries []bool
	for len(retries) < 3 {
		select {
		case ev := <-sub.C:
			retries = append(retries, ev.Data["retry"].(bool))
		case <-time.After(10 * time.Second):
			t.Fatalf("flap events so far: %v", retries)
		}
	}
	if !retries[0] || !retries[1] || retries[2] {
		t.Fatalf("want retry true, true, false; got %v", retries)
	}
	info, _ := m.JobInfo("default.flappy", true)
	if info.State != JobGaveUp || info.Running != 0 || info.Flaps != 3 {
		t.Fatalf("info %+v", info)
	}
}

func TestStopCancelsFlapRetry(t *testing.T) {
	m := newTestManager(t)
	cfg := childConfig(t, "f", "exit", map[string]string{"EXIT_CODE": "1"})
	cfg.Flapping = &FlapConfig{Attempts: 2, Window: 5, RetryIn: 0.3, MaxRetry: 5}
	sub := m.Events().Subscribe(0, "flap", "spawn")
	defer sub.Unsubscribe()
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	for ev := range sub.C {
		if ev.Name == "flap" {
			break
		}
	}
	if err := m.StopJob("default.f"); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-sub.C:
		t.Fatalf("event after stop: %v", ev.Data)
	case <-time.After(800 * time.Millisecond):
		// RetryIn passed with nothing spawned: the retry was cancelled.
	}
	info, _ := m.JobInfo("default.f", true)
	if info.State != JobStopped || info.Running != 0 {
		t.Fatalf("info %+v", info)
	}
}

func TestUpdateReplacesProcesses(t *testing.T) {
	m := newTestManager(t)
	cfg := childConfig(t, "u", "sleep", nil)
	cfg.NumProcesses = 2
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	old, _ := m.Pids("default.u")
	cfg.Env["NEW"] = "1"
	cfg.NumProcesses = 1
	if err := m.Update("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	now, _ := m.Pids("default.u")
	if len(now) != 1 || now[0] == old[0] || now[0] == old[1] {
		t.Fatalf("old %v new %v", old, now)
	}
	p, _ := m.Process(now[0])
	if p.Env["NEW"] != "1" {
		t.Fatal("new config not used")
	}
}

func TestNoZombiesLeft(t *testing.T) {
	m := newTestManager(t)
	cfg := childConfig(t, "z", "exit", nil)
	cfg.NumProcesses = 4
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	sub := m.Events().Subscribe(0, "exit")
	for i := 0; i < 40; i++ {
		<-sub.C
	}
	sub.Unsubscribe()
	m.StopJob("default.z")
	waitFor(t, 5*time.Second, "no zombie children", func() bool { return len(zombies()) == 0 })
}

func TestKillSignalNames(t *testing.T) {
	for _, c := range []struct {
		in   any
		want syscall.Signal
	}{{"HUP", syscall.SIGHUP}, {"sigterm", syscall.SIGTERM}, {"SIGUSR1", syscall.SIGUSR1}, {9, syscall.SIGKILL}, {"15", syscall.SIGTERM}} {
		got, err := ParseSignal(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseSignal(%v) = %v, %v", c.in, got, err)
		}
	}
	for _, bad := range []any{"NOPE", 0, 99, "", -1, 2.5, nil} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%v) accepted", bad)
		}
	}
}

func TestSendToStdinNeverInterleaves(t *testing.T) {
	m := newTestManager(t)
	cfg := childConfig(t, "echo", "echo", nil)
	cfg.RedirectInput = true
	cfg.RedirectOutput = []string{"out"}
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	pids, _ := m.Pids("default.echo")
	p, _ := m.Process(pids[0])
	st, _ := p.Stream("out")
	_, _, osub := st.Subscribe(0, false, 100000)
	defer osub.Close()
	done := make(chan error, 4)
	for w := 0; w < 4; w++ {
		go func(w int) {
			for i := 0; i < 50; i++ {
				line := strings.Repeat(strconv.Itoa(w), 3000) + "\n"
				if err := m.Send(pids[0], []byte(line), "stdin"); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}(w)
	}
	for w := 0; w < 4; w++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	var b strings.Builder
	timeout := time.After(10 * time.Second)
	for strings.Count(b.String(), "\n") < 200 {
		select {
		case c := <-osub.C:
			b.Write(c.Data)
		case <-timeout:
			t.Fatalf("only %d lines echoed", strings.Count(b.String(), "\n"))
		}
	}
	all := b.String()
	for _, line := range strings.Split(strings.TrimSuffix(all, "\n"), "\n") {
		if len(line) != 3000 || strings.Trim(line, line[:1]) != "" {
			t.Fatalf("interleaved line %q…", line[:40])
		}
	}
}

// TestReaperLeavesOtherChildrenAlone runs os/exec commands while the
// reaper (in reap-all mode, as in gafferd) is busy with a crash loop:
// their exit statuses must reach os/exec, not the reaper.
func TestReaperLeavesOtherChildrenAlone(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	m := newTestManager(t)
	cfg := childConfig(t, "loop", "exit", nil)
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	defer m.StopJob("default.loop")
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		err := exec.Command(sh, "-c", "exit 3").Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Fatalf("run %d: os/exec got %v, want exit status 3", i, err)
		}
		info, _ := m.JobInfo("default.loop", true)
		if i >= 30 && info.Restarts >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d runs the crash loop restarted only %d times", i, info.Restarts)
		}
	}
}
