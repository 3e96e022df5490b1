package gaffer

// A rolling restart replaces the kept-alive processes of a job one at a
// time, oldest first: a new process is spawned beside them (the job wants
// one more meanwhile), and once it is ready (its ready condition, or its
// spawn without one) one old process is stopped. A new process that
// fails (not ready within ready_timeout, an exit, a spawn error) ends
// the restart there: it is stopped, the old processes that are left keep
// running, and the error says how far it went. A stop, an update, a plain
// restart or flapping of the job interrupts it the same way. At every
// moment the job has at least its number of ready processes, less those
// that were not ready when it started.

import (
	"fmt"
	"time"
)

// RollingRestart restarts a job's processes one at a time, each new one
// ready before an old one stops. It returns once done, with the number
// of processes replaced; on a failure the error says what failed and the
// processes not replaced keep running.
func (m *Manager) RollingRestart(full string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.jobLocked(full)
	if err != nil {
		return 0, err
	}
	if j.state != JobRunning {
		return 0, Errorf(CodeConflict, 409, "job %s is %s: a rolling restart replaces running processes (start it instead)", full, m.jobStateLocked(j))
	}
	if j.lj.rolling {
		return 0, Errorf(CodeConflict, 409, "a rolling restart of %s is already under way", full)
	}
	j.lj.rolling = true
	defer func() { j.lj.rolling = false }()
	gen := j.lj.rollGen
	olds := append([]*Process(nil), j.procs...)
	m.emit("restart", j, nil, "name", j.full, "rolling", true)
	m.log.Info("rolling restart", "job", full, "processes", len(olds))
	done := 0
	fail := func(format string, args ...any) (int, error) {
		if j.lj.rollGen == gen {
			j.lj.surge = 0
		}
		msg := fmt.Sprintf(format, args...)
		m.log.Warn("rolling restart stopped: "+msg, "job", full, "replaced", done, "of", len(olds))
		return done, Errorf(codeRollingFailed, 500, "rolling restart of %s stopped after %d of %d processes: %s; the other processes keep running",
			full, done, len(olds), msg)
	}
	for _, old := range olds {
		if j.lj.rollGen != gen || j.removed || j.state != JobRunning {
			return fail("the job was stopped, updated or restarted meanwhile")
		}
		if !containsProc(j.procs, old) {
			continue // it ended meanwhile and was replaced as usual
		}
		j.lj.surge = 1
		batch := m.manageLocked(j)
		if len(batch) == 0 {
			why := "no process could be spawned"
			if j.lj.waitingFor != "" {
				why = "the job is waiting for " + j.lj.waitingFor
			} else if !j.lj.backoffUntil.IsZero() {
				why = "the job is in backoff until " + j.lj.backoffUntil.Format(time.RFC3339)
			}
			return fail("%s", why)
		}
		r := batch[len(batch)-1]
		r.rolling = true
		m.mu.Unlock()
		err := r.wait()
		m.mu.Lock()
		if err != nil {
			return fail("spawn: %v", err)
		}
		p := m.procs[r.id]
		if p == nil || p.lc == nil {
			return fail("process %d exited at once", r.id)
		}
		lc := p.lc
		m.mu.Unlock()
		select {
		case <-lc.readyCh:
		case <-lc.goneCh:
		}
		m.mu.Lock()
		if !lc.ready || lc.ended {
			if !p.stopping && !p.exited {
				j.lj.surge = 0
				m.stopProcLocked(j, p, 0)
			}
			why := "it exited before it was ready"
			switch {
			case lc.failed == "ready_timeout":
				why = fmt.Sprintf("it was not ready within ready_timeout (%v)", lc.cfg.ReadyTimeout)
			case p.exited:
				why = fmt.Sprintf("it exited before it was ready (exit status %d%s)", p.exitStatus, outputSuffix(sigName(p.termSignal)))
			case lc.failed != "":
				why = lc.failed
			}
			return fail("new process %d: %s", p.ID, why)
		}
		if j.lj.rollGen != gen {
			return fail("the job was stopped, updated or restarted meanwhile")
		}
		j.lj.surge = 0
		lc.rolling = false
		if containsProc(j.procs, old) {
			m.stopProcLocked(j, old, 0)
		}
		done++
	}
	m.manageLocked(j)
	return done, nil
}

// codeRollingFailed is the error code of a rolling restart that stopped.
const codeRollingFailed = "rolling_restart_failed"
