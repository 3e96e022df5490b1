package gaffer

import (
	"log/slog"
	"os"
	"strings"
	"syscall"
	"time"
)

// A gafferd killed with SIGKILL cannot stop its processes. Its children
// die with it (PR_SET_PDEATHSIG, spawner.go), except detached ones and
// children whose death signal the kernel cleared (a set-user-ID program
// such as sudo); descendants that double-forked out of their group were
// never its children. The next gafferd on the same data directory reads
// the ledger the killed one left (ledger.go) and, before it starts any
// job:
//
//   - adopts the detached processes that are still alive (same pid, same
//     start time, same markers): they go back into their job's processes,
//     are watched through a pidfd (they are no longer its children, so
//     their exit status is unknown: -1), count in numprocesses, and can
//     be stopped like the others;
//   - ends everything else that is left: the recorded processes still
//     alive, the members of their process groups, every process in the
//     cgroups the previous instance made under this gafferd's cgroup
//     (cgroup_linux.go; a detached process's cgroup excepted), and every
//     process whose environment carries the previous instance's
//     GAFFER_INSTANCE marker (a detached process's own descendants
//     excepted): SIGTERM, then
//     SIGKILL after the longest graceful timeout recorded (at most 30 s;
//     5 s when none is), each signal through a pidfd checked against the
//     pid's start time; then cgroup.kill of those cgroups, which are
//     removed. Every process ended is logged.

// Bounds of the grace given to the leftovers of a previous gafferd.
const (
	leftoverDefaultGrace = 5 * time.Second
	leftoverMaxGrace     = 30 * time.Second
	leftoverKillWait     = 5 * time.Second
)

type leftover struct {
	pid       int
	startTime uint64
	job       string
	foundBy   string
}

// endLeftovers ends what the previous gafferd (prev) left behind and
// returns its detached processes, to adopt.
func endLeftovers(prev *ledgerDoc, log *slog.Logger) []*Process {
	if prev == nil {
		return nil
	}
	insts := map[string]bool{prev.Instance: true}
	for _, e := range prev.Processes {
		insts[e.Instance] = true
	}
	type marker struct{ inst, id string }
	spare := map[marker]bool{}
	spareGroups := map[int]bool{}
	var adopt []*Process
	victims := map[int]leftover{}
	grace := time.Duration(0)
	recorded := map[int]bool{}
	for _, e := range prev.Processes {
		if e.Detach {
			if p := adoptable(e); p != nil {
				adopt = append(adopt, p)
				spare[marker{e.Instance, e.MarkerPid}] = true
				spareGroups[e.OSPid] = true
			}
			continue
		}
		st, ok := readProcStat(e.OSPid)
		if !ok || st.state == 'Z' || st.startTime != e.StartTime {
			continue
		}
		victims[e.OSPid] = leftover{e.OSPid, st.startTime, e.Job, "recorded pid"}
		recorded[e.OSPid] = true
		grace = max(grace, time.Duration(e.GracefulNS))
	}
	// Their cgroups, where they had some: every process in them, however
	// it left its group or cleared its environment.
	cgs := cgroupLeftovers(insts, func(inst, job, id string) bool { return spare[marker{inst, id}] })
	defer cgs.end(leftoverKillWait)
	for _, v := range cgs.victims {
		if victims[v.pid].pid == 0 {
			victims[v.pid] = v
		}
	}
	for _, p := range adopt {
		p.cg = cgs.spared[escapeKey{inst: p.markInst, id: p.markID}]
	}
	self := os.Getpid()
	for _, pid := range allPids() {
		if pid == self || victims[pid].pid != 0 {
			continue
		}
		st, ok := readProcStat(pid)
		if !ok || st.state == 'Z' || spareGroups[st.pgid] || spareGroups[st.sid] {
			continue
		}
		inst, id, job, marked := procMarkers(pid)
		switch {
		case marked && insts[inst] && !spare[marker{inst, id}]:
			victims[pid] = leftover{pid, st.startTime, job, "marker " + markerVar + "=" + inst}
		case recorded[st.pgid] && !(marked && spare[marker{inst, id}]):
			victims[pid] = leftover{pid, st.startTime, job, "process group of a recorded process"}
		}
	}
	if len(victims) == 0 {
		return adopt
	}
	if grace <= 0 {
		grace = leftoverDefaultGrace
	}
	grace = min(grace, leftoverMaxGrace)
	log.Warn("a previous gafferd on this data directory left processes behind; ending them",
		"previous_instance", prev.Instance, "previous_pid", prev.Pid, "count", len(victims), "grace", grace)
	signalLeftovers(victims, syscall.SIGTERM, log)
	left := waitLeftovers(victims, grace)
	if len(left) > 0 {
		signalLeftovers(left, syscall.SIGKILL, log)
		left = waitLeftovers(left, leftoverKillWait)
	}
	for _, v := range victims {
		how := "SIGTERM"
		if _, ok := left[v.pid]; ok {
			how = "still there after SIGKILL"
		}
		log.Warn("ended a process left by the previous gafferd", "os_pid", v.pid, "job", v.job,
			"found_by", v.foundBy, "result", how)
	}
	return adopt
}

// same reports whether pid still names the leftover v.
func (v leftover) same() bool {
	st, ok := readProcStat(v.pid)
	return ok && st.state != 'Z' && st.startTime == v.startTime
}

func signalLeftovers(vs map[int]leftover, sig syscall.Signal, log *slog.Logger) {
	for _, v := range vs {
		if err := signalChecked(v.pid, sig, func(int) bool { return v.same() }); err != nil && err != syscall.ESRCH {
			log.Error("cannot signal a process left by the previous gafferd", "os_pid", v.pid, "signal", SignalName(sig), "err", err)
		}
	}
}

// waitLeftovers waits until the leftovers are gone (or zombies) or d has
// passed, and returns those still there.
func waitLeftovers(vs map[int]leftover, d time.Duration) map[int]leftover {
	deadline := time.Now().Add(d)
	for {
		left := map[int]leftover{}
		for pid, v := range vs {
			if v.same() {
				left[pid] = v
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		vs = left
		time.Sleep(20 * time.Millisecond)
	}
}

// adoptable returns a Process for a recorded detached process that is
// still the same process, with a pidfd on it; nil otherwise.
func adoptable(e ledgerEntry) *Process {
	check := func() bool {
		st, ok := readProcStat(e.OSPid)
		if !ok || st.state == 'Z' || st.startTime != e.StartTime {
			return false
		}
		inst, id, _, ok := procMarkers(e.OSPid)
		return ok && inst == e.Instance && id == e.MarkerPid
	}
	if !check() {
		return nil
	}
	fd, err := pidfdOpen(e.OSPid)
	if err != nil {
		return nil
	}
	if !check() { // the pid was reused before the pidfd held it
		closeFD(fd)
		return nil
	}
	f := pidFile(fd)
	env, _ := procEnviron(e.OSPid)
	argv := procCmdline(e.OSPid)
	if len(argv) == 0 {
		argv = []string{""}
	}
	created := time.Now()
	if boot, ok := bootTime(); ok {
		created = boot.Add(ticksToDuration(e.StartTime))
	}
	ioDone := make(chan struct{})
	close(ioDone)
	return &Process{OSPid: e.OSPid, Job: e.Job, Cmd: argv[0], Args: argv[1:], Env: env, Created: created,
		lastWall: time.Now(), streams: map[string]*Stream{}, custom: map[string]*os.File{}, ioDone: ioDone,
		exitCh: make(chan struct{}), detach: true, startTicks: e.StartTime, markInst: e.Instance,
		markID: e.MarkerPid, pidfd: -1, adopted: true, pidf: f, graceful: time.Duration(e.GracefulNS)}
}

// offerAdoption hands the manager the detached processes of a previous
// gafferd: each joins its job when the job loads.
func (m *Manager) offerAdoption(procs []*Process) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.adoptable == nil {
		m.adoptable = map[string][]*Process{}
	}
	for _, p := range procs {
		m.adoptable[p.Job] = append(m.adoptable[p.Job], p)
		if p.cg != nil && m.contain.cg != nil {
			m.contain.cg.register(p.cg) // stopped through its cgroup
		}
	}
}

// adoptLocked gives a job that loads the detached processes of a previous
// gafferd that belong to it.
func (m *Manager) adoptLocked(j *job) {
	list := m.adoptable[j.full]
	if len(list) == 0 {
		return
	}
	delete(m.adoptable, j.full)
	for _, p := range list {
		m.nextPID++
		p.ID = m.nextPID
		p.registered = true
		if j.cfg.GracefulTimeout > 0 {
			p.graceful = j.cfg.GracefulTimeout
		}
		m.procs[p.ID] = p
		m.procJob[p.ID] = j
		j.procs = append(j.procs, p)
		m.emit("adopt", j, p, "name", j.full, "pid", p.ID, "os_pid", p.OSPid)
		m.log.Info("adopted a detached process of the previous gafferd", "job", j.full, "pid", p.ID,
			"os_pid", p.OSPid, "cmd", strings.Join(append([]string{p.Cmd}, p.Args...), " "))
		go m.watchAdopted(p, p.pidf)
	}
	m.ledger.changed()
}

// releaseUnclaimed leaves alone the offered processes whose job did not
// load (the configuration dropped it): they keep running, unsupervised.
func (m *Manager) releaseUnclaimed() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for job, list := range m.adoptable {
		for _, p := range list {
			m.log.Warn("a detached process of the previous gafferd belongs to a job that is not loaded; left running, not supervised",
				"job", job, "os_pid", p.OSPid)
			p.pidf.Close()
		}
	}
	m.adoptable = nil
}

// watchAdopted waits for the exit of an adopted process: its pidfd
// becomes readable (through the runtime's poller: no thread is held).
func (m *Manager) watchAdopted(p *Process, f *os.File) {
	first := true
	var err error
	if rc, cerr := f.SyscallConn(); cerr == nil {
		err = rc.Read(func(uintptr) bool {
			if first {
				first = false
				return false // wait for readability
			}
			return true
		})
	} else {
		err = cerr
	}
	if err != nil {
		// Not pollable: look now and then.
		for {
			st, ok := readProcStat(p.OSPid)
			if !ok || st.state == 'Z' || st.startTime != p.startTicks {
				break
			}
			time.Sleep(time.Second)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p.exitStatus = -1 // not our child: the status is not ours to read
	m.markExitedLocked(p)
}
