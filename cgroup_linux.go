package gaffer

// Cgroups, where the machine lets gafferd write a cgroup2 hierarchy (a
// pure v2 host where gafferd's own cgroup is delegated to it, as systemd
// does with Delegate=yes, or a hybrid host with a writable cgroup2 mount
// such as /sys/fs/cgroup/unified). The mounts are read from
// /proc/self/mountinfo and gafferd's own cgroups from /proc/self/cgroup;
// no path is assumed. Each process gafferd spawns gets a cgroup of its
// own, a leaf under its job's:
//
//	<gafferd's cgroup>/gaffer-<instance>/<session>.<job>/<internal pid>
//
// One leaf per process rather than one per job: stopping one process (a
// stop_process, a scale-down, a memory_restart) kills exactly that
// process's tree, its figures are those of its tree, and a limit
// (memory_max, cpu_max, pids_max) bounds each process with all it starts,
// as rlimits do; the job's figures are the sums over its processes.
//
// The child enters its leaf as it is created (clone3 with
// CLONE_INTO_CGROUP, Linux 5.7, through SysProcAttr.UseCgroupFD): no
// instant exists where it, or something it forked, runs outside. Where
// the kernel cannot, the exec shim (execshim_linux.go) moves the child in
// itself before it execs the command, so the hole stays closed at the cost
// of the shim's exec.
//
// The limits use the v2 controllers (memory.max, cpu.max, pids.max) when
// gafferd's cgroup offers them (they are then enabled down to the
// leaves), else the v1 hierarchy of that controller if it is writable
// (memory.limit_in_bytes, cpu.cfs_quota_us and cpu.cfs_period_us,
// pids.max), in a leaf of the same name there, which the shim joins
// before it execs the command; else a job that sets the limit is refused
// at load with an error naming what the machine lacks. A v1 leaf is made
// only for a process that has such a limit.
//
// A stop signals the process group first (SIGTERM) as without cgroups,
// and each process of the leaf that left that group; the rest of the
// leaf gets cgroup.kill (Linux 5.14; before it, SIGKILL to each member
// until none is left) at the graceful deadline, however it double-forked
// or changed its group or cleared its environment (escape.go). Empty
// leaves are removed as their processes end, job cgroups once empty, and
// gafferd's own when it stops.
//
// On a pure v2 host the controllers can only be enabled below a cgroup
// that holds no process: when gafferd's cgroup holds gafferd alone,
// gafferd moves itself into <gafferd's cgroup>/gaffer-<instance>/gafferd
// first (the layout systemd documents for delegation).

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// cgHost is what the machine offers, read once.
type cgHost struct {
	v2     string                  // gafferd's cgroup in the cgroup2 mount; "" without one
	v2Root bool                    // v2 is the root of its hierarchy (no internal-process rule)
	v2Path func(dir string) string // the cgroup path of a directory under v2
	v2Ctl  map[string]bool         // the controllers v2 offers (its cgroup.controllers)
	v1     map[string]string       // memory, cpu, pids → gafferd's cgroup in that controller's v1 hierarchy
}

// cgLimitCtl are the controllers the limits use.
var cgLimitCtl = []string{"memory", "cpu", "pids"}

var cgHostProbe = sync.OnceValue(func() *cgHost {
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	pc, _ := os.ReadFile("/proc/self/cgroup")
	h := probeCgHost(parseCgroupMounts(mi), pc)
	if h.v2 != "" {
		if data, err := os.ReadFile(filepath.Join(h.v2, "cgroup.controllers")); err == nil {
			for _, c := range strings.Fields(string(data)) {
				h.v2Ctl[c] = true
			}
		}
	}
	return h
})

// cgMount is one cgroup mount of /proc/self/mountinfo.
type cgMount struct {
	root, point string
	v2          bool
	ctl         []string // v1: the controllers of the hierarchy
}

// parseCgroupMounts reads the cgroup and cgroup2 mounts of a mountinfo
// file: "id parent maj:min root point options [optional…] - type source
// superoptions", with octal escapes (\040) in the paths.
func parseCgroupMounts(data []byte) []cgMount {
	var out []cgMount
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		sep := -1
		for i, x := range f {
			if x == "-" && i >= 6 {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 > len(f) {
			continue
		}
		m := cgMount{root: unescapeMount(f[3]), point: unescapeMount(f[4])}
		switch f[sep+1] {
		case "cgroup2":
			m.v2 = true
		case "cgroup":
			if sep+3 < len(f) {
				for _, o := range strings.Split(f[sep+3], ",") {
					if o != "rw" && o != "ro" && !strings.Contains(o, "=") {
						m.ctl = append(m.ctl, o)
					}
				}
			}
		default:
			continue
		}
		if !strings.HasPrefix(m.root, "/") || !strings.HasPrefix(m.point, "/") {
			continue
		}
		out = append(out, m)
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 space, \011 tab,
// \012 newline, \134 backslash).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// probeCgHost finds gafferd's cgroups in the mounts: the "0::" line of
// /proc/self/cgroup in a cgroup2 mount, and the v1 line of each limit
// controller in the mount of its hierarchy. A cgroup outside the mount's
// root (a path with "..", or not under the root) is not usable.
func probeCgHost(mounts []cgMount, procCgroup []byte) *cgHost {
	h := &cgHost{v2Ctl: map[string]bool{}, v1: map[string]string{}}
	for _, line := range strings.Split(string(procCgroup), "\n") {
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctls, path, ok := strings.Cut(rest, ":")
		if !ok || !strings.HasPrefix(path, "/") || strings.Contains(path, "/..") {
			continue
		}
		if id == "0" && ctls == "" {
			for _, m := range mounts {
				if dir, ok := cgMountDir(m, path); ok && m.v2 {
					h.v2, h.v2Root = dir, filepath.Clean(path) == filepath.Clean(m.root)
					h.v2Path = func(d string) string {
						return filepath.Join(m.root, strings.TrimPrefix(d, m.point))
					}
					break
				}
			}
			continue
		}
		for _, c := range strings.Split(ctls, ",") {
			if !slices.Contains(cgLimitCtl, c) {
				continue
			}
			for _, m := range mounts {
				if dir, ok := cgMountDir(m, path); ok && !m.v2 && slices.Contains(m.ctl, c) {
					h.v1[c] = dir
					break
				}
			}
		}
	}
	return h
}

// cgMountDir is the directory of cgroup path in mount m.
func cgMountDir(m cgMount, path string) (string, bool) {
	root := strings.TrimSuffix(m.root, "/")
	if path != root && !strings.HasPrefix(path, root+"/") {
		return "", false
	}
	return filepath.Join(m.point, strings.TrimPrefix(path, root)), true
}

// cgRoot is the cgroup of one manager: gaffer-<instance> in the cgroup2
// hierarchy (v2, "" when there is none to write) and, made when a limit
// first needs one, in the v1 hierarchies.
type cgRoot struct {
	host    *cgHost
	name    string // gaffer-<instance>
	v2      string
	ctl     map[string]bool // v2 controllers enabled for the leaves
	hasKill bool            // cgroup.kill exists (Linux 5.14)
	moved   bool            // gafferd moved itself into v2/gafferd
	log     *slog.Logger
	noClone atomic.Bool // CLONE_INTO_CGROUP failed: the shim joins instead

	mu     sync.Mutex
	v1     map[string]string // controller → its v1 root, once made
	v1err  map[string]error
	leaves map[escapeKey]*cgLeaf // by the markers of the process (inst, id)
	closed bool                  // gafferd stopped: the last leaf removed takes the rest
}

// newCgRoot makes the manager's cgroups; nil (and why) when the machine
// has no cgroup2 hierarchy gafferd can write and no v1 limit hierarchy.
func newCgRoot(instance string, log *slog.Logger) (*cgRoot, string) {
	h := cgHostProbe()
	r := &cgRoot{host: h, name: "gaffer-" + instance, ctl: map[string]bool{}, log: log,
		v1: map[string]string{}, v1err: map[string]error{}, leaves: map[escapeKey]*cgLeaf{}}
	why := "no cgroup2 mount holds gafferd's cgroup"
	if h.v2 != "" {
		dir := filepath.Join(h.v2, r.name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			why = fmt.Sprintf("cannot write the cgroup2 hierarchy (%v)", err)
		} else {
			r.v2 = dir
			_, err := os.Stat(filepath.Join(dir, "cgroup.kill"))
			r.hasKill = err == nil
			r.enableControllers()
		}
	}
	if r.v2 == "" && len(h.v1) == 0 {
		return nil, why
	}
	return r, why
}

// enableControllers enables the limit controllers that gafferd's cgroup
// offers, in it and in the manager's cgroup, moving gafferd into a leaf
// of its own when its cgroup holds it (the no-internal-process rule).
func (r *cgRoot) enableControllers() {
	var want []string
	for _, c := range cgLimitCtl {
		if r.host.v2Ctl[c] {
			want = append(want, c)
		}
	}
	if len(want) == 0 {
		return
	}
	got := cgEnable(r.host.v2, want)
	if len(got) < len(want) && !r.host.v2Root && r.moveSelf() {
		got = cgEnable(r.host.v2, want)
	}
	for _, c := range cgEnable(r.v2, got) {
		r.ctl[c] = true
	}
}

// moveSelf moves gafferd into v2/gafferd when it is alone in its cgroup.
func (r *cgRoot) moveSelf() bool {
	procs := cgProcs(r.host.v2)
	if len(procs) != 1 || procs[0] != os.Getpid() {
		return false
	}
	leaf := filepath.Join(r.v2, "gafferd")
	if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return false
	}
	if err := cgWrite(leaf, "cgroup.procs", "0"); err != nil {
		os.Remove(leaf)
		return false
	}
	r.moved = true
	r.log.Info("moved gafferd into a cgroup of its own, so that its jobs' cgroups may use controllers", "cgroup", leaf)
	return true
}

// cgEnable writes +controller to dir's cgroup.subtree_control for each of
// want and returns those enabled.
func cgEnable(dir string, want []string) []string {
	var got []string
	for _, c := range want {
		if cgWrite(dir, "cgroup.subtree_control", "+"+c) == nil {
			got = append(got, c)
		}
	}
	return got
}

// cgWrite writes one value to a cgroup file.
func cgWrite(dir, file, value string) error {
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// cgProcs lists the pids of a cgroup (cgroup.procs).
func cgProcs(dir string) []int {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// describe says where the processes are contained, for GET /.
func (r *cgRoot) describe() string {
	if r == nil || r.v2 == "" {
		return "process-groups"
	}
	return "cgroup2:" + r.v2
}

// limitSource says where a limit controller comes from ("cgroup2" or
// "cgroup1:<dir>"), making the v1 root on first use; an error says what
// the machine lacks.
func (r *cgRoot) limitSource(ctl string) (string, error) {
	if r == nil {
		return "", errors.New("no cgroups")
	}
	if r.ctl[ctl] {
		return "cgroup2", nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if d := r.v1[ctl]; d != "" {
		return "cgroup1:" + d, nil
	}
	if err := r.v1err[ctl]; err != nil {
		return "", err
	}
	parent := r.host.v1[ctl]
	if parent == "" {
		err := errors.New(cgLacks(r.host, ctl))
		r.v1err[ctl] = err
		return "", err
	}
	dir := filepath.Join(parent, r.name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		err = fmt.Errorf("%s; the cgroup v1 %s hierarchy at %s is not writable (%v)", cgLacks(r.host, ctl), ctl, parent, err)
		r.v1err[ctl] = err
		return "", err
	}
	r.v1[ctl] = dir
	return "cgroup1:" + dir, nil
}

// cgLacks says why the v2 hierarchy gives no controller ctl.
func cgLacks(h *cgHost, ctl string) string {
	if h.v2 == "" {
		return "no cgroup2 hierarchy holds gafferd's cgroup"
	}
	var offered []string
	for c := range h.v2Ctl {
		offered = append(offered, c)
	}
	sort.Strings(offered)
	if len(offered) == 0 {
		offered = []string{"none"}
	}
	s := fmt.Sprintf("the cgroup2 hierarchy at %s offers no %s controller (it offers: %s)", h.v2, ctl, strings.Join(offered, ", "))
	if h.v1[ctl] == "" {
		s += fmt.Sprintf(" and there is no cgroup v1 %s hierarchy", ctl)
	}
	return s
}

// limitsInfo lists where each limit comes from, for GET / (without
// making anything: a v1 cgroup is made by the first job that needs it).
func (r *cgRoot) limitsInfo() map[string]string {
	out := map[string]string{}
	for _, c := range []struct{ key, ctl string }{{"memory_max", "memory"}, {"cpu_max", "cpu"}, {"pids_max", "pids"}} {
		r.mu.Lock()
		dir, err := r.v1[c.ctl], r.v1err[c.ctl]
		r.mu.Unlock()
		parent := r.host.v1[c.ctl]
		switch {
		case r.ctl[c.ctl]:
			out[c.key] = "cgroup2"
		case dir != "":
			out[c.key] = "cgroup1:" + dir
		case err != nil:
			out[c.key] = "unavailable: " + err.Error()
		case parent == "":
			out[c.key] = "unavailable: " + cgLacks(r.host, c.ctl)
		case unix.Access(parent, unix.W_OK) != nil:
			out[c.key] = "unavailable: " + cgLacks(r.host, c.ctl) + "; the cgroup v1 " + c.ctl + " hierarchy at " + parent + " is not writable"
		default:
			out[c.key] = "cgroup1:" + filepath.Join(parent, r.name)
		}
	}
	return out
}

// cgLimits are the limits of one process's cgroup.
type cgLimits struct {
	memory int64   // bytes
	cpu    float64 // cores
	pids   int
}

func jobCgLimits(c *JobConfig) cgLimits {
	return cgLimits{memory: c.MemoryMax, cpu: c.CPUMax, pids: c.PidsMax}
}

// cgCPUPeriod is the period of cpu_max's quota, in microseconds.
const cgCPUPeriod = 100000

// each calls fn with the controller, v2 file, v1 file(s) and values of
// every limit set.
func (l cgLimits) each(fn func(ctl string, v2 [2]string, v1 [][2]string)) {
	if l.memory > 0 {
		n := strconv.FormatInt(l.memory, 10)
		fn("memory", [2]string{"memory.max", n}, [][2]string{{"memory.limit_in_bytes", n}})
	}
	if l.cpu > 0 {
		q := strconv.Itoa(max(int(l.cpu*cgCPUPeriod), 1000))
		fn("cpu", [2]string{"cpu.max", q + " " + strconv.Itoa(cgCPUPeriod)},
			[][2]string{{"cpu.cfs_period_us", strconv.Itoa(cgCPUPeriod)}, {"cpu.cfs_quota_us", q}})
	}
	if l.pids > 0 {
		n := strconv.Itoa(l.pids)
		fn("pids", [2]string{"pids.max", n}, [][2]string{{"pids.max", n}})
	}
}

// close removes what is empty of the manager's cgroups (gafferd stopping:
// the leaves of detached processes left running stay).
func (r *cgRoot) close() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.closed = true
	dirs := []string{r.v2}
	for _, d := range r.v1 {
		dirs = append(dirs, d)
	}
	r.mu.Unlock()
	for _, d := range dirs {
		cgRemoveTree(d, 2)
	}
}

// cgRemoveTree removes the empty cgroups of dir, depth levels deep, then
// dir itself; what holds processes stays.
func cgRemoveTree(dir string, depth int) {
	if dir == "" {
		return
	}
	if depth > 0 {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.IsDir() {
				cgRemoveTree(filepath.Join(dir, e.Name()), depth-1)
			}
		}
	}
	os.Remove(dir)
}
