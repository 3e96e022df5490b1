package gaffer

import (
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A kill -9 of a child leaves a WARN line naming the job, both pids, the
// signal and the uptime, and the job's info says how its last process
// ended; a stop that is expected leaves no such line.
func TestUnexpectedExitIsLoggedAndRecorded(t *testing.T) {
	var logs syncBuffer
	m := NewManager(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Cleanup(func() { m.Shutdown(t.Context()) })
	if err := m.Load("default", childConfig(t, "victim", "sleep", nil), nil, true); err != nil {
		t.Fatal(err)
	}
	p := onlyProcess(t, m, "default.victim")
	if err := syscall.Kill(p.OSPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var info JobInfo
	waitFor(t, 10*time.Second, "the exit to be recorded", func() bool {
		info, _ = m.JobInfo("default.victim", true)
		return info.LastExitInfo != nil
	})
	rec := info.LastExitInfo
	if rec.PID != p.ID || rec.OSPid != p.OSPid || rec.Signal != "SIGKILL" || rec.TermSignal != int(syscall.SIGKILL) ||
		rec.Uptime <= 0 || rec.Time.IsZero() {
		t.Fatalf("last exit: %+v (process %d/%d)", rec, p.ID, p.OSPid)
	}
	waitFor(t, 5*time.Second, "the WARN line", func() bool {
		return strings.Contains(logs.String(), "process exited unexpectedly")
	})
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "process exited unexpectedly") {
			line = l
		}
	}
	for _, want := range []string{"level=WARN", "job=default.victim", "pid=" + itoa(p.ID), "os_pid=" + itoa(p.OSPid),
		"signal=SIGKILL", "uptime="} {
		if !strings.Contains(line, want) {
			t.Errorf("the WARN line lacks %q: %s", want, line)
		}
	}
	// A deliberate stop is not unexpected.
	var next *Process
	waitFor(t, 10*time.Second, "the crashed process's replacement", func() bool {
		procs, _ := m.JobProcesses("default.victim")
		if len(procs) == 1 && procs[0] != p {
			next = procs[0]
		}
		return next != nil
	})
	if err := m.StopProcess(next.ID); err != nil {
		t.Fatal(err)
	}
	<-next.Exited()
	waitFor(t, 10*time.Second, "the replacement", func() bool {
		procs, _ := m.JobProcesses("default.victim")
		return len(procs) == 1 && procs[0] != next
	})
	if n := strings.Count(logs.String(), "process exited unexpectedly"); n != 1 {
		t.Fatalf("%d WARN lines after one crash and one stop:\n%s", n, logs.String())
	}
}

// A stopped process that has not exited yet is listed in the job's
// "stopping" list, not in its processes.
func TestJobInfoListsStoppingProcesses(t *testing.T) {
	m := newTestManager(t)
	cfg := childConfig(t, "slow", "ignoreterm", nil)
	cfg.RedirectOutput = []string{"out"}
	cfg.GracefulTimeout = 3 * time.Second
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	old := onlyProcess(t, m, "default.slow")
	st, _ := old.Stream("")
	waitFor(t, 10*time.Second, "the child to ignore SIGTERM", func() bool { return st.LastSeq() > 0 })
	if err := m.StopProcess(old.ID); err != nil {
		t.Fatal(err)
	}
	info, err := m.JobInfo("default.slow", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Stopping) != 1 || info.Stopping[0] != old.ID {
		t.Fatalf("stopping %v, want [%d]", info.Stopping, old.ID)
	}
	for _, id := range info.Processes {
		if id == old.ID {
			t.Fatalf("processes %v still lists the stopping %d", info.Processes, old.ID)
		}
	}
	<-old.Exited()
	waitFor(t, 5*time.Second, "the stopping list to empty", func() bool {
		info, _ := m.JobInfo("default.slow", true)
		return len(info.Stopping) == 0
	})
}
