package gaffer

// What follows the end of a kept-alive process that gaffer did not stop
// (an exit, a watchdog abort) or that its lifecycle ended (not ready in
// time, unhealthy): the restart policy (restartpolicy.go) says whether it
// is replaced and after what delay, flapping may stop the job first, the
// jobs that restart with it restart, and an essential job that gives up
// is reported to the Manager's owner.

import (
	"slices"
	"syscall"
	"time"
)

// endedLocked handles the end of process p of job j at now; lifecycle is
// the failure its lifecycle found ("" for a plain exit).
func (m *Manager) endedLocked(j *job, p *Process, now time.Time, lifecycle string) {
	if lifecycle == "" && p.lc != nil {
		lifecycle = p.lc.failed // watchdog
	}
	if p.lc != nil && p.lc.rolling {
		j.lj.surge = 0 // a rolling restart stops here: the old processes stay
	}
	status, sig := p.exitStatus, p.termSignal
	if !p.exited {
		status, sig = 0, 0 // stopped by its lifecycle, still exiting: lifecycle says it failed
	}
	v := j.lj.policy.ended(status, sig, lifecycle, now.Sub(p.Created), restartJitter())
	if !v.failure && !j.lj.completed {
		j.lj.completed = true
		m.depsChangedLocked(j)
	}
	if !v.respawn {
		j.lj.finished++
		if v.failure {
			j.lj.failedRuns++
			m.log.Error("process failed and is not replaced (restart = "+j.lj.policy.mode+")", "job", j.full,
				"pid", p.ID, "exit_status", status, "signal", sigName(sig), "lifecycle", lifecycle)
			m.giveUpLocked(j, "a process failed and restart = "+j.lj.policy.mode)
		}
		if m.wantLocked(j) == 0 && len(j.procs) == 0 && j.lj.failedRuns > 0 {
			m.cancelTimersLocked(j)
			j.state = JobGaveUp
			m.gen++
		}
		m.manageLocked(j)
		return
	}
	j.restarts++
	if j.flap != nil {
		switch j.flap.exit(now, now.Sub(p.Created)) {
		case FlapRetry:
			m.flapLocked(j, true)
			return
		case FlapGiveUp:
			m.flapLocked(j, false)
			return
		}
	}
	m.restartWithLocked(j, nil)
	if v.delay > 0 {
		m.backoffLocked(j, now, v.delay)
		return
	}
	m.manageLocked(j)
}

func sigName(sig int) string {
	if sig == 0 {
		return ""
	}
	return SignalName(syscall.Signal(sig))
}

// backoffLocked holds the job's respawns back for delay (restart_delay):
// its state says backoff, with the time of the next try.
func (m *Manager) backoffLocked(j *job, now time.Time, delay time.Duration) {
	until := now.Add(delay)
	if !j.lj.backoffUntil.IsZero() && !until.After(j.lj.backoffUntil) {
		return // a later try is already set
	}
	if j.lj.backoffTimer != nil {
		j.lj.backoffTimer.Stop()
	}
	j.lj.backoffUntil = until
	m.emit("backoff", j, nil, "name", j.full, "delay", delay.Seconds(), "next_try", until)
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if j.lj.backoffTimer != t {
			return // cancelled by stop, start, update or restart
		}
		j.lj.backoffTimer, j.lj.backoffUntil = nil, time.Time{}
		m.gen++
		m.manageLocked(j)
	})
	j.lj.backoffTimer = t
	m.manageLocked(j) // reaps what must be; spawns wait
}

// giveUpLocked reports a job that gave up (flapping's last retry, or a
// failed run under restart = never): when the job is essential, the
// Manager's owner is told once (Options.EssentialFailed), off the lock.
func (m *Manager) giveUpLocked(j *job, reason string) {
	if !j.cfg.Essential || m.life.essential {
		return
	}
	m.life.essential = true
	m.log.Error("an essential job gave up", "job", j.full, "reason", reason)
	if fn := m.opts.EssentialFailed; fn != nil {
		go fn(j.full, reason)
	}
}

// restartWithLocked restarts the running jobs whose restart_with names j
// (and, in turn, those that restart with them): their processes are
// stopped and replaced once their dependencies hold again.
func (m *Manager) restartWithLocked(j *job, seen map[*job]bool) {
	for _, sid := range m.sessionOrder {
		s := m.sessions[sid]
		for _, n := range s.order {
			d := s.jobs[n]
			if d == j || d.state != JobRunning || seen[d] || !slices.Contains(d.lj.restartWith, j.full) {
				continue
			}
			if seen == nil {
				seen = map[*job]bool{j: true}
			}
			seen[d] = true
			m.log.Info("restarting a job with the job it restarts with", "job", d.full, "restart_with", j.full)
			m.emit("restart", d, nil, "name", d.full, "with", j.full)
			m.cancelTimersLocked(d)
			m.stopAllProcsLocked(d)
			m.manageLocked(d)
			m.restartWithLocked(d, seen)
		}
	}
}
