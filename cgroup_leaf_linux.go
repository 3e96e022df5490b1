package gaffer

// The cgroup of one process (a leaf of the manager's cgroup, see
// cgroup_linux.go): made before the fork, entered by the child as it is
// created, stopped through (escape.go), read for the stats, removed once
// empty; and what a killed gafferd's instances left in theirs.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cgLeaf is the cgroup of one process (and whatever it starts).
type cgLeaf struct {
	key    escapeKey // inst, id: the process's markers
	job    string
	detach bool
	v2     string            // the leaf in the cgroup2 hierarchy; "" without one
	v1     map[string]string // controller → the leaf in its v1 hierarchy
	stop   string            // for an adopted leaf: its old manager's cgroup, removed once empty
	root   *cgRoot
}

// newLeaf makes the cgroup of a process about to be spawned, with its
// limits.
func (r *cgRoot) newLeaf(inst, id, job string, lim cgLimits, detach bool) (*cgLeaf, error) {
	l := &cgLeaf{key: escapeKey{inst: inst, id: id}, job: job, detach: detach, v1: map[string]string{}, root: r}
	var err error
	if r.v2 != "" {
		if l.v2, err = r.mkLeaf(r.v2, job, id, len(r.ctl) > 0); err != nil {
			return nil, fmt.Errorf("cgroup: %v", err)
		}
	}
	lim.each(func(ctl string, v2 [2]string, v1 [][2]string) {
		if err != nil {
			return
		}
		var src string
		if src, err = r.limitSource(ctl); err != nil {
			return
		}
		if src == "cgroup2" {
			err = cgWrite(l.v2, v2[0], v2[1])
			return
		}
		dir, merr := r.mkLeaf(strings.TrimPrefix(src, "cgroup1:"), job, id, false)
		if merr != nil {
			err = merr
			return
		}
		l.v1[ctl] = dir
		for _, kv := range v1 {
			if err = cgWrite(dir, kv[0], kv[1]); err != nil {
				return
			}
		}
	})
	if err != nil {
		l.remove()
		return nil, fmt.Errorf("cgroup limits: %v", err)
	}
	if l.v2 != "" {
		r.mu.Lock()
		r.leaves[l.key] = l
		r.mu.Unlock()
	}
	return l, nil
}

// mkLeaf makes base/job/id (the job's cgroup first, with the controllers
// enabled for its leaves when ctl).
func (r *cgRoot) mkLeaf(base, job, id string, ctl bool) (string, error) {
	jobDir := filepath.Join(base, job)
	leaf := filepath.Join(jobDir, id)
	for try := 0; ; try++ {
		err := os.Mkdir(jobDir, 0o755)
		if err == nil && ctl {
			var want []string
			for c := range r.ctl {
				want = append(want, c)
			}
			cgEnable(jobDir, want)
		}
		if err != nil && !errors.Is(err, os.ErrExist) {
			return "", err
		}
		err = os.Mkdir(leaf, 0o755)
		if err == nil || errors.Is(err, os.ErrExist) {
			return leaf, nil
		}
		if !errors.Is(err, os.ErrNotExist) || try > 0 {
			return "", err
		}
		// The job's cgroup was removed (its last leaf ended) in between.
	}
}

// leafOf finds the registered leaf of a process by its markers.
func (r *cgRoot) leafOf(inst, id string) *cgLeaf {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leaves[escapeKey{inst: inst, id: id}]
}

// jobLeaves lists the leaves of a job's processes that are not detached.
func (r *cgRoot) jobLeaves(job string) []*cgLeaf {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*cgLeaf
	for _, l := range r.leaves {
		if l.job == job && !l.detach {
			out = append(out, l)
		}
	}
	return out
}

// register adds a leaf found another way (an adopted process's).
func (r *cgRoot) register(l *cgLeaf) {
	r.mu.Lock()
	l.root = r
	r.leaves[l.key] = l
	r.mu.Unlock()
}

// openDir opens the leaf for CLONE_INTO_CGROUP (-1 when not used).
func (l *cgLeaf) openDir() int {
	if l == nil || l.v2 == "" || l.root.noClone.Load() {
		return -1
	}
	fd, err := unix.Open(l.v2, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

// joinFiles are the cgroup.procs files the shim writes its pid to: the v1
// leaves, and the v2 leaf when the clone could not enter it.
func (l *cgLeaf) joinFiles(cloned bool) []string {
	if l == nil {
		return nil
	}
	var out []string
	if l.v2 != "" && !cloned {
		out = append(out, filepath.Join(l.v2, "cgroup.procs"))
	}
	for _, c := range cgLimitCtl {
		if d := l.v1[c]; d != "" {
			out = append(out, filepath.Join(d, "cgroup.procs"))
		}
	}
	return out
}

// procs lists the processes in the leaf (zombies excepted).
func (l *cgLeaf) procs() []int { return cgProcs(l.v2) }

// kill kills every process of the leaf: cgroup.kill, else SIGKILL to each
// member until none is left (bounded).
func (l *cgLeaf) kill() {
	if l.v2 == "" {
		return
	}
	if l.root != nil && l.root.hasKill {
		if err := cgWrite(l.v2, "cgroup.kill", "1"); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
	}
	for round := 0; round < 20; round++ {
		pids := l.procs()
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			signalChecked(pid, syscall.SIGKILL, l.holds)
		}
	}
}

// holds reports whether pid is in the leaf (its /proc/<pid>/cgroup names
// it), so that a signal never reaches a pid reused meanwhile.
func (l *cgLeaf) holds(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil || l.root == nil || l.root.host.v2Path == nil {
		return false
	}
	return bytes.Contains(data, []byte("0::"+l.root.host.v2Path(l.v2)+"\n"))
}

// remove removes the leaf once it is empty, with the job's cgroup if that
// is empty too; it reports whether the leaf is gone.
func (l *cgLeaf) remove() bool {
	if l.v2 != "" && len(l.procs()) > 0 {
		return false
	}
	for _, d := range l.v1 {
		os.Remove(d)
		os.Remove(filepath.Dir(d))
	}
	if l.v2 != "" {
		if err := os.Remove(l.v2); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false
		}
		os.Remove(filepath.Dir(l.v2))
		if l.stop != "" {
			os.Remove(l.stop)
		}
	}
	if r := l.root; r != nil {
		r.mu.Lock()
		if r.leaves[l.key] == l {
			delete(r.leaves, l.key)
		}
		closed := r.closed
		r.mu.Unlock()
		if closed {
			r.close() // the last leaf of a stopped manager: its cgroups go too
		}
	}
	return true
}

// cpuSeconds is the CPU time of the leaf's processes, those that ended
// included (cpu.stat usage_usec).
func (l *cgLeaf) cpuSeconds() (float64, bool) {
	if l == nil || l.v2 == "" {
		return 0, false
	}
	data, err := os.ReadFile(filepath.Join(l.v2, "cpu.stat"))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return float64(n) / 1e6, err == nil
		}
	}
	return 0, false
}

// memory is the memory charged to the leaf (memory.current, or the v1
// memory.usage_in_bytes), when a memory controller accounts it.
func (l *cgLeaf) memory() (int64, bool) {
	if l == nil {
		return 0, false
	}
	file := ""
	switch {
	case l.v2 != "" && l.root != nil && l.root.ctl["memory"]:
		file = filepath.Join(l.v2, "memory.current")
	case l.v1["memory"] != "":
		file = filepath.Join(l.v1["memory"], "memory.usage_in_bytes")
	default:
		return 0, false
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n, err == nil
}

// cgLeftovers is what the previous instances left in their cgroups.
type cgLeftovers struct {
	victims []leftover            // the processes found in their leaves
	leaves  []*cgLeaf             // those leaves: killed, then removed
	roots   []string              // the instances' cgroups, removed once empty
	spared  map[escapeKey]*cgLeaf // the leaves of the detached processes adopted
}

// cgroupLeftovers looks for the cgroups of the instances insts under
// gafferd's own cgroups (where a gafferd on the same cgroup put them) and
// lists the processes in them, sparing the leaves for which spare holds
// (the detached processes to adopt).
func cgroupLeftovers(insts map[string]bool, spare func(inst, job, id string) bool) cgLeftovers {
	h := cgHostProbe()
	out := cgLeftovers{spared: map[escapeKey]*cgLeaf{}}
	tmp := &cgRoot{host: h, leaves: map[escapeKey]*cgLeaf{}}
	if h.v2 != "" {
		_, err := os.Stat(filepath.Join(h.v2, "cgroup.kill"))
		tmp.hasKill = err == nil
	}
	for inst := range insts {
		if inst == "" || strings.ContainsAny(inst, "/.") {
			continue
		}
		name := "gaffer-" + inst
		for _, base := range append([]string{h.v2}, cgV1Dirs(h)...) {
			if base == "" {
				continue
			}
			root := filepath.Join(base, name)
			if st, err := os.Stat(root); err != nil || !st.IsDir() {
				continue
			}
			out.roots = append(out.roots, root)
			if base != h.v2 {
				continue // v1 leaves hold the same processes as the v2 ones
			}
			jobs, _ := os.ReadDir(root)
			for _, jd := range jobs {
				if !jd.IsDir() {
					continue
				}
				ids, _ := os.ReadDir(filepath.Join(root, jd.Name()))
				for _, ld := range ids {
					if !ld.IsDir() {
						continue
					}
					l := &cgLeaf{key: escapeKey{inst: inst, id: ld.Name()}, job: jd.Name(), v2: filepath.Join(root, jd.Name(), ld.Name()),
						v1: map[string]string{}, root: tmp, stop: root}
					if spare(inst, jd.Name(), ld.Name()) {
						l.detach = true
						out.spared[l.key] = l
						continue
					}
					for _, pid := range l.procs() {
						if st, ok := readProcStat(pid); ok && st.state != 'Z' {
							out.victims = append(out.victims, leftover{pid, st.startTime, jd.Name(), "cgroup " + l.v2})
						}
					}
					out.leaves = append(out.leaves, l)
				}
			}
		}
	}
	return out
}

// cgV1Dirs lists gafferd's cgroups in the v1 limit hierarchies.
func cgV1Dirs(h *cgHost) []string {
	var out []string
	for _, c := range cgLimitCtl {
		if d := h.v1[c]; d != "" {
			out = append(out, d)
		}
	}
	return out
}

// end kills what is left in the leaves, waits (at most wait) until they
// are empty, and removes what is empty.
func (c cgLeftovers) end(wait time.Duration) {
	for _, l := range c.leaves {
		l.kill()
	}
	deadline := time.Now().Add(wait)
	for _, l := range c.leaves {
		for !l.remove() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, r := range c.roots {
		cgRemoveTree(r, 2)
	}
}
