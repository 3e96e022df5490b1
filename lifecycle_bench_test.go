package gaffer

import (
	"context"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkIdleTCPReady1000 runs 1,000 /bin/sleep processes twice in the
// same run: without a ready setting (the baseline), then with ready =
// tcp:127.0.0.1:PORT (a listener of this process). Once every process is
// ready it measures, over an idle window, this process's threads,
// goroutines and CPU time, and reports them with the differences to the
// baseline: a probe costs a timer while it waits and nothing once its
// process is ready, so the differences should be about zero.
//
//	go test -run '^$' -bench BenchmarkIdleTCPReady1000 -benchtime 1x .
func BenchmarkIdleTCPReady1000(b *testing.B) {
	const n = 1000
	const idle = 3 * time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	type figures struct {
		threads, goroutines int
		cpuPerSecond        time.Duration
		readyIn             time.Duration
	}
	measure := func(ready string) figures {
		m := NewManager(Options{})
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			m.Shutdown(ctx)
			cancel()
		}()
		cfg := NewJobConfig("idle", "/bin/sleep 100000")
		cfg.NumProcesses, cfg.GracefulTimeout, cfg.Ready = n, time.Second, ready
		t0 := time.Now()
		if err := m.Load("default", cfg, nil, true); err != nil {
			b.Fatal(err)
		}
		for {
			info, _ := m.JobInfo("default.idle", false)
			if info.Ready == n {
				break
			}
			if time.Since(t0) > 2*time.Minute {
				b.Fatalf("%d of %d ready after 2 minutes", info.Ready, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		f := figures{readyIn: time.Since(t0)}
		runtime.GC()
		time.Sleep(time.Second) // the last probes' goroutines end
		c0 := selfCPU()
		start := time.Now()
		time.Sleep(idle)
		f.cpuPerSecond = time.Duration(float64(selfCPU()-c0) / time.Since(start).Seconds())
		f.threads, f.goroutines = selfThreads(), runtime.NumGoroutine()
		return f
	}
	for i := 0; i < b.N; i++ {
		base := measure("")
		tcp := measure("tcp:" + l.Addr().String())
		b.ReportMetric(float64(tcp.threads), "threads")
		b.ReportMetric(float64(tcp.threads-base.threads), "extra-threads")
		b.ReportMetric(float64(tcp.goroutines-base.goroutines), "extra-goroutines")
		b.ReportMetric(float64(tcp.cpuPerSecond.Microseconds())/1000, "idle-cpu-ms/s")
		b.ReportMetric(float64(base.cpuPerSecond.Microseconds())/1000, "baseline-idle-cpu-ms/s")
		b.ReportMetric(tcp.readyIn.Seconds(), "s-to-all-ready")
		b.ReportMetric(base.readyIn.Seconds(), "baseline-s-to-all-spawned")
	}
}

// selfCPU is this process's user and system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// selfThreads is this process's number of OS threads (/proc; 0 elsewhere).
func selfThreads() int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
