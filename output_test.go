package gaffer

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestPanickingOutputHookIsIsolated: an Output hook that panics on some
// chunks does not take the manager down; it keeps being called, the ring
// gets every line, and the panic is logged once with its stack.
func TestPanickingOutputHookIsIsolated(t *testing.T) {
	var logs syncBuffer
	var calls, panics atomic.Int64
	hook := func(p *Process, label string, data []byte) {
		calls.Add(1)
		if panics.Add(1) <= 2 {
			panic("hook bug")
		}
	}
	m := NewManager(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Output: hook})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m.Shutdown(ctx)
	})
	// The child prints three lines apart, so that the hook sees three
	// chunks: it panics on the first two.
	cfg := NewJobConfig("talk", "sh")
	cfg.Args = []string{"-c", "echo a; sleep 0.3; echo b; sleep 0.3; echo c; exec sleep 60"}
	cfg.RedirectOutput = []string{"out"}
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	procs, _ := m.JobProcesses("default.talk")
	st, _ := procs[0].Stream("out")
	waitFor(t, 10*time.Second, "every line in the ring", func() bool {
		chunks, _ := st.Backlog(0)
		var all []byte
		for _, c := range chunks {
			all = append(all, c.Data...)
		}
		return string(all) == "a\nb\nc\n"
	})
	waitFor(t, 10*time.Second, "the third chunk in the hook", func() bool { return calls.Load() == 3 })
	out := logs.String()
	if c := strings.Count(out, "the output hook panicked"); c != 1 {
		t.Fatalf("%d panic lines logged (want 1, the others counted):\n%s", c, out)
	}
	if !strings.Contains(out, "hook bug") || !strings.Contains(out, "output_test.go") {
		t.Fatalf("the panic line lacks the value or the stack:\n%s", out)
	}
}

// panickySink is a log file whose writes panic.
type panickySink struct{ writes, ends atomic.Int64 }

func (s *panickySink) writeFrom(src writerKey, p []byte) { s.writes.Add(1); panic("disk on fire") }
func (s *panickySink) endWriter(src writerKey)           { s.ends.Add(1); panic("still on fire") }
func (s *panickySink) release()                          {}
func (s *panickySink) Close() error                      { return nil }

// TestPanickingLogSinkIsIsolated: a log file that panics does not stop
// the output from reaching the hook after it, and the pipe reader goes on.
func TestPanickingLogSinkIsIsolated(t *testing.T) {
	var logs syncBuffer
	var hooked atomic.Int64
	m := NewManager(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Output: func(*Process, string, []byte) { hooked.Add(1) }})
	sink := &panickySink{}
	out := m.outputFunc(&job{full: "default.x", sinks: jobSinks{"out": sink}})
	p := &Process{ID: 7, Job: "default.x"}
	for i := range 5 {
		out(p, "out", []byte(fmt.Sprintf("line %d\n", i)))
	}
	out(p, "out", nil)
	if sink.writes.Load() != 5 || sink.ends.Load() != 1 || hooked.Load() != 5 {
		t.Fatalf("sink writes %d ends %d, hook calls %d", sink.writes.Load(), sink.ends.Load(), hooked.Load())
	}
	if c := strings.Count(logs.String(), "a log file panicked"); c != 1 {
		t.Fatalf("%d panic lines logged:\n%s", c, logs.String())
	}
}

// panickyWriter panics on its first n writes.
type panickyWriter struct {
	n int
	syncBuffer
}

func (w *panickyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.n > 0 {
		w.n--
		w.mu.Unlock()
		panic("terminal gone")
	}
	w.mu.Unlock()
	return w.syncBuffer.Write(p)
}

// TestPanickingConsoleIsIsolated: a console writer that panics loses the
// event it was printing, not the printer.
func TestPanickingConsoleIsIsolated(t *testing.T) {
	var logs syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(old)
	bus := NewBus()
	sub := bus.Subscribe(16)
	w := &panickyWriter{n: 2}
	done := make(chan struct{})
	go func() {
		defer close(done)
		printConsoleEvents(sub, w)
	}()
	for i := range 4 {
		bus.Publish("spawn", map[string]any{"name": "default.x", "pid": i})
	}
	waitFor(t, 10*time.Second, "the events after the panics", func() bool {
		return strings.Contains(w.String(), "pid 2") && strings.Contains(w.String(), "pid 3")
	})
	sub.Unsubscribe()
	<-done
	if !strings.Contains(logs.String(), "the console printer panicked") {
		t.Fatalf("no panic logged:\n%s", logs.String())
	}
}
