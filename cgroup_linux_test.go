package gaffer

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cgroupManager returns a manager with a cgroup per process, or skips the
// test where the machine has no writable cgroup2 hierarchy.
func cgroupManager(t *testing.T) *Manager {
	t.Helper()
	m := NewManager(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	m.enableCgroups()
	if m.contain.cg == nil || m.contain.cg.v2 == "" {
		t.Skipf("no writable cgroup2 hierarchy here: %s", m.contain.why)
	}
	root := m.contain.cg.v2
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		m.closeContainment()
		if _, err := os.Stat(root); err == nil {
			t.Errorf("the manager's cgroup %s is still there after its stop", root)
		}
	})
	return m
}

// procCgroup is the cgroup2 path of a process ("" when unknown).
func procCgroup(pid int) string {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	for _, line := range strings.Split(string(data), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
	}
	return ""
}

func TestCgroupLeafPerProcess(t *testing.T) {
	m := cgroupManager(t)
	cfg := childConfig(t, "web", "sleep", nil)
	cfg.NumProcesses = 2
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	procs, _ := m.JobProcesses("default.web")
	if len(procs) != 2 {
		t.Fatalf("%d processes, want 2", len(procs))
	}
	r := m.contain.cg
	var leaves []string
	for _, p := range procs {
		want := filepath.Join(r.v2, "default.web", strconv.Itoa(p.ID))
		if p.cg == nil || p.cg.v2 != want {
			t.Fatalf("process %d: leaf %v, want %s", p.ID, p.cg, want)
		}
		if got := procCgroup(p.OSPid); got != r.host.v2Path(want) {
			t.Errorf("process %d is in cgroup %q, want %q", p.ID, got, r.host.v2Path(want))
		}
		st := p.Stats()
		if st.Cgroup != want {
			t.Errorf("stats of %d: cgroup %q, want %q", p.ID, st.Cgroup, want)
		}
		leaves = append(leaves, want)
	}
	var info map[string]any = map[string]any{}
	m.describeContainment(info)
	if info["containment"] != "cgroup2:"+r.v2 {
		t.Errorf("containment %v, want cgroup2:%s", info["containment"], r.v2)
	}
	if err := m.StopJob("default.web"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the leaves removed", func() bool {
		for _, l := range leaves {
			if _, err := os.Stat(l); err == nil {
				return false
			}
		}
		return true
	})
	if err := m.Unload("default.web"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the job's cgroup removed", func() bool {
		_, err := os.Stat(filepath.Join(r.v2, "default.web"))
		return os.IsNotExist(err)
	})
}

// readPids waits for a PIDFILE the child writes and returns its pids.
func readPids(t *testing.T, path string, n int) []int {
	t.Helper()
	var pids []int
	waitFor(t, 20*time.Second, "the pid file", func() bool {
		data, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pids = nil
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
		return len(pids) == n
	})
	return pids
}

// A stop kills the whole tree of a process through its cgroup, even
// descendants that left its process group, cleared their environment
// (no markers) and ignore SIGTERM: they get cgroup.kill at the graceful
// deadline. Without a cgroup, such processes survive the stop.
func TestCgroupStopKillsEscapedTree(t *testing.T) {
	m := cgroupManager(t)
	pidfile := filepath.Join(t.TempDir(), "pids")
	cfg := childConfig(t, "tree", "escapetree", map[string]string{"COUNT": "5", "CLEAR_ENV": "1",
		"IGNORE_TERM": "1", "PIDFILE": pidfile})
	cfg.GracefulTimeout = time.Second
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	pids := readPids(t, pidfile, 5)
	for _, pid := range pids {
		if env, _ := procEnviron(pid); env[markerVar] != "" {
			t.Fatalf("descendant %d carries the markers: the test needs them cleared", pid)
		}
	}
	procs, _ := m.JobProcesses("default.tree")
	leaf := procs[0].cg
	if got := len(leaf.procs()); got != 6 {
		t.Errorf("the leaf holds %d processes, want 6 (the process and its 5 descendants)", got)
	}
	start := time.Now()
	if err := m.StopJob("default.tree"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "every descendant gone", func() bool {
		for _, pid := range pids {
			if alive(pid) {
				return false
			}
		}
		return true
	})
	t.Logf("stopped a tree of 6 that ignores SIGTERM in %v (graceful_timeout 1s)", time.Since(start).Round(time.Millisecond))
	waitFor(t, 10*time.Second, "the leaf removed", func() bool {
		_, err := os.Stat(leaf.v2)
		return os.IsNotExist(err)
	})
}

// A process that exits on its own leaves its descendants in its cgroup;
// they are ended when the job stops (a job's leftovers).
func TestCgroupJobStopEndsLeftovers(t *testing.T) {
	m := cgroupManager(t)
	pidfile := filepath.Join(t.TempDir(), "pids")
	cfg := childConfig(t, "left", "escapetree", map[string]string{"COUNT": "2", "CLEAR_ENV": "1", "PIDFILE": pidfile})
	cfg.GracefulTimeout = time.Second
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	pids := readPids(t, pidfile, 2)
	procs, _ := m.JobProcesses("default.left")
	leaf := procs[0].cg
	syscall.Kill(procs[0].OSPid, syscall.SIGKILL) // the process dies, its descendants stay
	waitFor(t, 10*time.Second, "a replacement", func() bool {
		ps, _ := m.JobProcesses("default.left")
		return len(ps) == 1 && ps[0] != procs[0]
	})
	for _, pid := range pids {
		if !alive(pid) {
			t.Fatalf("descendant %d died with its parent", pid)
		}
	}
	if _, err := os.Stat(leaf.v2); err != nil {
		t.Fatalf("the dead process's cgroup is gone while it holds its descendants: %v", err)
	}
	if err := m.StopJob("default.left"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the leftovers gone", func() bool {
		for _, pid := range pids {
			if alive(pid) {
				return false
			}
		}
		_, err := os.Stat(leaf.v2)
		return os.IsNotExist(err)
	})
}

// The limits are written where the machine offers their controller (v2,
// else the v1 hierarchy), the process is in those cgroups, and they hold.
func TestCgroupLimits(t *testing.T) {
	m := cgroupManager(t)
	r := m.contain.cg
	cfg := childConfig(t, "lim", "sleep", nil)
	cfg.MemoryMax, cfg.CPUMax, cfg.PidsMax = 64<<20, 0.5, 20
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	p := onlyProcess(t, m, "default.lim")
	files := map[string][2]string{"memory": {"memory.max", "memory.limit_in_bytes"}, "cpu": {"cpu.max", "cpu.cfs_quota_us"},
		"pids": {"pids.max", "pids.max"}}
	want := map[string][2]string{"memory": {"67108864", "67108864"}, "cpu": {"50000 100000", "50000"}, "pids": {"20", "20"}}
	own, _ := os.ReadFile("/proc/" + strconv.Itoa(p.OSPid) + "/cgroup")
	for _, ctl := range []string{"memory", "cpu", "pids"} {
		src, err := r.limitSource(ctl)
		if err != nil {
			t.Logf("%s: %v (not checked)", ctl, err)
			continue
		}
		dir, file, value := p.cg.v2, files[ctl][0], want[ctl][0]
		if src != "cgroup2" {
			dir, file, value = p.cg.v1[ctl], files[ctl][1], want[ctl][1]
			rel := strings.TrimPrefix(dir, r.host.v1[ctl])
			if !strings.Contains(string(own), ":"+ctl) || !strings.Contains(string(own), rel+"\n") {
				t.Errorf("%s: the process is not in %s:\n%s", ctl, dir, own)
			}
		}
		got, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || strings.TrimSpace(string(got)) != value {
			t.Errorf("%s (%s): %s holds %q (%v), want %q", ctl, src, file, got, err, value)
		}
		t.Logf("%s_max from %s", ctl, src)
	}
	info := map[string]any{}
	m.describeContainment(info)
	t.Logf("GET / says: %v", info)
	leaves := p.cg
	m.StopJob("default.lim")
	waitFor(t, 10*time.Second, "the limit cgroups removed", func() bool {
		for _, d := range append([]string{leaves.v2}, leaves.v1["memory"], leaves.v1["cpu"], leaves.v1["pids"]) {
			if _, err := os.Stat(d); d != "" && err == nil {
				return false
			}
		}
		return true
	})
}

// pids_max bounds the process with all it starts; memory_max gets a
// process over it killed.
func TestCgroupLimitsHold(t *testing.T) {
	m := cgroupManager(t)
	if _, err := m.contain.cg.limitSource("pids"); err == nil {
		cfg := childConfig(t, "forks", "sleep", nil)
		cfg.Shell, cfg.PidsMax = true, 10
		// The subshell gives up at its first failed fork (sh: Cannot
		// fork); the shell itself stays.
		cfg.Cmd = "(i=0; while [ $i -lt 30 ]; do sleep 100 & i=$((i+1)); done); echo done; exec sleep 100"
		cfg.RedirectOutput = []string{"out", "out"}
		if err := m.Load("default", cfg, nil, true); err != nil {
			t.Fatal(err)
		}
		p := onlyProcess(t, m, "default.forks")
		if out := readUntil(t, p, "out", "done\n"); !strings.Contains(out, "fork") {
			t.Errorf("the shell forked 30 processes under pids_max 10: %q", out)
		}
		if n := len(p.cg.procs()); n > 10 || n < 2 {
			t.Errorf("%d processes in a cgroup of pids_max 10", n)
		}
		m.Unload("default.forks")
	}
	if _, err := m.contain.cg.limitSource("memory"); err == nil {
		cfg := childConfig(t, "hog", "memhog", map[string]string{"MEM": strconv.Itoa(256 << 20), "WAIT_STDIN": "1"})
		cfg.MemoryMax = 32 << 20
		cfg.RedirectOutput, cfg.RedirectInput = []string{"out", "out"}, true
		if err := m.Load("default", cfg, nil, true); err != nil {
			t.Fatal(err)
		}
		p := onlyProcess(t, m, "default.hog")
		if err := p.Write("stdin", []byte("go\n")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.Exited():
		case <-time.After(20 * time.Second):
			t.Fatal("a process allocating 256 MiB under memory_max 32 MiB was not stopped")
		}
		<-p.IODone()
		st, _ := p.Stream("out")
		chunks, _ := st.Backlog(0)
		var out []byte
		for _, c := range chunks {
			out = append(out, c.Data...)
		}
		m.mu.Lock()
		sig, status := p.termSignal, p.exitStatus
		m.mu.Unlock()
		// The OOM killer's SIGKILL, or the Go runtime's own "out of
		// memory" when the kernel refuses it a page table (exit 2).
		if strings.Contains(string(out), "allocated") || sig != int(syscall.SIGKILL) && status == 0 {
			t.Errorf("the process ended with signal %d, status %d, after %q: memory_max did not hold", sig, status, out)
		}
		t.Logf("under memory_max 32 MiB, allocating 256 MiB ended with signal %d, status %d", sig, status)
	}
}

// Where a controller is missing, the error names what the machine lacks.
func TestCgroupLimitRefusals(t *testing.T) {
	r := &cgRoot{host: &cgHost{v2: "/sys/fs/cgroup/x", v2Ctl: map[string]bool{"hugetlb": true}, v1: map[string]string{}},
		name: "gaffer-test", ctl: map[string]bool{}, v1: map[string]string{}, v1err: map[string]error{}}
	_, err := r.limitSource("memory")
	want := "the cgroup2 hierarchy at /sys/fs/cgroup/x offers no memory controller (it offers: hugetlb) and there is no cgroup v1 memory hierarchy"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	r.host.v1["cpu"] = "/nonexistent/cpu"
	if _, err := r.limitSource("cpu"); err == nil || !strings.Contains(err.Error(), "the cgroup v1 cpu hierarchy at /nonexistent/cpu is not writable") {
		t.Errorf("error %v", err)
	}
	m := newTestManager(t)
	cfg := childConfig(t, "x", "sleep", nil)
	cfg.PidsMax = 3
	if err := m.Load("default", cfg, nil, false); err == nil || !strings.Contains(err.Error(), "pids_max: this manager makes no cgroups") {
		t.Errorf("load: %v", err)
	}
}

// A manager's cgroup closed while a process is still in its leaf goes
// when that leaf empties.
func TestCgroupRootRemovedAfterLastLeaf(t *testing.T) {
	m := NewManager(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	m.enableCgroups()
	if m.contain.cg == nil || m.contain.cg.v2 == "" {
		t.Skipf("no writable cgroup2 hierarchy here: %s", m.contain.why)
	}
	root := m.contain.cg.v2
	cfg := childConfig(t, "slow", "ignoreterm", nil)
	cfg.GracefulTimeout = 10 * time.Second
	cfg.RedirectOutput = []string{"out"}
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	p := onlyProcess(t, m, "default.slow")
	readUntil(t, p, "out", "ready\n")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	m.Shutdown(ctx) // gives up at once: the process is killed, not waited for
	m.closeContainment()
	waitFor(t, 20*time.Second, "the manager's cgroup removed", func() bool {
		_, err := os.Stat(root)
		return os.IsNotExist(err)
	})
}
