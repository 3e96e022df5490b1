package gaffer

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// An entry added while a scan runs is looked for by the next scan, not
// judged on the running one (which did not look for it and would find
// "nothing left"): the leftover it names gets its signal.
func TestEscapeSweeperEntryAddedDuringAScan(t *testing.T) {
	const inst = "escape-test-instance"
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(childEnv("sleep"), markerVar+"="+inst, "GAFFER_PID=9", "GAFFER_JOB=default.left")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	waitFor(t, 10*time.Second, "the leftover's markers", func() bool {
		got, _, _, ok := procMarkers(cmd.Process.Pid)
		return ok && got == inst
	})

	s := newEscapeSweeper(slog.New(slog.NewTextHandler(io.Discard, nil)), func(string, string) bool { return false })
	var once sync.Once
	s.scanning = func() {
		// The job's entry arrives while the first scan (of an unrelated
		// process's entry) runs.
		once.Do(func() { s.addJob(inst, "default.left", 30*time.Second) })
	}
	s.add(inst, "1", 0x7ffffff0, false, 30*time.Second) // a leader that is no process
	s.leaderExited(inst, "1")

	select {
	case <-done:
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGTERM {
			t.Fatalf("the leftover ended with %v, want SIGTERM", cmd.ProcessState)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the leftover of the job added during a scan was never signalled")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.wait(ctx); err != nil {
		t.Fatal("the sweeper did not go idle:", err)
	}
}
