package gaffer

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
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

// spawnLocked runs fork (a function that starts a child and returns its
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

type reaped struct {
	fn func(syscall.WaitStatus)
	ws syscall.WaitStatus
}

// reap collects every exit available now and calls the waiters outside
// the lock.
func (r *reaper) reap() {
	var done []reaped
	r.mu.Lock()
	if r.all {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err == syscall.EINTR {
				continue
			}
			if pid <= 0 || err != nil {
				break
			}
			if !ws.Exited() && !ws.Signaled() {
				continue // stopped or continued: not an exit
			}
			if fn, ok := r.waiters[pid]; ok {
				delete(r.waiters, pid)
				done = append(done, reaped{fn, ws})
			}
		}
	} else {
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
	}
	r.mu.Unlock()
	for _, d := range done {
		d.fn(d.ws)
	}
}
