package gaffer

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Signals never reach a pid that the reaper already freed (and that may
// belong to an unrelated process by now):
//
//   - to the process alone, through its pidfd (pidfd_send_signal, Linux
//     5.3+): the kernel ties it to that process, ESRCH once it is reaped.
//     Without pidfds, kill(pid) runs under the reaper's registry lock
//     after checking that the pid is still a registered, unreaped child
//     (reaper.ifUnreaped).
//   - to its process group (kill(-pgid)): no pidfd names a group, so the
//     signal is sent only under the reaper's registry lock and only while
//     the leader is a registered, unreaped child. wait4 takes that lock,
//     and a pid (so the group id named after it) is freed only by that
//     wait4, so the group id cannot be reused while the signal is sent.
//     Once the leader is reaped, what is left of its group is found by
//     its markers (escape.go), signalled through pidfds.
//
// All of this runs under the Manager's lock (a few system calls, nothing
// that blocks); the lock order is Manager.mu, then the reaper's.

// codeSignalFailed is the error code of a signal the kernel refused.
const codeSignalFailed = "signal_failed"

func signalError(p *Process, sig syscall.Signal, err error) error {
	status := 500
	if errors.Is(err, syscall.EPERM) {
		status = 403
	} else if errors.Is(err, syscall.EINVAL) {
		status = 400
	}
	return Errorf(codeSignalFailed, status, "cannot send %s to process %d (os pid %d): %v",
		SignalName(sig), p.ID, p.OSPid, err)
}

// joinSignalErrors makes one *Error of the signal errors of a stop.
func joinSignalErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	first := AsError(errs[0])
	return Errorf(first.Code, first.Errno, "%v (and %d more)", first.Reason, len(errs)-1)
}

// signalLeaderLocked sends sig to the process alone. A process that is
// already gone is not an error.
func (m *Manager) signalLeaderLocked(p *Process, sig syscall.Signal) error {
	var err error
	switch {
	case p.exited:
		return nil
	case p.pidf != nil:
		rc, cerr := p.pidf.SyscallConn()
		if cerr != nil {
			return nil // closed: gone
		}
		rc.Control(func(fd uintptr) { err = pidfdSignal(int(fd), sig) })
	case p.pidfd >= 0:
		err = pidfdSignal(p.pidfd, sig)
	case p.adopted:
		return nil // adopted only with a pidfd
	default:
		theReaper.ifUnreaped(p.OSPid, func() { err = signalPid(p.OSPid, sig) })
	}
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	if err != nil {
		return signalError(p, sig, err)
	}
	return nil
}

// signalGroupLocked sends sig to the process group of p (its own, made at
// spawn), or to p alone when it left its group.
func (m *Manager) signalGroupLocked(p *Process, sig syscall.Signal) error {
	if p.exited {
		return nil
	}
	if sig == syscall.SIGKILL && p.cg != nil {
		p.cg.kill() // the whole tree, wherever it went (cgroup_linux.go)
	}
	if p.adopted {
		// Not our child: its group is reached by its markers (escape.go).
		return m.signalLeaderLocked(p, sig)
	}
	var err error
	if !theReaper.ifUnreaped(p.OSPid, func() { err = signalPid(-p.OSPid, sig) }) {
		return nil // reaped: its exit is on its way to onExit
	}
	if errors.Is(err, syscall.ESRCH) {
		return m.signalLeaderLocked(p, sig) // it left its group
	}
	if err != nil {
		return signalError(p, sig, err)
	}
	return nil
}

// stopProcLocked removes p from its job's lists and from the running
// list, publishes stop_process (and its documented name, stop_pid),
// sends SIGTERM to its process group and arms the SIGKILL timer; its
// escaped descendants are handled by the sweeper. A graceful timeout of
// 0 means the process's own.
func (m *Manager) stopProcLocked(j *job, p *Process, graceful time.Duration) error {
	j.procs = removeProc(j.procs, p)
	j.commits = removeProc(j.commits, p)
	if p.stopping || p.exited {
		return nil
	}
	p.stopping = true
	m.lifeStoppingLocked(p)
	delete(m.procs, p.ID)
	m.stopping[p.ID] = p
	m.emit("stop_process", j, p, "name", j.full, "pid", p.ID, "os_pid", p.OSPid)
	if graceful <= 0 {
		graceful = p.graceful
	}
	leader := p.OSPid
	m.esc.add(p.markInst, p.markID, leader, !p.adopted, graceful)
	if graceful <= 0 {
		return m.signalGroupLocked(p, syscall.SIGKILL)
	}
	err := m.signalGroupLocked(p, syscall.SIGTERM)
	p.stopTimer = time.AfterFunc(graceful, func() { m.killStopping(p) })
	return err
}

// killStopping is the graceful timer: SIGKILL to whatever is left of the
// process and its group (the escaped descendants get theirs from the
// sweeper at the same deadline).
func (m *Manager) killStopping(p *Process) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.signalGroupLocked(p, syscall.SIGKILL); err != nil {
		m.log.Error("cannot kill a process after its graceful timeout", "job", p.Job, "pid", p.ID, "err", err)
	}
}

// StopProcess stops one process (SIGTERM, SIGKILL after its graceful
// timeout). It leaves the running list at once (it is "stopping" until
// it exits) and a kept-alive process is replaced at once: StopProcess
// returns once the replacement is spawned.
func (m *Manager) StopProcess(pid int) error {
	m.mu.Lock()
	p, ok := m.procs[pid]
	if !ok {
		m.mu.Unlock()
		return errNotFound("process %d not found", pid)
	}
	j := m.procJob[pid]
	err := m.stopProcLocked(j, p, 0)
	batch := m.manageLocked(j)
	m.mu.Unlock()
	batch.wait() // the replacement is listed when this returns
	return err
}

// Kill sends sig to one process and publishes proc.<pid>.kill. A signal
// the kernel refuses is an error.
func (m *Manager) Kill(pid int, sig syscall.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.procs[pid]
	if !ok {
		return errNotFound("process %d not found", pid)
	}
	if err := m.signalLeaderLocked(p, sig); err != nil {
		return err
	}
	m.emit("kill", nil, p, "name", p.Job, "pid", pid, "signum", int(sig))
	return nil
}

// KillAll sends sig to every process of the job, committed ones included.
// The processes the kernel refused are reported in the error; the others
// got the signal.
func (m *Manager) KillAll(full string, sig syscall.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.jobLocked(full)
	if err != nil {
		return err
	}
	var errs []error
	m.emit("kill", j, nil, "name", j.full, "signum", int(sig))
	for _, p := range append(append([]*Process(nil), j.procs...), j.commits...) {
		if err := m.signalLeaderLocked(p, sig); err != nil {
			errs = append(errs, err)
			continue
		}
		m.emit("kill", nil, p, "name", j.full, "pid", p.ID, "signum", int(sig))
	}
	return joinSignalErrors(errs)
}

// Shutdown stops every job (detached processes are left running) and
// waits until every process and every escaped descendant is gone or ctx
// ends (then they get SIGKILL). New loads are refused from then on. Every
// caller waits for the same end.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	if !m.shutdown {
		m.shutdown = true
		m.allGone = make(chan struct{})
		for _, sid := range m.sessionOrder {
			s := m.sessions[sid]
			for _, n := range s.order {
				m.shutdownJobLocked(s.jobs[n])
			}
		}
		m.checkAllGoneLocked()
	}
	wait := m.allGone
	m.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
		m.forceStop()
		return ctx.Err()
	}
	if err := m.esc.wait(ctx); err != nil {
		m.esc.killNow()
		return err
	}
	m.closeNotifyDir()
	m.ledger.changed()
	return nil
}

func (m *Manager) shutdownJobLocked(j *job) {
	m.cancelTimersLocked(j)
	j.state = JobStopped
	m.emit("stop", j, nil, "name", j.full)
	m.cancelSpawnsLocked(j)
	if m.deferStopLocked(j) {
		return // its dependents exit first (depends.go)
	}
	m.shutdownProcsLocked(j)
}

// shutdownProcsLocked stops the processes of a job at shutdown.
func (m *Manager) shutdownProcsLocked(j *job) {
	for _, p := range append(append([]*Process(nil), j.procs...), j.commits...) {
		if p.detach {
			// Detached processes outlive gafferd (reference §15 #40).
			p.released = true
			delete(m.procs, p.ID)
			delete(m.procJob, p.ID)
			m.released[p.ID] = p
			continue
		}
		m.stopProcLocked(j, p, 0)
	}
	j.procs, j.commits = nil, nil
	m.esc.addJob(m.instance, j.full, j.cfg.GracefulTimeout)
}

// forceStop sends SIGKILL to every process group that is running or
// stopping (detached processes left running by Shutdown excepted) and to
// every escaped descendant being stopped: a second stop signal to
// gafferd does this.
func (m *Manager) forceStop() {
	m.mu.Lock()
	for _, set := range []map[int]*Process{m.procs, m.stopping} {
		for _, p := range set {
			if err := m.signalGroupLocked(p, syscall.SIGKILL); err != nil {
				m.log.Error("cannot kill a process", "job", p.Job, "pid", p.ID, "err", err)
			}
		}
	}
	m.mu.Unlock()
	m.esc.killNow()
}

// isLiveMarker reports whether the process with these markers is one of
// this manager's processes that is running, being spawned, or detached
// and left running (not one to sweep).
func (m *Manager) isLiveMarker(inst, id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, set := range []map[int]*Process{m.procs, m.released} {
		for _, p := range set {
			if p.markInst == inst && p.markID == id {
				return true
			}
		}
	}
	if inst != m.instance {
		return false
	}
	var n int
	if _, err := fmt.Sscan(id, &n); err != nil {
		return false
	}
	for _, s := range m.sessions {
		for _, j := range s.jobs {
			for r := range j.inflight {
				if r.id == n {
					return true
				}
			}
		}
	}
	return false
}
