package gaffer

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// The reaper is process-wide: SIGCHLD and wait4 concern every child of the
// OS process, whatever Manager spawned it. One goroutine waits for SIGCHLD
// and collects every exit with wait4(WNOHANG); no thread ever blocks in
// wait for one child.
//
// Two modes:
//   - known children only (the default for embedders): wait4(pid) on each
//     registered pid, so children started elsewhere in the program (say by
//     os/exec) keep their exit status;
//   - every child (ReapAll, which gafferd turns on with the subreaper flag):
//     wait4(-1), so that orphaned grandchildren adopted by gafferd never
//     stay zombies.
type reaper struct {
	mu      sync.Mutex
	started bool
	all     bool
	waiters map[int]func(syscall.WaitStatus)
	kick    chan struct{}
	sweep   *time.Timer
	zombies map[int]bool // unknown zombies seen at the last sweep
	calling int          // exits reaped whose waiters have not returned yet
}

var theReaper = &reaper{waiters: map[int]func(syscall.WaitStatus){}, kick: make(chan struct{}, 1)}

// SetReapAll makes the reaper collect every child of this OS process, not
// only the ones a Manager spawned. gafferd sets it together with the child
// subreaper flag; an embedder that also uses os/exec must leave it off.
func SetReapAll(all bool) {
	theReaper.mu.Lock()
	theReaper.all = all
	theReaper.mu.Unlock()
}

// spawn runs fork (a function that starts a child and returns its
// pid) and registers onExit for the pid, with the registry locked so that
// an exit reaped in between cannot be lost.
func (r *reaper) spawn(fork func() (int, error), onExit func(syscall.WaitStatus)) (int, error) {
	r.mu.Lock()
	if !r.started {
		r.started = true
		c := make(chan os.Signal, 64)
		signal.Notify(c, syscall.SIGCHLD)
		go r.loop(c)
	}
	pid, err := fork()
	if err == nil {
		r.waiters[pid] = onExit
	}
	r.mu.Unlock()
	if err == nil {
		// The child may have exited before it was registered and its
		// SIGCHLD been consumed already: look once more.
		r.poke()
	}
	return pid, err
}

// ifUnreaped runs fn, with the registry locked, if pid is a registered
// child that has not been reaped: while it runs, the pid (and the process
// group named after it) cannot be freed and reused, since freeing it
// takes the wait4 that needs this lock. It reports whether fn ran. (The
// one hole is a wait4(-1) elsewhere in the program, outside this reaper,
// that reaps a registered child: reapKnown then finds ECHILD, and until
// it does the pid is registered but may be free.)
func (r *reaper) ifUnreaped(pid int, fn func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.waiters[pid]; !ok {
		return false
	}
	fn()
	return true
}

func (r *reaper) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *reaper) loop(sig chan os.Signal) {
	for {
		select {
		case <-sig:
		case <-r.kick:
		}
		r.reap()
	}
}

// reapPeeking collects the exits of registered children in the order the
// kernel has them, looking at each zombie before reaping it (WNOWAIT), and
// stops at the first zombie that is not ours: that one may belong to
// os/exec (whose Wait must get it) or be an adopted orphan, which
// sweepOrphans reaps once it has stayed a zombie for a while.
// blocked reports whether it stopped at a zombie it could not take (or
// could not peek at all), so that reapKnown must look further.
func (r *reaper) reapPeeking(done []reaped) (_ []reaped, blocked bool) {
	for {
		pid, ok := peekZombie()
		if !ok {
			return done, !peekSupported
		}
		fn, known := r.waiters[pid]
		if !known {
			r.armSweep()
			return done, true
		}
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if got != pid {
			return done, true
		}
		if ws.Exited() || ws.Signaled() {
			delete(r.waiters, pid)
			done = append(done, reaped{fn, ws})
		}
	}
}

// reapKnown tries every registered pid: the way past a zombie that is
// not ours, and the whole mechanism where peeking is not available.
func (r *reaper) reapKnown(done []reaped) []reaped {
	for pid, fn := range r.waiters {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if err == syscall.ECHILD {
			delete(r.waiters, pid) // reaped by someone else: report a lost status
			done = append(done, reaped{fn, syscall.WaitStatus(255 << 8)})
			continue
		}
		if got == pid && (ws.Exited() || ws.Signaled()) {
			delete(r.waiters, pid)
			done = append(done, reaped{fn, ws})
		}
	}
	return done
}

// orphanGrace is how long a zombie that no Manager spawned is left for its
// real waiter (os/exec) before the reaper takes it.
const orphanGrace = time.Second

// armSweep schedules sweepOrphans (r.mu held).
func (r *reaper) armSweep() {
	if r.sweep == nil {
		r.sweep = time.AfterFunc(orphanGrace, r.sweepOrphans)
	}
}

// sweepOrphans reaps the zombies among our children that no Manager
// spawned and that were already zombies at the previous sweep.
func (r *reaper) sweepOrphans() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweep = nil
	seen := r.zombies
	r.zombies = map[int]bool{}
	pending := false
	for _, pid := range ownChildren() {
		if _, known := r.waiters[pid]; known || !isZombie(pid) {
			continue
		}
		if seen[pid] {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			continue
		}
		r.zombies[pid] = true
		pending = true
	}
	if pending {
		r.armSweep()
	}
	r.poke() // registered exits may be queued behind the orphan
}

type reaped struct {
	fn func(syscall.WaitStatus)
	ws syscall.WaitStatus
}

// reap collects every exit available now and calls the waiters outside
// the lock.
func (r *reaper) reap() {
	var done []reaped
	r.mu.Lock()
	blocked := true
	if r.all {
		done, blocked = r.reapPeeking(done)
	}
	if blocked {
		done = r.reapKnown(done)
	}
	r.calling += len(done) // an upgrade waits until they are handled
	r.mu.Unlock()
	for _, d := range done {
		d.fn(d.ws)
	}
	if len(done) > 0 {
		r.mu.Lock()
		r.calling -= len(done)
		r.mu.Unlock()
	}
}
