package gaffer

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"
)

// The escape sweeper stops what a stopped process left outside its
// process group: descendants that called setsid or setpgid (a double
// fork) are not reached by the group signal. They carry the markers of
// the process they descend from (GAFFER_INSTANCE, GAFFER_PID, GAFFER_JOB
// in their environment), which is how the sweeper finds them, by a scan
// of /proc that runs on its own goroutine, never under the Manager's lock.
// A stopped process's descendants get SIGTERM when they are found and
// SIGKILL at the process's graceful deadline; a stopped job's leftovers
// (descendants of processes that exited before) likewise. Each signal
// goes through a pidfd opened on the pid and checked again against the
// markers, so it never reaches a process that reused a pid.
//
// A process that has a cgroup (cgroup_linux.go) is stopped through it
// instead, markers or not: each member of its cgroup outside the leader's
// group gets SIGTERM when found, the cgroup gets cgroup.kill at the
// deadline, and it is removed once empty; the marker scan passes over the
// processes that have a cgroup. A stopped job's leftovers are then the
// cgroups of its processes that exited before and left something behind.
type escapeSweeper struct {
	log    *slog.Logger
	live   func(inst, id string) bool // a running process of the manager: not swept
	leaves *cgRoot                    // the manager's cgroups; nil without

	mu      sync.Mutex
	entries map[escapeKey]*escapeEntry
	running bool
	idle    chan struct{} // closed while there is nothing to sweep
	kick    chan struct{}

	scanning func() // tests: called when a scan begins, after its entries were taken
}

// escapeKey names what an entry sweeps: the descendants of one process
// (id set) or every leftover of a job (id empty).
type escapeKey struct{ inst, id, job string }

type escapeEntry struct {
	leader      int  // the process's OS pid, never swept by the sweeper itself
	group       bool // the group of the leader gets the group signals (not for an adopted process)
	leaderAlive bool
	killAt      time.Time
	termed      map[int]bool
	leaf        *cgLeaf // stopped through its cgroup
	killed      bool    // the cgroup got cgroup.kill
	leavesTaken bool    // a job's entry: takeOrphanLeaves looked at its cgroups
}

// escapeLeafPeriod is how often a cgroup being stopped is looked at.
const escapeLeafPeriod = 100 * time.Millisecond

// useLeaves makes the sweeper stop the processes that have a cgroup of r
// through it (set before any process is spawned).
func (s *escapeSweeper) useLeaves(r *cgRoot) {
	s.mu.Lock()
	s.leaves = r
	s.mu.Unlock()
}

func newEscapeSweeper(log *slog.Logger, live func(inst, id string) bool) *escapeSweeper {
	idle := make(chan struct{})
	close(idle)
	return &escapeSweeper{log: log, live: live, entries: map[escapeKey]*escapeEntry{}, idle: idle,
		kick: make(chan struct{}, 1)}
}

// add sweeps the descendants of the process with markers inst and id
// (OS pid leader) until grace has passed; group says that the members of
// the leader's group are reached by its group signals.
func (s *escapeSweeper) add(inst, id string, leader int, group bool, grace time.Duration) {
	s.mu.Lock()
	leaf := s.leaves.leafOf(inst, id)
	s.mu.Unlock()
	s.put(escapeKey{inst: inst, id: id}, &escapeEntry{leader: leader, group: group, leaderAlive: true,
		killAt: time.Now().Add(grace), termed: map[int]bool{}, leaf: leaf})
}

// addJob sweeps the leftovers of a job that is stopped: the cgroups of
// its processes that exited before, and the processes with its markers.
func (s *escapeSweeper) addJob(inst, job string, grace time.Duration) {
	s.put(escapeKey{inst: inst, job: job}, &escapeEntry{killAt: time.Now().Add(grace), termed: map[int]bool{}})
}

// takeOrphanLeaves gives each stopped job's cgroups that are not being
// stopped and whose process is not live (it exited and left something
// behind) an entry of their own, with the job's deadline. It runs on the
// sweeper's goroutine (live takes the Manager's lock).
func (s *escapeSweeper) takeOrphanLeaves() {
	s.mu.Lock()
	r := s.leaves
	type jobEntry struct {
		k escapeKey
		e *escapeEntry
	}
	var jobs []jobEntry
	for k, e := range s.entries {
		if k.job != "" && e.leaf == nil && !e.leavesTaken {
			e.leavesTaken = true
			jobs = append(jobs, jobEntry{k, e})
		}
	}
	s.mu.Unlock()
	if r == nil {
		return
	}
	for _, j := range jobs {
		for _, l := range r.jobLeaves(j.k.job) {
			if s.live(l.key.inst, l.key.id) {
				continue
			}
			s.mu.Lock()
			if s.entries[l.key] == nil {
				s.entries[l.key] = &escapeEntry{killAt: j.e.killAt, termed: map[int]bool{}, leaf: l}
			}
			s.mu.Unlock()
		}
	}
}

func (s *escapeSweeper) put(k escapeKey, e *escapeEntry) {
	s.mu.Lock()
	if old := s.entries[k]; old != nil && old.killAt.Before(e.killAt) {
		e.killAt = old.killAt
		e.termed = old.termed
		e.killed = old.killed
	}
	s.entries[k] = e
	if !s.running {
		s.running = true
		s.idle = make(chan struct{})
		go s.loop()
	}
	s.mu.Unlock()
	s.poke()
}

// leaderExited says that the process is gone: once no descendant is left
// its entry ends.
func (s *escapeSweeper) leaderExited(inst, id string) {
	s.mu.Lock()
	e := s.entries[escapeKey{inst: inst, id: id}]
	if e != nil {
		e.leaderAlive = false
	}
	s.mu.Unlock()
	if e != nil {
		s.poke()
	}
}

// killNow brings every deadline to now.
func (s *escapeSweeper) killNow() {
	s.mu.Lock()
	now := time.Now()
	for _, e := range s.entries {
		e.killAt = now
	}
	s.mu.Unlock()
	s.poke()
}

// wait waits until there is nothing left to sweep.
func (s *escapeSweeper) wait(ctx context.Context) error {
	for {
		s.mu.Lock()
		idle := s.idle
		s.mu.Unlock()
		select {
		case <-idle:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *escapeSweeper) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// escapeScanPeriod is how often the sweeper looks again while something
// is being stopped.
const escapeScanPeriod = 500 * time.Millisecond

type escapeSignal struct {
	pid int
	key escapeKey
	sig syscall.Signal
}

func (s *escapeSweeper) loop() {
	for {
		s.takeOrphanLeaves()
		s.mu.Lock()
		if len(s.entries) == 0 {
			s.running = false
			close(s.idle)
			s.mu.Unlock()
			return
		}
		keys := make(map[escapeKey]int, len(s.entries)) // key -> leader pid while alive (negative: no group signal)
		leaves := map[escapeKey]*escapeEntry{}
		for k, e := range s.entries {
			if e.leaf != nil {
				leaves[k] = e
				continue
			}
			keys[k] = 0
			if e.leaderAlive {
				keys[k] = e.leader
				if !e.group {
					keys[k] = -e.leader
				}
			}
		}
		s.mu.Unlock()

		if s.scanning != nil {
			s.scanning()
		}
		found := map[escapeKey][]int{}
		if len(keys) > 0 {
			found = s.scan(keys)
		}
		members := s.leafMembers(leaves)
		now := time.Now()
		var sends []escapeSignal
		next := now.Add(escapeScanPeriod)
		s.mu.Lock()
		var kills, gone []*cgLeaf
		for k, e := range s.entries {
			if e.leaf != nil {
				look, seen := members[k]
				pids := look.rest
				switch {
				case !seen: // added since the look
				case look.empty:
					gone = append(gone, e.leaf)
					delete(s.entries, k)
					continue
				case !now.Before(e.killAt) && !e.killed:
					e.killed = true
					kills = append(kills, e.leaf)
				case !e.killed:
					for _, pid := range pids {
						if !e.termed[pid] {
							e.termed[pid] = true
							sends = append(sends, escapeSignal{pid, k, syscall.SIGTERM})
						}
					}
				}
				wake := now.Add(escapeLeafPeriod)
				if e.leaderAlive && !e.killed {
					wake = now.Add(escapeScanPeriod)
				}
				if !e.killed && e.killAt.Before(wake) {
					wake = e.killAt
				}
				if wake.Before(next) {
					next = wake
				}
				continue
			}
			leader, scanned := keys[k]
			if !scanned {
				// Added during the scan: the next scan looks for it (put
				// kicked the loop). Judged on this scan, it would seem to
				// have nothing left.
				continue
			}
			pids := found[k]
			switch {
			case !now.Before(e.killAt):
				for _, pid := range pids {
					sends = append(sends, escapeSignal{pid, k, syscall.SIGKILL})
				}
				delete(s.entries, k)
			case len(pids) == 0 && !e.leaderAlive && leader == 0:
				// Nothing found by a scan that began after the leader was
				// gone. A scan that began while it was alive skipped the
				// members of its group, and one of them may have left the
				// group since (setsid after the group's SIGTERM): it must
				// be looked for again.
				delete(s.entries, k)
			default:
				for _, pid := range pids {
					if !e.termed[pid] {
						e.termed[pid] = true
						sends = append(sends, escapeSignal{pid, k, syscall.SIGTERM})
					}
				}
				if e.killAt.Before(next) {
					next = e.killAt
				}
			}
		}
		s.mu.Unlock()
		for _, l := range kills {
			l.kill()
			s.log.Info("killed what was left of a stopped process's cgroup", "cgroup", l.v2, "job", l.job)
		}
		for _, l := range gone {
			l.remove()
		}
		for _, x := range sends {
			k := x.key
			if e := leaves[k]; e != nil {
				if signalChecked(x.pid, x.sig, e.leaf.holds) == nil {
					s.log.Info("signalled a process of a stopped process's cgroup outside its group", "pid", x.pid,
						"job", e.leaf.job, "of_pid", k.id, "signal", SignalName(x.sig))
				}
				continue
			}
			err := signalChecked(x.pid, x.sig, func(pid int) bool { return k.matches(procMarkers(pid)) })
			if err == nil {
				s.log.Info("signalled a process that escaped its group", "pid", x.pid, "job", k.job,
					"of_pid", k.id, "signal", SignalName(x.sig))
			}
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-s.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// leafLook is what a look at a cgroup being stopped found: whether it is
// empty, and its members that the leader's group signal did not reach
// (the leader and the members of its group excepted).
type leafLook struct {
	empty bool
	rest  []int
}

// leafMembers looks at each cgroup being stopped.
func (s *escapeSweeper) leafMembers(leaves map[escapeKey]*escapeEntry) map[escapeKey]leafLook {
	out := make(map[escapeKey]leafLook, len(leaves))
	s.mu.Lock()
	type look struct {
		k      escapeKey
		l      *cgLeaf
		leader int
		group  bool
	}
	var looks []look
	for k, e := range leaves {
		looks = append(looks, look{k, e.leaf, e.leader, e.group})
	}
	s.mu.Unlock()
	for _, x := range looks {
		pids := x.l.procs()
		if len(pids) == 0 {
			out[x.k] = leafLook{empty: true}
			continue
		}
		var rest []int
		for _, pid := range pids {
			if pid == x.leader {
				continue
			}
			if st, ok := readProcStat(pid); x.group && x.leader > 0 && ok && st.pgid == x.leader {
				continue
			}
			rest = append(rest, pid)
		}
		out[x.k] = leafLook{rest: rest}
	}
	return out
}

func (k escapeKey) matches(inst, id, job string, ok bool) bool {
	if !ok || inst != k.inst {
		return false
	}
	if k.id != "" {
		return id == k.id
	}
	return job == k.job
}

// scan finds the processes that carry the markers of each key: leaders
// and the members of their groups excepted, and for a job, the processes
// the manager still runs.
func (s *escapeSweeper) scan(keys map[escapeKey]int) map[escapeKey][]int {
	insts := map[string]bool{}
	leaders := map[int]bool{} // alive leaders: never swept
	groups := map[int]bool{}  // their groups, when the group signals reach them
	for k, leader := range keys {
		insts[k.inst] = true
		if leader > 0 {
			leaders[leader] = true
			groups[leader] = true
		} else if leader < 0 {
			leaders[-leader] = true
		}
	}
	self := os.Getpid()
	s.mu.Lock()
	leaves := s.leaves
	s.mu.Unlock()
	out := map[escapeKey][]int{}
	for _, pid := range allPids() {
		if pid == self || leaders[pid] {
			continue
		}
		inst, id, job, ok := procMarkers(pid)
		if !ok || !insts[inst] || leaves.leafOf(inst, id) != nil {
			continue // a process in a cgroup is stopped through it
		}
		st, ok := readProcStat(pid)
		if !ok || st.state == 'Z' || groups[st.pgid] {
			// Gone, or in the group of a leader that is alive: the group
			// signal reaches it (a second SIGTERM could mean "now" to it).
			continue
		}
		if _, ok := keys[escapeKey{inst: inst, id: id}]; ok {
			k := escapeKey{inst: inst, id: id}
			out[k] = append(out[k], pid)
			continue
		}
		k := escapeKey{inst: inst, job: job}
		if _, ok := keys[k]; ok && !s.live(inst, id) {
			out[k] = append(out[k], pid)
		}
	}
	return out
}

// signalChecked sends sig to pid if check(pid) holds for the process the
// pid names once a pidfd holds it: a pid reused in between is never hit.
// Without pidfds it checks and signals by pid (a small race remains).
func signalChecked(pid int, sig syscall.Signal, check func(pid int) bool) error {
	fd, err := pidfdOpen(pid)
	if err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return err
		}
		if !check(pid) {
			return syscall.ESRCH
		}
		return signalPid(pid, sig)
	}
	defer closeFD(fd)
	if !check(pid) {
		return syscall.ESRCH
	}
	return pidfdSignal(fd, sig)
}
