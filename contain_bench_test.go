package gaffer

import (
	"io"
	"log/slog"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkStopForkTree measures the stop of a job whose process started
// 100 descendants, each in a session of its own (out of the process
// group), from StopJob until the last of them is gone: with process
// groups (the markers sweep finds the descendants in /proc) and with a
// cgroup per process (cgroup.procs lists them). "ignoreterm" descendants
// ignore SIGTERM and need the SIGKILL of the graceful deadline (1 s);
// "noenv" descendants cleared their environment (no markers): only a
// cgroup finds them, and "survivors" counts those still alive 3 s after
// the stop (then killed by the benchmark).
// Run: go test -run XXX -bench StopForkTree -benchtime 3x
func BenchmarkStopForkTree(b *testing.B) {
	kinds := map[string]string{"honourterm": "setsid sleep 1000",
		"ignoreterm": `setsid sh -c "trap '' TERM; exec sleep 1000"`, "noenv": "env -i setsid sleep 1000"}
	for _, kind := range []string{"honourterm", "ignoreterm", "noenv"} {
		for _, cg := range []bool{false, true} {
			name := kind + "/process-groups"
			if cg {
				name = kind + "/cgroup"
			}
			b.Run(name, func(b *testing.B) { benchStopTree(b, cg, kinds[kind]) })
		}
	}
}

func benchStopTree(b *testing.B, cgroups bool, child string) {
	m := NewManager(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if cgroups {
		m.enableCgroups()
		if m.contain.cg == nil || m.contain.cg.v2 == "" {
			b.Skipf("no writable cgroup2 hierarchy: %s", m.contain.why)
		}
	}
	defer func() {
		m.Shutdown(b.Context())
		m.closeContainment()
	}()
	cfg := NewJobConfig("tree", "x")
	cfg.Shell, cfg.GracefulTimeout = true, time.Second
	cfg.Cmd = "i=0; while [ $i -lt 100 ]; do " + child + " & i=$((i+1)); done; wait"
	var total time.Duration
	survivors := 0
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := m.Load("default", cfg, nil, true); err != nil {
			b.Fatal(err)
		}
		procs, _ := m.JobProcesses("default.tree")
		var tree []int
		deadline := time.Now().Add(30 * time.Second)
		for len(tree) < 100 {
			if time.Now().After(deadline) {
				b.Fatalf("the tree did not start: %d processes", len(tree))
			}
			time.Sleep(10 * time.Millisecond)
			tree = nil
			for _, pid := range readDetails(procs[0].OSPid).children {
				if cmd := procCmdline(pid); len(cmd) > 0 && cmd[0] == "sleep" {
					tree = append(tree, pid)
				}
			}
		}
		b.StartTimer()
		start := time.Now()
		if err := m.StopJob("default.tree"); err != nil {
			b.Fatal(err)
		}
		for {
			var left []int
			for _, pid := range tree {
				if alive(pid) {
					left = append(left, pid)
				}
			}
			if len(left) == 0 {
				break
			}
			if time.Since(start) > 3*time.Second {
				survivors += len(left)
				for _, pid := range left {
					signalPid(pid, syscall.SIGKILL)
				}
				break
			}
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
		b.StopTimer()
		if err := m.Unload("default.tree"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "stop-ms")
	b.ReportMetric(float64(survivors)/float64(b.N), "survivors")
}

// BenchmarkSpawnContained is BenchmarkSpawn's 100 children with each kind
// of containment: none, a cgroup per process, the exec shim (a resource
// limit), and a passed socket (the shim, and the socket at fd 3), so the
// cost of each shows as a ratio to "plain" in the same run.
// Run: go test -run XXX -bench SpawnContained -benchtime 5x
func BenchmarkSpawnContained(b *testing.B) {
	kinds := []struct {
		name    string
		cgroups bool
		set     func(c *JobConfig)
	}{
		{"plain", false, func(c *JobConfig) {}},
		{"cgroup", true, func(c *JobConfig) {}},
		{"shim", false, func(c *JobConfig) { c.LimitNofile = "4096" }},
		{"socket", false, func(c *JobConfig) { c.Sockets = []string{"tcp://127.0.0.1:0"} }},
	}
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			m := bnManager(b)
			if k.cgroups {
				m.enableCgroups()
				if m.contain.cg == nil || m.contain.cg.v2 == "" {
					b.Skipf("no writable cgroup2 hierarchy: %s", m.contain.why)
				}
			}
			b.Cleanup(m.closeContainment)
			var spent time.Duration
			for i := 0; b.Loop(); i++ {
				cfg := bnSleepConfig("w"+strconv.Itoa(i), 100)
				k.set(&cfg)
				t0 := time.Now()
				if err := m.Load("default", cfg, nil, true); err != nil {
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
			b.ReportMetric(float64(spent.Nanoseconds())/float64(b.N*100), "ns/child")
		})
	}
}
