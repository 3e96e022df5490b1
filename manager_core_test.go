package gaffer

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func loadChild(t *testing.T, m *Manager, name, mode string, n int, env map[string]string) JobConfig {
	t.Helper()
	cfg := childConfig(t, name, mode, env)
	cfg.NumProcesses = n
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func onlyProcess(t *testing.T, m *Manager, full string) *Process {
	t.Helper()
	procs, err := m.JobProcesses(full)
	if err != nil || len(procs) != 1 {
		t.Fatalf("%s: %v %v", full, procs, err)
	}
	return procs[0]
}

// startOnPid starts the test binary (mode sleep, its own process group)
// so that it gets the OS pid want, by setting the kernel's last pid just
// before: the way to make a freed pid belong to another process at once.
// It skips when the kernel does not let it.
func startOnPid(t *testing.T, want int) *exec.Cmd {
	t.Helper()
	self, _ := os.Executable()
	for try := 0; try < 50; try++ {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(want-1)), 0); err != nil {
			t.Skipf("cannot choose the next pid: %v", err)
		}
		cmd := exec.Command(self)
		cmd.Env = childEnv("sleep")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if cmd.Process.Pid == want {
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			return cmd
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	t.Skip("another process keeps taking the pid")
	return nil
}

// A process the reaper has already reaped, whose pid now belongs to
// another process, is never signalled: not alone (pidfd, or the reaper's
// check), not as a group (the group signal needs an unreaped leader).
func TestSignalsNeverReachAReusedPid(t *testing.T) {
	m := newTestManager(t)
	loadChild(t, m, "r", "sleep", 1, nil)
	p := onlyProcess(t, m, "default.r")
	// Hold the manager so that the exit is reaped but not yet handled:
	// the window in which the pid is free while the manager still lists
	// the process.
	m.mu.Lock()
	locked := true
	defer func() {
		if locked {
			m.mu.Unlock()
		}
	}()
	syscall.Kill(p.OSPid, syscall.SIGKILL)
	waitFor(t, 10*time.Second, "the reaper to reap the child", func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(p.OSPid))
		return err != nil
	})
	decoy := startOnPid(t, p.OSPid)
	if err := m.signalLeaderLocked(p, syscall.SIGTERM); err != nil {
		t.Fatalf("signal to a reaped process: %v", err)
	}
	if err := m.signalGroupLocked(p, syscall.SIGTERM); err != nil {
		t.Fatalf("group signal to a reaped process: %v", err)
	}
	m.mu.Unlock()
	locked = false
	time.Sleep(100 * time.Millisecond) // a signal, had it been sent, is delivered by now
	if !alive(decoy.Process.Pid) {
		t.Fatal("the process that reused the pid was signalled")
	}
	waitFor(t, 10*time.Second, "the exit to be handled", func() bool {
		procs, _ := m.JobProcesses("default.r")
		return len(procs) == 1 && procs[0] != p
	})
}

// The kernel's refusal of a signal is an error, not ok.
func TestSignalErrorsAreReported(t *testing.T) {
	m := newTestManager(t)
	loadChild(t, m, "k", "sleep", 1, nil)
	p := onlyProcess(t, m, "default.k")
	bad := syscall.Signal(200) // no such signal: the kernel says EINVAL
	err := m.Kill(p.ID, bad)
	if e := AsError(err); err == nil || e.Code != codeSignalFailed || e.Errno != 400 {
		t.Fatalf("Kill with an invalid signal: %v", err)
	}
	err = m.KillAll("default.k", bad)
	if e := AsError(err); err == nil || e.Code != codeSignalFailed {
		t.Fatalf("KillAll with an invalid signal: %v", err)
	}
	if err := m.Kill(p.ID, syscall.SIGCONT); err != nil {
		t.Fatalf("a valid signal: %v", err)
	}
}

// A second Shutdown waits for the same end as the first; neither waits
// forever.
func TestSecondShutdownDoesNotStrandTheFirst(t *testing.T) {
	var ready atomic.Bool
	m := NewManager(Options{Output: func(p *Process, label string, data []byte) {
		if bytes.Contains(data, []byte("ready")) {
			ready.Store(true)
		}
	}})
	cfg := childConfig(t, "slow", "ignoreterm", nil)
	cfg.RedirectOutput = []string{"out"}
	cfg.GracefulTimeout = 500 * time.Millisecond
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the child to ignore SIGTERM", ready.Load)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- m.Shutdown(ctx) }()
	waitFor(t, 5*time.Second, "the first shutdown to begin", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.shutdown
	})
	go func() { errs <- m.Shutdown(ctx) }()
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("shutdown %d: %v", i, err)
		}
	}
}

// A spawn-retry timer that fired while the job changed does nothing: only
// the timer the job holds acts.
func TestStaleSpawnTimerDoesNothing(t *testing.T) {
	m := NewManager(Options{SpawnRetryDelay: 20 * time.Millisecond})
	defer m.Shutdown(context.Background())
	dir := t.TempDir()
	cfg := NewJobConfig("gone", dir+"/vanished")
	if err := os.WriteFile(dir+"/vanished", []byte("#!/bin/sh\nexec sleep 300\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.Load("default", cfg, nil, false); err != nil {
		t.Fatal(err)
	}
	os.Remove(dir + "/vanished")
	if err := m.StartJob("default.gone"); err == nil {
		t.Fatal("a vanished executable started")
	}
	m.mu.Lock()
	j, _ := m.jobLocked("default.gone")
	if j.spawnTimer == nil {
		m.mu.Unlock()
		t.Fatal("no retry timer")
	}
	time.Sleep(100 * time.Millisecond) // the timer fires and waits for the lock
	m.cancelTimersLocked(j)            // too late to stop it
	sentinel := time.AfterFunc(time.Hour, func() {})
	defer sentinel.Stop()
	j.spawnTimer = sentinel // the job's current timer
	sub := m.Events().Subscribe(0, "spawn_error")
	defer sub.Unsubscribe()
	m.mu.Unlock()
	select {
	case <-sub.C:
		t.Fatal("a stale retry timer spawned")
	case <-time.After(time.Second):
	}
	m.mu.Lock()
	same := j.spawnTimer == sentinel
	m.mu.Unlock()
	if !same {
		t.Fatal("a stale retry timer replaced the job's timer")
	}
}

// A panic in the output hook is logged and the pipe keeps being drained:
// the process stays supervised and its output keeps coming.
func TestOutputHookPanicIsIsolated(t *testing.T) {
	var calls atomic.Int64
	logs := &lockedBuffer{}
	m := NewManager(Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Output: func(p *Process, label string, data []byte) {
		if calls.Add(1) == 1 {
			panic("hook bug")
		}
	}})
	defer m.Shutdown(context.Background())
	cfg := childConfig(t, "talk", "echo", nil)
	cfg.RedirectInput = true
	cfg.RedirectOutput = []string{"out"}
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	p := onlyProcess(t, m, "default.talk")
	for i := 0; i < 3; i++ {
		if err := m.Send(p.ID, []byte(fmt.Sprintf("line %d\n", i)), ""); err != nil {
			t.Fatal(err)
		}
		want := int64(i + 1)
		waitFor(t, 10*time.Second, "the output of line "+strconv.Itoa(i), func() bool { return calls.Load() >= want })
	}
	if !alive(p.OSPid) {
		t.Fatal("the process died")
	}
	out := logs.String()
	if !strings.Contains(out, "hook bug") || !strings.Contains(out, "goroutine") {
		t.Fatalf("the panic is not logged with its stack:\n%s", out)
	}
}

// Stopping one kept-alive process takes it out of the running list at
// once and spawns its replacement at once, before its exit (0.5.2).
func TestStopProcessLeavesRunningListAndReplacesAtOnce(t *testing.T) {
	m := newTestManager(t)
	cfg := childConfig(t, "k", "ignoreterm", nil)
	cfg.RedirectOutput = []string{"out"}
	cfg.GracefulTimeout = 3 * time.Second
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	old := onlyProcess(t, m, "default.k")
	st, _ := old.Stream("")
	waitFor(t, 10*time.Second, "the child to ignore SIGTERM", func() bool { return st.LastSeq() > 0 })
	// One event with both names: each subscription sees it once, under
	// the name it asked for.
	subPid := m.Events().Subscribe(0, "stop_pid")
	defer subPid.Unsubscribe()
	subProc := m.Events().Subscribe(0, "stop_process")
	defer subProc.Unsubscribe()
	if err := m.StopProcess(old.ID); err != nil {
		t.Fatal(err)
	}
	if all, _ := m.Pids(""); len(all) != 1 || all[0] == old.ID {
		t.Fatalf("GET /pids after the stop: %v (stopped %d)", all, old.ID)
	}
	if _, ok := m.Process(old.ID); ok {
		t.Fatal("the stopping process is still in the running list")
	}
	procs, _ := m.JobProcesses("default.k")
	if len(procs) != 1 || procs[0] == old {
		t.Fatalf("no replacement right after the stop: %v", procs)
	}
	if !alive(old.OSPid) {
		t.Fatal("the test needs the old process to still be stopping")
	}
	names := map[string]bool{}
	for _, sub := range []*Subscription{subPid, subProc} {
		select {
		case ev := <-sub.C:
			names[ev.Name] = ev.Data["pid"] == old.ID && ev.Data["event"] == ev.Name
		case <-time.After(5 * time.Second):
			t.Fatalf("events: %v", names)
		}
	}
	if !names["stop_pid"] || !names["stop_process"] {
		t.Fatalf("events: %v", names)
	}
	<-old.Exited()
	for _, sub := range []*Subscription{subPid, subProc} {
		select {
		case ev := <-sub.C:
			t.Fatalf("a second stop event: %v", ev.Data)
		default:
		}
	}
}

// A job loaded unstarted with numprocesses 0 (a template for commits),
// then committed, then scaled to 1, spawns (0.5.2's test_job_commit).
func TestScaleStartsAnUnstartedTemplateJob(t *testing.T) {
	m := newTestManager(t)
	cfg := childConfig(t, "tpl", "sleep", nil)
	cfg.NumProcesses = 0
	if err := m.Load("default", cfg, nil, false); err != nil {
		t.Fatal(err)
	}
	pid, err := m.Commit("default.tpl", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.Scale("default.tpl", ScaleOp{Value: 1}); err != nil || n != 1 {
		t.Fatalf("scale: %d %v", n, err)
	}
	all, _ := m.Pids("")
	if len(all) != 2 || all[0] != pid {
		t.Fatalf("pids after the scale: %v, want the commit %d and a new one", all, pid)
	}
	info, _ := m.JobInfo("default.tpl", true)
	if info.Running != 2 || info.RunningOut != 1 || info.MaxProcesses != 1 {
		t.Fatalf("info: %+v", info)
	}
	// One that holds processes back still waits for its start.
	cfg2 := childConfig(t, "held", "sleep", nil)
	cfg2.NumProcesses = 2
	if err := m.Load("default", cfg2, nil, false); err != nil {
		t.Fatal(err)
	}
	m.Scale("default.held", ScaleOp{Value: 1})
	if procs, _ := m.JobProcesses("default.held"); len(procs) != 0 {
		t.Fatalf("a held job started on scale: %v", procs)
	}
}

// The documented event names are published next to the 0.5.2 ones.
func TestDocumentedEventNames(t *testing.T) {
	m := newTestManager(t)
	sub := m.Events().Subscribe(0, "restart", "exit")
	defer sub.Unsubscribe()
	loadChild(t, m, "e", "exit", 1, map[string]string{"EXIT_CODE": "7"})
	got := map[string]Event{}
	deadline := time.After(10 * time.Second)
	for len(got) < 1 {
		select {
		case ev := <-sub.C:
			got[ev.Name] = ev
		case <-deadline:
			t.Fatal("no exit event")
		}
	}
	if ev := got["exit"]; ev.Data["exit_code"] != 7 || ev.Data["exit_status"] != 7 {
		t.Fatalf("exit event: %v", ev.Data)
	}
	if err := m.ReloadJob("default.e"); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ev := <-sub.C:
			if ev.Name == "restart" {
				if ev.Data["name"] != "default.e" {
					t.Fatalf("restart event: %v", ev.Data)
				}
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no restart event on ReloadJob")
		}
	}
}

// A scale-up counts the spawns in flight: it never overshoots, and a
// stop during the spawns leaves nothing running.
func TestScaleCountsSpawnsInFlight(t *testing.T) {
	m := newTestManager(t)
	cfg := childConfig(t, "many", "sleep", nil)
	cfg.NumProcesses = 0
	cfg.GracefulTimeout = time.Second
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); m.Scale("default.many", ScaleOp{Set: true, Value: 20}) }()
	}
	wg.Wait()
	if procs, _ := m.JobProcesses("default.many"); len(procs) != 20 {
		t.Fatalf("%d processes after 4 concurrent scales to 20", len(procs))
	}
	spawns := m.Events().Subscribe(0, "spawn")
	defer spawns.Unsubscribe()
	done := make(chan struct{})
	go func() { m.Scale("default.many", ScaleOp{Set: true, Value: 60}); close(done) }()
	<-spawns.C // the scale-up is under way
	if err := m.StopJob("default.many"); err != nil {
		t.Fatal(err)
	}
	<-done
	waitFor(t, 20*time.Second, "every process to be gone", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.procs) == 0 && len(m.stopping) == 0 && m.inflight == 0
	})
}

// lockedBuffer is a log destination safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
