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
