package gaffer

import (
	"errors"
	"syscall"
	"time"
)

// Spawning runs in three steps, so that nothing slow happens under the
// Manager's lock (PATH and user lookups, pipes, the fork itself):
//
//  1. under the lock, a spawn is reserved: queued on its job (kept-alive
//     processes; manageLocked counts the queue and the spawns in flight,
//     so a scale to N never starts N+1), or taken at once (Commit);
//  2. without the lock, spawnProcess prepares and forks (on the spawner
//     thread, with the reaper's registry locked around the fork, so that
//     an exit that comes before step 3 is not lost: it is recorded on the
//     Process and handled when the process registers);
//  3. under the lock again, registerLocked enters the process in the
//     tables and publishes its spawn. A stop, unload, update or reload
//     that happened in between marked the spawn doomed: the process is
//     stopped right after it registers.

// spawnReq is one reserved spawn.
type spawnReq struct {
	j        *job
	once     bool
	extraEnv map[string]string
	graceful time.Duration
	id       int        // set when the spawn is taken (takeReqLocked)
	spec     *spawnSpec // idem
	doomed   bool       // stop the process as soon as it registers
	life     *procLife  // kept-alive: its lifecycle (lifecycle.go), set when taken
	rolling  bool       // the new process of a rolling restart
	done     chan struct{}
	err      error
}

// errSpawnCancelled ends a queued spawn that a scale-down or a stop
// made unnecessary: not a failure.
var errSpawnCancelled = errors.New("spawn cancelled")

// finish ends the request (Manager's lock held).
func (r *spawnReq) finish(err error) {
	r.err = err
	close(r.done)
}

// wait waits until the spawn registered or failed and returns its error
// (nil for a cancelled spawn or a nil request). Call it without the lock.
func (r *spawnReq) wait() error {
	if r == nil {
		return nil
	}
	<-r.done
	if r.err == errSpawnCancelled {
		return nil
	}
	return r.err
}

// spawnBatch is the spawns one call asked for.
type spawnBatch []*spawnReq

// wait waits for every spawn of the batch (without the lock) and returns
// the first error.
func (b spawnBatch) wait() error {
	var first error
	for _, r := range b {
		if err := r.wait(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// liveInflight counts the kept-alive spawns in flight that will stay.
func (j *job) liveInflight() int {
	n := 0
	for r := range j.inflight {
		if !r.once && !r.doomed {
			n++
		}
	}
	return n
}

// cancelSpawnsLocked drops the job's queued spawns and dooms the ones in
// flight.
func (m *Manager) cancelSpawnsLocked(j *job) {
	for _, r := range j.queue {
		r.finish(errSpawnCancelled)
	}
	j.queue = nil
	for r := range j.inflight {
		r.doomed = true
	}
}

// takeReqLocked gives the spawn its internal pid and a snapshot of what
// it needs from the job, and counts it in flight.
func (m *Manager) takeReqLocked(r *spawnReq) {
	j := r.j
	m.nextPID++
	r.id = m.nextPID
	cfg := j.cfg // Update replaces j.cfg, never changes it in place
	r.spec = &spawnSpec{id: r.id, job: j.full, cfg: &cfg, env: j.env, extraEnv: r.extraEnv, once: r.once,
		instance: m.instance, ringSize: cfg.RingSize, onOutput: m.outputFunc(j), log: m.log}
	m.prepareSpawnLocked(r.spec)
	m.prepareLifeLocked(r)
	j.inflight[r] = true
	m.inflight++
}

// spawnWorker forks the queued spawns of one job, in order, one at a
// time, and ends when the queue is empty.
func (m *Manager) spawnWorker(j *job) {
	for {
		m.mu.Lock()
		if len(j.queue) == 0 {
			j.working = false
			m.mu.Unlock()
			return
		}
		r := j.queue[0]
		j.queue = j.queue[1:]
		m.takeReqLocked(r)
		m.mu.Unlock()
		p, err := m.spawnWithLife(r)
		m.mu.Lock()
		m.registerLocked(r, p, err)
		m.mu.Unlock()
	}
}

// registerLocked ends a spawn: it enters the process in the tables (or
// reports the failure) and applies whatever happened meanwhile.
func (m *Manager) registerLocked(r *spawnReq, p *Process, err error) {
	j := r.j
	delete(j.inflight, r)
	m.inflight--
	defer m.checkAllGoneLocked()
	if err != nil {
		r.finish(err)
		if r.once {
			return
		}
		j.spawnErr = err.Error()
		m.emit("spawn_error", j, nil, "name", j.full, "reason", err.Error())
		m.log.Error("spawn failed", "job", j.full, "err", err)
		// The rest of the queue would fail the same way: the timer
		// tries again later.
		for _, q := range j.queue {
			q.finish(errSpawnCancelled)
		}
		j.queue = nil
		if !r.doomed && j.spawnTimer == nil && !j.removed && !m.shutdown {
			var t *time.Timer
			t = time.AfterFunc(m.opts.SpawnRetryDelay, func() {
				m.mu.Lock()
				defer m.mu.Unlock()
				if j.spawnTimer != t {
					return // cancelled by stop, unload, update, reload or a newer timer
				}
				j.spawnTimer = nil
				m.manageLocked(j)
			})
			j.spawnTimer = t
		}
		return
	}
	p.registered = true
	p.graceful = j.cfg.GracefulTimeout
	if r.once && r.graceful > 0 {
		p.graceful = r.graceful
	}
	m.procs[p.ID] = p
	m.procJob[p.ID] = j
	if r.once {
		j.commits = append(j.commits, p)
	} else {
		j.procs = append(j.procs, p)
		j.spawnErr = ""
	}
	if r.once {
		// A commit's spawn is "spawn" only, as in 0.5.2.
		m.emit("spawn", nil, p, "name", j.full, "pid", p.ID, "os_pid", p.OSPid)
	} else {
		m.emit("spawn", j, p, "name", j.full, "pid", p.ID, "os_pid", p.OSPid)
	}
	m.ledger.changed()
	r.finish(nil)
	m.lifeRegisteredLocked(j, p, r)
	switch {
	case p.exited:
		m.exitedLocked(p) // it exited before it registered
	case r.doomed || m.shutdown || j.removed:
		m.stopProcLocked(j, p, 0)
	case !r.once:
		m.manageLocked(j) // a scale-down may have come meanwhile
	}
}

// onExit is called by the reaper when a child has exited.
func (m *Manager) onExit(p *Process, ws syscall.WaitStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ws.Exited() {
		p.exitStatus = ws.ExitStatus()
	}
	if ws.Signaled() {
		p.termSignal = int(ws.Signal())
	}
	m.markExitedLocked(p)
}

// markExitedLocked records that p has exited and, once it is registered,
// handles it.
func (m *Manager) markExitedLocked(p *Process) {
	if p.exited {
		return
	}
	p.exited = true
	p.exitedAt = time.Now()
	close(p.exitCh)
	if p.registered {
		m.exitedLocked(p)
	}
}

// exitedLocked removes an exited process and restarts what must be.
func (m *Manager) exitedLocked(p *Process) {
	now := p.exitedAt
	if p.stopTimer != nil {
		p.stopTimer.Stop()
	}
	m.closePidfdLocked(p)
	m.esc.leaderExited(p.markInst, p.markID)
	j := m.procJob[p.ID]
	delete(m.procs, p.ID)
	delete(m.stopping, p.ID)
	delete(m.procJob, p.ID)
	delete(m.released, p.ID)
	if p.stdin != nil {
		p.stdin.Close()
	}
	m.lifeExitedLocked(p)
	m.ledger.changed()
	defer m.checkAllGoneLocked()
	defer m.releaseStopsLocked() // a stop that waited for this one's job (depends.go)
	if j == nil || p.released {
		return
	}
	status := p.exitStatus
	j.lastExit = &status
	j.lastExitRec = &ExitRecord{PID: p.ID, OSPid: p.OSPid, ExitStatus: p.exitStatus, TermSignal: p.termSignal,
		Time: now, Uptime: now.Sub(p.Created).Seconds()}
	if p.termSignal != 0 {
		j.lastExitRec.Signal = SignalName(syscall.Signal(p.termSignal))
	}
	payload := []any{"name", j.full, "pid", p.ID, "os_pid", p.OSPid, "exit_status", p.exitStatus,
		"exit_code", p.exitStatus, "term_signal", p.termSignal, "once", p.Once}
	m.emit("exit", j, p, payload...)
	wasKept := !p.Once && containsProc(j.procs, p)
	j.procs = removeProc(j.procs, p)
	j.commits = removeProc(j.commits, p)
	if j.removed || m.shutdown || j.state != JobRunning || p.Once {
		return
	}
	if wasKept {
		m.logUnexpectedExit(j, p, now)
	}
	if !wasKept {
		// Deliberately stopped (stop_process, stopall, reap): not a crash.
		m.manageLocked(j)
		return
	}
	m.endedLocked(j, p, now, "") // the restart policy, flapping, backoff (respawn.go)
}

// logUnexpectedExit writes the WARN line an operator looks for when a
// kept-alive process died on its own (supervisord's "exited: web
// (terminated by SIGKILL; not expected)").
func (m *Manager) logUnexpectedExit(j *job, p *Process, now time.Time) {
	how := []any{"exit_status", p.exitStatus}
	if p.termSignal != 0 {
		how = []any{"signal", SignalName(syscall.Signal(p.termSignal))}
	}
	args := append([]any{"job", j.full, "pid", p.ID, "os_pid", p.OSPid}, how...)
	args = append(args, "uptime", now.Sub(p.Created).Round(time.Millisecond).String())
	m.log.Warn("process exited unexpectedly", args...)
}

func (m *Manager) closePidfdLocked(p *Process) {
	if p.pidf != nil {
		p.pidf.Close()
		p.pidf = nil
	}
	if p.pidfd >= 0 {
		closeFD(p.pidfd)
		p.pidfd = -1
	}
}

// checkAllGoneLocked closes allGone once a shutdown left nothing running,
// stopping or forking.
func (m *Manager) checkAllGoneLocked() {
	if m.shutdown && m.allGone != nil && len(m.procs) == 0 && len(m.stopping) == 0 && m.inflight == 0 {
		select {
		case <-m.allGone:
		default:
			close(m.allGone)
		}
	}
}

func removeProc(list []*Process, p *Process) []*Process {
	for i, q := range list {
		if q == p {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

func containsProc(list []*Process, p *Process) bool {
	for _, q := range list {
		if q == p {
			return true
		}
	}
	return false
}
