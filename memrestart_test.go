package gaffer

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A process whose memory stays above memory_restart is restarted (here
// by its RSS: no cgroup); one below it is left alone.
func TestMemoryRestart(t *testing.T) {
	period, samples := memRestartPeriod, memRestartSamples
	memRestartPeriod, memRestartSamples = 20*time.Millisecond, 3
	t.Cleanup(func() { memRestartPeriod, memRestartSamples = period, samples })
	var logs syncBuffer
	m := NewManager(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		m.Shutdown(ctx)
	})
	hog := childConfig(t, "hog", "memhog", map[string]string{"MEM": strconv.Itoa(96 << 20)})
	hog.MemoryRestart = 48 << 20
	hog.RedirectOutput = []string{"out"}
	small := childConfig(t, "small", "memhog", map[string]string{"MEM": strconv.Itoa(1 << 20)})
	small.MemoryRestart = 48 << 20
	for _, c := range []JobConfig{hog, small} {
		if err := m.Load("default", c, nil, true); err != nil {
			t.Fatal(err)
		}
	}
	first := onlyProcess(t, m, "default.hog")
	keep := onlyProcess(t, m, "default.small")
	waitFor(t, 30*time.Second, "the hog restarted", func() bool {
		ps, _ := m.JobProcesses("default.hog")
		return len(ps) == 1 && ps[0] != first
	})
	if !strings.Contains(logs.String(), "process memory stayed above memory_restart; restarting it") {
		t.Errorf("no log line:\n%s", logs.String())
	}
	if p := onlyProcess(t, m, "default.small"); p != keep {
		t.Errorf("the process below memory_restart was restarted")
	}
}
