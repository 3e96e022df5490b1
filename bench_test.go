package gaffer

// Benchmarks of the hot paths (bench/README.md explains how they relate to
// the system benchmarks in bench/):
//
//	go test -run '^$' -bench . -benchmem
//
// Spawn and restart start real processes (/bin/sleep); the others run in
// memory. Every benchmark reports allocations.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bnSleep is the child of the spawn and restart benchmarks: a small
// program that stays up, as in bench/ (the test binary itself would cost
// a Go runtime start-up per child).
const bnSleep = "/bin/sleep"

func bnManager(b *testing.B) *Manager {
	b.Helper()
	if _, err := os.Stat(bnSleep); err != nil {
		b.Skipf("%s not available: %v", bnSleep, err)
	}
	m := NewManager(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			b.Errorf("shutdown: %v", err)
		}
	})
	return m
}

func bnSleepConfig(name string, n int) JobConfig {
	cfg := NewJobConfig(name, bnSleep+" 86401")
	cfg.NumProcesses = n
	cfg.GracefulTimeout = 5 * time.Second
	return cfg
}

// bnWaitGone polls until the manager has no live process.
func bnWaitGone(b *testing.B, m *Manager) {
	b.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		pids, _ := m.Pids("")
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d processes still alive after unload", len(pids))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// BenchmarkSpawn loads a job of N sleep processes per iteration (Load
// forks them all before it returns) and reports the cost per child. The
// unload that follows is not timed.
func BenchmarkSpawn(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("children=%d", n), func(b *testing.B) {
			m := bnManager(b)
			b.ReportAllocs()
			var spent time.Duration
			for i := 0; b.Loop(); i++ {
				t0 := time.Now()
				if err := m.Load("default", bnSleepConfig("w"+strconv.Itoa(i), n), nil, true); err != nil {
					b.Fatal(err)
				}
				spent += time.Since(t0)
				b.StopTimer()
				if err := m.Unload("default.w" + strconv.Itoa(i)); err != nil {
					b.Fatal(err)
				}
				bnWaitGone(b, m)
				b.StartTimer()
			}
			b.ReportMetric(float64(spent.Nanoseconds())/float64(b.N*n), "ns/child")
		})
	}
}

// BenchmarkRestart kills the job's process with SIGKILL and waits for the
// spawn event of its replacement: reap + restart, as seen by the manager
// (the replacement's exec is not waited for).
func BenchmarkRestart(b *testing.B) {
	m := bnManager(b)
	if err := m.Load("default", bnSleepConfig("w", 1), nil, true); err != nil {
		b.Fatal(err)
	}
	sub := m.Events().Subscribe(64, "job.default.w.spawn")
	defer sub.Unsubscribe()
	b.ReportAllocs()
	for b.Loop() {
		procs, err := m.JobProcesses("default.w")
		if err != nil || len(procs) != 1 {
			b.Fatalf("want 1 process, got %d (%v)", len(procs), err)
		}
		if err := syscall.Kill(procs[0].OSPid, syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		select {
		case _, ok := <-sub.C:
			if !ok {
				b.Fatal("event subscription overflowed")
			}
		case <-time.After(10 * time.Second):
			b.Fatal("no replacement within 10 s")
		}
	}
}

// bnLines returns n lines of the bench/ emitter's format (100 bytes each).
func bnLines(n int) []byte {
	var buf bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&buf, "%010d %s\n", i, bytes.Repeat([]byte{'x'}, 88))
	}
	return buf.Bytes()
}

// BenchmarkStreamFanout is the fan-out of one pipe read (a 64 KiB chunk of
// 100-byte lines, what the reader gets under load) to subscribers that
// keep up. Allocations are per chunk (one shared copy when someone
// listens), whatever the number of lines in it or of subscribers.
func BenchmarkStreamFanout(b *testing.B) {
	chunk := bnLines(655) // 65,500 bytes
	for _, subs := range []int{0, 1, 10, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			st := NewStream("stdout", DefaultRingSize)
			var wg sync.WaitGroup
			var mu sync.Mutex
			overflows := 0
			for i := 0; i < subs; i++ {
				_, _, sub := st.Subscribe(0, false, 0)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						for range sub.C {
						}
						if !sub.Overflowed() {
							return // the stream ended
						}
						mu.Lock()
						overflows++
						mu.Unlock()
						_, _, sub = st.Subscribe(st.LastSeq(), false, 0)
					}
				}()
			}
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			for b.Loop() {
				st.Write(chunk)
			}
			b.StopTimer()
			st.Close()
			wg.Wait()
			b.ReportMetric(float64(overflows), "overflows")
		})
	}
}

// BenchmarkSSEEncode is the per-subscriber work of an eventsource feed: a
// 64 KiB chunk of lines framed as one SSE event into a reused buffer.
func BenchmarkSSEEncode(b *testing.B) {
	chunk := bnLines(655)
	var buf []byte
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		buf = appendSSE(buf[:0], "stdout", 42, chunk)
	}
}

// BenchmarkLogFileWrite is the log file sink: 64 KiB chunks of lines from
// one writer, the last line of each chunk cut in two (as pipe reads cut
// them), so the held-back partial line path is exercised. No allocation
// per line.
func BenchmarkLogFileWrite(b *testing.B) {
	lines := bnLines(1000)
	l, err := OpenLogFile(filepath.Join(b.TempDir(), "out.log"), LogFileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const chunk = 64 << 10
	b.SetBytes(chunk)
	b.ReportAllocs()
	off := 0
	for b.Loop() {
		if off+chunk > len(lines) {
			off = 0
		}
		l.WriteFrom(1, lines[off:off+chunk])
		off += chunk
	}
}

// BenchmarkBusPublish publishes a spawn-like event to subscribers, half
// of which match it. Publish never waits: a subscriber that cannot keep up
// with a publisher in a tight loop is cut off, which the "drops" metric
// counts (the cost per event is the same either way).
func BenchmarkBusPublish(b *testing.B) {
	for _, subs := range []int{0, 1, 10, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			bus := NewBus()
			var wg sync.WaitGroup
			var all []*Subscription
			for i := 0; i < subs; i++ {
				pattern := "job.default"
				if i%2 == 1 {
					pattern = "job.other"
				}
				s := bus.Subscribe(0, pattern)
				all = append(all, s)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range s.C {
					}
				}()
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				bus.Publish("job.default.w.spawn", map[string]any{"name": "default.w", "pid": i, "os_pid": 1000 + i})
			}
			b.StopTimer()
			for _, s := range all {
				s.Unsubscribe()
			}
			wg.Wait()
			b.ReportMetric(float64(bus.Drops()), "drops")
		})
	}
}

// bnSpawnNames are the names of a spawn of job default.w (eventNames).
var bnSpawnNames = []string{"spawn", "job.default.w.spawn", "proc.default.w.spawn", "job.w.spawn", "proc.w.spawn"}

// bnUnrelated subscribes n subscriptions on topics the spawn of default.w
// never matches: other jobs of its session, other sessions, other pids,
// other kinds of event (as n /watch clients of other jobs would).
func bnUnrelated(bus *Bus, n int) {
	for i := 0; i < n; i++ {
		var p string
		switch i % 4 {
		case 0:
			p = "job.default.other" + strconv.Itoa(i)
		case 1:
			p = "proc.s" + strconv.Itoa(i) + ".web"
		case 2:
			p = "proc." + strconv.Itoa(i)
		default:
			p = "exit"
		}
		bus.Subscribe(1, p) // never read: none of them matches
	}
}

// BenchmarkBusPublishUnrelated publishes a spawn event (five names) on a
// bus with 0 or 10,000 subscriptions that do not match it, alternating
// between the two buses in each iteration so that both are measured in
// the same moments of a shared machine. ns/op is the pair; the metrics
// are each bus's cost per event and their ratio (the goal: ≤ 2).
func BenchmarkBusPublishUnrelated(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("subscriptions=%d", n), func(b *testing.B) {
			none, busy := NewBus(), NewBus()
			bnUnrelated(busy, n)
			var tNone, tBusy time.Duration
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				t0 := time.Now()
				none.publish(bnSpawnNames, map[string]any{"name": "default.w", "pid": i})
				t1 := time.Now()
				busy.publish(bnSpawnNames, map[string]any{"name": "default.w", "pid": i})
				t2 := time.Now()
				tNone += t1.Sub(t0)
				tBusy += t2.Sub(t1)
			}
			if busy.Drops() != 0 {
				b.Fatalf("%d unrelated subscriptions were sent the event", busy.Drops())
			}
			b.ReportMetric(float64(tNone.Nanoseconds())/float64(b.N), "ns-none/op")
			b.ReportMetric(float64(tBusy.Nanoseconds())/float64(b.N), "ns-busy/op")
			b.ReportMetric(float64(tBusy)/float64(tNone), "busy/none")
		})
	}
}

// BenchmarkJobInfoJSON is the body of GET /jobs/<sid>/<job>: the manager
// snapshot of a job with 100 processes and its JSON encoding.
func BenchmarkJobInfoJSON(b *testing.B) {
	m := bnManager(b)
	cfg := bnSleepConfig("w", 100)
	cfg.Env = map[string]string{"PORT": "8080", "API_TOKEN": "secret"}
	if err := m.Load("default", cfg, nil, true); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		info, err := m.JobInfo("default.w", false)
		if err != nil {
			b.Fatal(err)
		}
		buf, err := json.Marshal(info)
		if err != nil {
			b.Fatal(err)
		}
		n = len(buf)
	}
	b.ReportMetric(float64(n), "bytes/body")
}

// BenchmarkCrashLoop is the crash storm of bench/ in-process: a child that
// exits at once (/bin/true), respawned without flapping protection. One op
// is one exit-and-respawn cycle. "floor" is the same cycle done by hand
// (fork/exec, then a blocking wait4), the lower bound on this machine.
func BenchmarkCrashLoop(b *testing.B) {
	const bnTrue = "/bin/true"
	if _, err := os.Stat(bnTrue); err != nil {
		b.Skipf("%s not available: %v", bnTrue, err)
	}
	b.Run("floor", func(b *testing.B) {
		null, err := openDevNull()
		if err != nil {
			b.Fatal(err)
		}
		// the test process's reaper collects every child (wait4(-1)): keep
		// it out of the way by waiting in the same locked section it
		// registers children in
		attr := &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{null.Fd(), null.Fd(), null.Fd()}}
		b.ReportAllocs()
		for b.Loop() {
			var ws syscall.WaitStatus
			theReaper.mu.Lock()
			pid, err := syscall.ForkExec(bnTrue, []string{bnTrue}, attr)
			if err == nil {
				_, err = syscall.Wait4(pid, &ws, 0, nil)
			}
			theReaper.mu.Unlock()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("manager", func(b *testing.B) {
		m := bnManager(b)
		sub := m.Events().Subscribe(1<<16, "job.default.storm.spawn")
		defer sub.Unsubscribe()
		b.ReportAllocs()
		if err := m.Load("default", NewJobConfig("storm", bnTrue), nil, true); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			select {
			case _, ok := <-sub.C:
				if !ok {
					b.Fatal("event subscription overflowed")
				}
			case <-time.After(10 * time.Second):
				b.Fatal("no respawn within 10 s")
			}
		}
		b.StopTimer()
		m.StopJob("default.storm")
	})
}

// BenchmarkJobInfoDuringCrashLoop reads a job's info (GET
// /jobs/default/x's body, JobInfoJSON) in a loop for 3 s while another job
// of 1,000 /bin/true processes crash-loops (flapping off: each is
// respawned as soon as it exits), and reports the read latency
// percentiles and the respawns per second; bench/api_load.sh
// (LOADS=crash) measures the same over HTTP. With -mutexprofile it shows
// who holds the manager's lock meanwhile.
func BenchmarkJobInfoDuringCrashLoop(b *testing.B) {
	const bnTrue = "/bin/true"
	if _, err := os.Stat(bnTrue); err != nil {
		b.Skipf("%s not available: %v", bnTrue, err)
	}
	for b.Loop() {
		m := bnManager(b)
		if err := m.Load("default", bnSleepConfig("x", 1), nil, true); err != nil {
			b.Fatal(err)
		}
		crash := NewJobConfig("crash", bnTrue)
		crash.NumProcesses = 1000
		crash.GracefulTimeout = time.Second
		if err := m.Load("default", crash, nil, true); err != nil {
			b.Fatal(err)
		}
		info0, _ := m.JobInfo("default.crash", false)
		lat := make([]time.Duration, 0, 1<<20)
		end := time.Now().Add(3 * time.Second)
		for t0 := time.Now(); t0.Before(end); t0 = time.Now() {
			if _, err := m.JobInfoJSON("default.x", true); err != nil {
				b.Fatal(err)
			}
			if len(lat) < cap(lat) {
				lat = append(lat, time.Since(t0))
			}
		}
		info1, _ := m.JobInfo("default.crash", false)
		m.StopJob("default.crash")
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		b.ReportMetric(float64(lat[len(lat)*999/1000].Nanoseconds()), "p99.9-ns")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
		b.ReportMetric(float64(info1.Restarts-info0.Restarts)/3, "respawns/s")
	}
}
