package gaffer

import (
	"fmt"
	"math"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ProcStats are the figures of one process, as numbers. In JSON they are
// the fields of the documented stats message (mem_info1 and mem_info2
// formatted as "12M", cpu, mem, ctime as "M:SS.cc", pid, username, nice,
// cmdline, children) plus the numeric ones (rss_bytes, cpu_seconds…): see
// MarshalJSON.
//
// Children lists the stats of the process's child processes (each with
// its own children, at most statsMaxChildren entries in all, statsMaxDepth
// levels deep). They are not gaffer processes: they have no internal pid
// (Pid is 0, and "pid" is absent from the JSON); a child's CPUPercent is
// the average since it started. NumChildren counts the direct children,
// also past the bound. Cmdline is the command line the OS reports
// (arguments joined by spaces), with the values of the job's
// secret-looking variables (IsSecretName) replaced by ********, since
// stats only need the read right.
type ProcStats struct {
	Pid   int // internal pid; 0 for a child process
	OSPid int
	// Sampled is false when the OS gave no figures (the process is gone,
	// or the platform cannot read them): the figures are then zero and
	// the JSON says "N/A".
	Sampled    bool
	RSSBytes   int64   // resident set size
	VMSBytes   int64   // virtual memory size
	CPUPercent float64 // percent of one core since the last sample, one decimal
	// MemPercent is the RSS as a percent of physical memory (one
	// decimal), -1 when the size of physical memory is unknown.
	MemPercent  float64
	CPUSeconds  float64 // total CPU time
	Username    string  // owner (real uid): its name, else its number; "" when unknown
	Nice        int
	Cmdline     string
	NumThreads  int
	NumFDs      int
	NumChildren int
	Children    []ProcStats
	// Cgroup is the process's cgroup when it has one (cgroup_linux.go):
	// CPUSeconds and CPUPercent (and RSSBytes and MemPercent where a
	// memory controller accounts it) are then the cgroup's figures, which
	// include every descendant.
	Cgroup string
}

// Bounds of the children listed in a stats message.
const (
	statsMaxChildren = 64
	statsMaxDepth    = 4
)

// rawStats is what the platform code reads about a process from its
// status (cheap: /metrics reads it for every process).
type rawStats struct {
	rss, vms   int64
	cpuSeconds float64
	threads    int
	fds        int
	nice       int
	niceOK     bool
	started    float64 // start time in the platform's clock (see processAge); 0 when unknown
	ok         bool
}

// rawDetails is what the platform code reads for a stats message on top
// of rawStats.
type rawDetails struct {
	uid      int // real uid; -1 when unknown
	cmdline  []string
	children []int // OS pids of the direct children
}

// humanSize formats a byte count as the original did: "1023B", "12K",
// "3M"… (1024-based, truncated).
func humanSize(n int64) string {
	units := []string{"K", "M", "G", "T", "P", "E"}
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	v := float64(n)
	u := ""
	for _, unit := range units {
		if v < 1024 {
			break
		}
		v /= 1024
		u = unit
	}
	return fmt.Sprintf("%d%s", int64(v), u)
}

// formatCTime formats CPU seconds as M:SS.cc (minutes not wrapped).
func formatCTime(sec float64) string {
	cs := int64(math.Round(sec * 100))
	return fmt.Sprintf("%d:%02d.%02d", cs/6000, (cs/100)%60, cs%100)
}

// Stats samples the process's figures now. CPU percent covers the time
// since the previous sample (or since the start for the first one).
func (p *Process) Stats() ProcStats {
	raw := readStats(p.OSPid)
	st := ProcStats{Pid: p.ID, OSPid: p.OSPid, Children: []ProcStats{}}
	if !raw.ok {
		return st
	}
	// In a cgroup, the CPU time (and the memory, where a controller
	// accounts it) is the cgroup's: the process and all it started.
	if cpu, ok := p.cg.cpuSeconds(); ok {
		raw.cpuSeconds, st.Cgroup = cpu, p.cg.v2
	}
	if mem, ok := p.cg.memory(); ok {
		raw.rss = mem
	}
	now := time.Now()
	p.statsMu.Lock()
	wall := now.Sub(p.lastWall).Seconds()
	cpu := 0.0
	if wall > 0 {
		cpu = (raw.cpuSeconds - p.lastCPU) / wall * 100
	}
	p.lastCPU, p.lastWall = raw.cpuSeconds, now
	p.statsMu.Unlock()
	budget := statsMaxChildren
	statsFill(&st, raw, cpu, statsMasker(p.Env), 0, &budget)
	return st
}

// statsFill sets the figures of st (whose OSPid is set) from raw, with
// cpu the percent to report, then its details and its children.
func statsFill(st *ProcStats, raw rawStats, cpu float64, mask func(string) string, depth int, budget *int) {
	cpu = math.Round(max(cpu, 0)*10) / 10
	st.Sampled = true
	st.RSSBytes, st.VMSBytes = raw.rss, raw.vms
	st.CPUPercent, st.CPUSeconds = cpu, raw.cpuSeconds
	st.NumThreads, st.NumFDs = raw.threads, raw.fds
	st.MemPercent = -1
	if total := totalMemory(); total > 0 {
		st.MemPercent = math.Round(float64(raw.rss)/float64(total)*1000) / 10
	}
	st.Nice = raw.nice
	det := readDetails(st.OSPid)
	st.Username = statsUsername(det.uid)
	st.Cmdline = mask(strings.Join(det.cmdline, " "))
	st.NumChildren = len(det.children)
	for _, pid := range det.children {
		if depth >= statsMaxDepth || *budget <= 0 {
			break
		}
		craw := readStats(pid)
		if !craw.ok {
			continue // exited meanwhile
		}
		*budget--
		ccpu := 0.0
		if age := processAge(craw.started); age > 0 {
			ccpu = craw.cpuSeconds / age * 100
		}
		child := ProcStats{OSPid: pid, Children: []ProcStats{}}
		statsFill(&child, craw, ccpu, mask, depth+1, budget)
		st.Children = append(st.Children, child)
	}
}

// statsMasker returns a function that replaces, in a command line, the
// values of env's secret-looking variables (4 bytes or longer) by ********.
func statsMasker(env map[string]string) func(string) string {
	var secrets []string
	for k, v := range env {
		if len(v) >= 4 && IsSecretName(k) {
			secrets = append(secrets, v)
		}
	}
	if len(secrets) == 0 {
		return func(s string) string { return s }
	}
	// Longest first, so that a secret holding another is masked whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	return func(s string) string {
		for _, v := range secrets {
			s = strings.ReplaceAll(s, v, "********")
		}
		return s
	}
}

// statsUsers caches uid → user name lookups.
var statsUsers sync.Map

// statsUsername names a uid: the user's name, else the number ("" when
// the uid is unknown).
func statsUsername(uid int) string {
	if uid < 0 {
		return ""
	}
	if name, ok := statsUsers.Load(uid); ok {
		return name.(string)
	}
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil && u.Username != "" {
		name = u.Username
	}
	statsUsers.Store(uid, name)
	return name
}
