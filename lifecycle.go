package gaffer

// The lifecycle of a kept-alive process between its spawn and its exit,
// and what a job does with it: a process is starting until its ready
// condition holds (probe.go, notify.go, logwatch.go), then ready; it is
// checked for health (health.go); its job waits for its dependencies
// (depends.go) and, after an exit, respawns as its restart policy says
// (respawn.go, restartpolicy.go); a rolling restart replaces its
// processes one at a time (rolling.go).
//
// The manager's files call in at a few places, each under the Manager's
// lock: prepareLifeLocked when a spawn is taken, spawnWithLife around the
// fork (the NOTIFY_SOCKET is bound before it), lifeRegisteredLocked once
// the process is in the tables, lifeStoppingLocked when it is stopped,
// lifeExitedLocked when it exited, wantLocked and maySpawnLocked in
// manageLocked, and the job-level resets. Everything here is timers and
// short goroutines: no thread waits for a process.
//
// Commits (one-off processes) have no lifecycle: they are ready when
// spawned and never checked.

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process states (ProcessInfo.State).
const (
	procStarting  = "starting"  // its ready condition does not hold yet
	procReady     = "ready"     // its ready condition held
	procRunning   = "running"   // no ready condition: ready once spawned
	procReloading = "reloading" // RELOADING=1, until READY=1
	procUnhealthy = "unhealthy" // failed health_retries checks in a row
	procStopping  = "stopping"
)

// Job states reported by JobInfo.State besides those of manager.go: a
// running job reports what holds it back or how far it is.
const (
	jobWaiting   = "waiting"   // its dependencies do not hold (waiting_for says which)
	jobBackoff   = "backoff"   // waiting restart_delay before a respawn (next_try)
	jobUnhealthy = "unhealthy" // one of its processes is unhealthy
	jobStarting  = "starting"  // with a ready setting: not every process is ready
	jobReady     = "ready"     // with a ready setting: every process is ready
	jobCompleted = "completed" // every process exited for good with a success
)

// Health states (ProcessInfo.Health; "" without a health setting).
const (
	healthStarting  = "starting" // no check answered yet
	healthHealthy   = "healthy"
	healthFailing   = "failing" // failed checks, fewer than health_retries in a row
	healthUnhealthy = "unhealthy"
)

// procLife is the lifecycle state of one kept-alive process. Guarded by
// the Manager's mutex, except logw (its own).
type procLife struct {
	cfg       *JobConfig // the job's config at spawn
	readySpec *probeSpec // nil: ready when spawned
	health    *probeSpec // nil: no health check

	ready       bool
	readyAt     time.Time
	reloading   bool
	selfStop    bool // STOPPING=1
	status      string
	errno       int
	mainPID     int
	healthState string
	healthFails int
	healthMsg   string
	failed      string // why the lifecycle ended it: ready_timeout, unhealthy, watchdog
	rolling     bool   // the new process of a rolling restart

	readyProbe, healthProbe *probeRun
	readyTimer              *time.Timer
	readyDeadline           time.Time
	watchdog                time.Duration
	watchdogTimer           *time.Timer
	abortTimer              *time.Timer
	notify                  *notifySock
	logw                    *logWatch
	refused                 int // notify messages refused (sender outside the process)

	readyCh chan struct{} // closed once ready
	goneCh  chan struct{} // closed once stopped or exited
	ended   bool
}

// jobLife is the lifecycle state of one job.
type jobLife struct {
	deps         []resolvedDep // depends_on, resolved at load
	restartWith  []string      // full names
	waitingFor   string        // the dependency that holds it back, "" none
	policy       restartPolicy
	backoffUntil time.Time
	backoffTimer *time.Timer
	finished     int  // slots whose process ended for good (restart on-failure or never)
	failedRuns   int  // of those, the ones that failed
	completed    bool // a process exited with a success since the last start
	surge        int  // extra process of a rolling restart
	rolling      bool
	rollGen      int  // bumped by what interrupts a rolling restart
	stopPending  bool // stopped, its processes wait for their dependents to exit (depends.go)
}

// managerLife is the Manager's lifecycle state.
type managerLife struct {
	dirMu     sync.Mutex
	notifyDir string // private directory of the NOTIFY_SOCKETs, made at first use
	essential bool   // EssentialFailed was called
	pending   []*job // stopped jobs whose processes wait for their dependents (depends.go)
}

// prepareLifeLocked gives a kept-alive spawn its lifecycle (takeReqLocked).
func (m *Manager) prepareLifeLocked(r *spawnReq) {
	if r.once {
		return
	}
	cfg := r.spec.cfg
	lc := &procLife{cfg: cfg, readyCh: make(chan struct{}), goneCh: make(chan struct{}), watchdog: cfg.Watchdog,
		rolling: r.rolling}
	lc.readySpec, _ = parseProbe("ready", cfg.Ready, true) // checked at load
	lc.health, _ = parseProbe("health", cfg.Health, false)
	if lc.readySpec != nil && lc.readySpec.kind == probeLog {
		lc.logw = newLogWatch(lc.readySpec.re)
		r.spec.onOutput = lc.logw.wrap(r.spec.onOutput)
	}
	r.life = lc
}

// needsNotify says whether the process gets a NOTIFY_SOCKET.
func (lc *procLife) needsNotify() bool {
	return lc.watchdog > 0 || lc.readySpec != nil && lc.readySpec.kind == probeNotify
}

// spawnWithLife forks r's process (without the Manager's lock), with its
// NOTIFY_SOCKET bound first when it needs one.
func (m *Manager) spawnWithLife(r *spawnReq) (*Process, error) {
	lc := r.life
	if lc != nil && lc.needsNotify() {
		if err := m.openNotify(r); err != nil {
			return nil, Errorf(CodeSpawnFailed, 500, "%s: %v", r.spec.cfg.Name, err)
		}
	}
	p, err := spawnProcess(r.spec, m.onExit)
	if err != nil && lc != nil && lc.notify != nil {
		lc.notify.close()
		lc.notify = nil
	}
	return p, err
}

// openNotify binds the NOTIFY_SOCKET of a spawn and adds it (and
// WATCHDOG_USEC, WATCHDOG_PID) to the spawn's environment. Called without the
// Manager's lock: it touches only this spawn, not yet in the tables.
func (m *Manager) openNotify(r *spawnReq) error {
	dir, err := m.notifyDirPath()
	if err != nil {
		return err
	}
	uid, gid, err := resolveIDs(r.spec.cfg)
	if err != nil {
		return err
	}
	s, err := openNotifySocket(filepath.Join(dir, strconv.Itoa(r.id)), uid, gid)
	if err != nil {
		return err
	}
	r.life.notify = s
	env := make(map[string]string, len(r.spec.extraEnv)+2)
	for k, v := range r.spec.extraEnv {
		env[k] = v
	}
	env["NOTIFY_SOCKET"] = s.path
	if r.life.watchdog > 0 {
		env["WATCHDOG_USEC"] = strconv.FormatInt(r.life.watchdog.Microseconds(), 10)
		r.spec.watchdogPID = shimSupported // WATCHDOG_PID: set by the shim in the child
	}
	r.spec.extraEnv = env
	return nil
}

// notifyDirPath makes (once) the private directory of the sockets: 0711,
// so that a job running as another user reaches its own socket (0600, its
// own) without listing the others.
func (m *Manager) notifyDirPath() (string, error) {
	m.life.dirMu.Lock()
	defer m.life.dirMu.Unlock()
	if m.life.notifyDir != "" {
		return m.life.notifyDir, nil
	}
	base := os.TempDir()
	if len(base) > 60 {
		base = "/tmp" // a unix socket path is at most 107 bytes
	}
	removeStaleNotifyDirs(base)
	dir, err := os.MkdirTemp(base, "gaffer-notify-"+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	m.life.notifyDir = dir
	return dir, nil
}

// removeStaleNotifyDirs removes the socket directories that a gafferd
// killed with SIGKILL left in base: those named after a pid that is gone.
func removeStaleNotifyDirs(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, "gaffer-notify-*-*"))
	for _, d := range dirs {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), "gaffer-notify-"), "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			os.RemoveAll(d)
		}
	}
}

// closeNotifyDir removes the sockets' directory (Shutdown, once every
// process is gone).
func (m *Manager) closeNotifyDir() {
	m.life.dirMu.Lock()
	defer m.life.dirMu.Unlock()
	if m.life.notifyDir != "" {
		os.RemoveAll(m.life.notifyDir)
		m.life.notifyDir = ""
	}
}

// lifeRegisteredLocked starts the lifecycle of a process that just
// entered the tables (registerLocked).
func (m *Manager) lifeRegisteredLocked(j *job, p *Process, r *spawnReq) {
	lc := r.life
	if lc == nil {
		return
	}
	p.lc = lc
	if lc.notify != nil {
		go m.readNotify(p, lc.notify)
	}
	if p.exited || r.doomed || m.shutdown || j.removed {
		return // stopped or handled right after this
	}
	switch {
	case lc.readySpec == nil:
		m.readyLocked(j, p, "")
		m.depsChangedLocked(j)
		return
	case lc.readySpec.kind == probeLog:
		if lc.logw.attach(func() { m.logReady(p) }) {
			m.readyLocked(j, p, "log")
			m.depsChangedLocked(j)
			return
		}
	case lc.readySpec.kind == probeTCP || lc.readySpec.kind == probeHTTP || lc.readySpec.kind == probeExec:
		lc.readyProbe = &probeRun{spec: lc.readySpec}
		m.scheduleProbeLocked(p, lc.readyProbe, readyFirstTry, lc.cfg.HealthTimeout, m.readyProbeResult)
	}
	if t := lc.cfg.ReadyTimeout; t > 0 {
		lc.readyDeadline = time.Now().Add(t)
		lc.readyTimer = time.AfterFunc(t, func() { m.readyTimedOut(p) })
	}
	m.depsChangedLocked(j) // "started" holds now
}

// Readiness probes are tried again and again until one succeeds: first
// soon after the spawn, then at a doubling interval up to readyMaxRetry.
const (
	readyFirstTry = 10 * time.Millisecond
	readyMaxRetry = 500 * time.Millisecond
)

// readyProbeResult is the answer of one readiness probe.
func (m *Manager) readyProbeResult(p *Process, pr *probeRun, err error) {
	j := m.procJob[p.ID]
	if j == nil || p.lc.ready {
		return
	}
	if err == nil {
		m.readyLocked(j, p, pr.spec.String())
		m.depsChangedLocked(j)
		return
	}
	next := min(max(pr.last*2, readyFirstTry), readyMaxRetry)
	m.scheduleProbeLocked(p, pr, next, p.lc.cfg.HealthTimeout, m.readyProbeResult)
}

// logReady is the log watcher's match (from the pipe's reader).
func (m *Manager) logReady(p *Process) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if j := m.procJob[p.ID]; j != nil && p.lc != nil && !p.lc.ready && !p.stopping {
		m.readyLocked(j, p, "log")
		m.depsChangedLocked(j)
	}
}

// readyLocked marks a process ready: the ready event (for a job with a
// ready setting), the watchdog and the health checks start.
func (m *Manager) readyLocked(j *job, p *Process, how string) {
	lc := p.lc
	if lc.ready || lc.ended {
		return
	}
	lc.ready, lc.readyAt = true, time.Now()
	lc.readyProbe.stop()
	lc.readyProbe = nil
	if lc.readyTimer != nil {
		lc.readyTimer.Stop()
		lc.readyTimer = nil
	}
	if lc.logw != nil {
		lc.logw.detach()
	}
	close(lc.readyCh)
	if how != "" {
		m.emit("ready", j, p, "name", j.full, "pid", p.ID, "os_pid", p.OSPid, "by", how,
			"after", lc.readyAt.Sub(p.Created).Seconds())
	} else {
		m.gen++
	}
	if lc.watchdog > 0 && lc.watchdogTimer == nil {
		m.armWatchdogLocked(p)
	}
	if lc.health != nil {
		lc.healthState = healthStarting
		lc.healthProbe = &probeRun{spec: lc.health}
		m.scheduleProbeLocked(p, lc.healthProbe, 0, lc.cfg.HealthTimeout, m.healthResult)
	}
}

// readyTimedOut is the ready_timeout timer: a process not ready by then
// is stopped, a failed start.
func (m *Manager) readyTimedOut(p *Process) {
	m.mu.Lock()
	defer m.mu.Unlock()
	lc := p.lc
	j := m.procJob[p.ID]
	if j == nil || lc.ready || lc.ended || p.stopping {
		return
	}
	if d := time.Until(lc.readyDeadline); d > 0 { // EXTEND_TIMEOUT_USEC moved it
		lc.readyTimer = time.AfterFunc(d, func() { m.readyTimedOut(p) })
		return
	}
	m.log.Warn("process not ready within ready_timeout; stopping it (a failed start)", "job", j.full, "pid", p.ID,
		"os_pid", p.OSPid, "ready", lc.readySpec.String(), "ready_timeout", lc.cfg.ReadyTimeout)
	m.emit("ready_timeout", j, p, "name", j.full, "pid", p.ID, "os_pid", p.OSPid, "ready", lc.readySpec.String())
	m.lifeFailLocked(j, p, "ready_timeout")
}

// lifeFailLocked ends a process that the lifecycle found failing (not
// ready in time, unhealthy): it is stopped (SIGTERM, graceful_timeout,
// SIGKILL), counted as a failed run, and replaced as the restart policy
// says.
func (m *Manager) lifeFailLocked(j *job, p *Process, why string) {
	p.lc.failed = why
	m.stopProcLocked(j, p, 0)
	m.endedLocked(j, p, time.Now(), why)
}

// lifeStoppingLocked ends the checks of a process that is being stopped
// (stopProcLocked): its probes and timers stop; its notify socket stays
// open until it exits (STATUS= of a stopping service).
func (m *Manager) lifeStoppingLocked(p *Process) {
	lc := p.lc
	if lc == nil || lc.ended {
		return
	}
	lc.ended = true
	lc.readyProbe.stop()
	lc.healthProbe.stop()
	for _, t := range []*time.Timer{lc.readyTimer, lc.watchdogTimer} {
		if t != nil {
			t.Stop()
		}
	}
	if lc.logw != nil {
		lc.logw.detach()
	}
	close(lc.goneCh)
}

// lifeExitedLocked ends the lifecycle of a process that exited.
func (m *Manager) lifeExitedLocked(p *Process) {
	lc := p.lc
	if lc == nil {
		return
	}
	m.lifeStoppingLocked(p)
	if lc.abortTimer != nil {
		lc.abortTimer.Stop()
	}
	if lc.notify != nil {
		lc.notify.close()
		lc.notify = nil
	}
}

// wantLocked is the number of kept-alive processes a running job wants:
// its target, one more during a rolling restart, less the slots ended for
// good.
func (m *Manager) wantLocked(j *job) int {
	return max(0, j.target+j.lj.surge-j.lj.finished)
}

// maySpawnLocked says whether a job that lacks processes may spawn now:
// not while it waits for a dependency or a restart_delay.
func (m *Manager) maySpawnLocked(j *job) bool {
	if !j.lj.backoffUntil.IsZero() {
		return false
	}
	return m.depsHoldLocked(j)
}

// initLifeLocked sets a job's lifecycle from its config (Load, Update);
// deps are the resolved depends_on.
func (m *Manager) initLifeLocked(j *job, deps []resolvedDep, restartWith []string) {
	m.cancelLifeTimersLocked(j)
	j.lj.deps, j.lj.restartWith = deps, restartWith
	j.lj.policy = newRestartPolicy(&j.cfg)
	j.lj.finished, j.lj.failedRuns, j.lj.completed, j.lj.waitingFor = 0, 0, false, ""
}

// resetLifeLocked is a job's new start (start, restart, update): the
// restart delay, the ended slots and the completion are forgotten.
func (m *Manager) resetLifeLocked(j *job) {
	m.cancelLifeTimersLocked(j)
	j.lj.policy.reset()
	j.lj.finished, j.lj.failedRuns, j.lj.completed = 0, 0, false
}

// cancelLifeTimersLocked cancels a job's backoff and interrupts its
// rolling restart (stop, unload, update, restart, flapping).
func (m *Manager) cancelLifeTimersLocked(j *job) {
	if j.lj.backoffTimer != nil {
		j.lj.backoffTimer.Stop()
		j.lj.backoffTimer = nil
	}
	j.lj.backoffUntil = time.Time{}
	j.lj.surge = 0
	j.lj.rollGen++
}

// jobStateLocked is the state JobInfo reports.
func (m *Manager) jobStateLocked(j *job) string {
	if j.state != JobRunning {
		return j.state
	}
	want := max(0, j.target-j.lj.finished)
	switch {
	case j.lj.waitingFor != "" && len(j.procs) < want:
		return jobWaiting
	case !j.lj.backoffUntil.IsZero():
		return jobBackoff
	case j.target > 0 && want == 0 && len(j.procs) == 0 && j.lj.completed:
		return jobCompleted
	}
	for _, p := range j.procs {
		if p.lc != nil && p.lc.healthState == healthUnhealthy {
			return jobUnhealthy
		}
	}
	for id, p := range m.stopping {
		if m.procJob[id] == j && p.lc != nil && p.lc.failed == "unhealthy" {
			return jobUnhealthy
		}
	}
	if j.cfg.Ready == "" {
		return JobRunning
	}
	if len(j.procs) < want {
		return jobStarting
	}
	for _, p := range j.procs {
		if p.lc != nil && !p.lc.ready {
			return jobStarting
		}
	}
	return jobReady
}

// procStateLocked is the state ProcessInfo reports.
func procStateLocked(p *Process) string {
	lc := p.lc
	switch {
	case p.stopping || lc != nil && lc.selfStop:
		return procStopping
	case lc == nil:
		return procRunning
	case lc.healthState == healthUnhealthy:
		return procUnhealthy
	case !lc.ready:
		return procStarting
	case lc.reloading:
		return procReloading
	case lc.readySpec == nil:
		return procRunning
	}
	return procReady
}

// lifeJobInfoLocked fills the lifecycle fields of a job's info.
func (m *Manager) lifeJobInfoLocked(j *job, info *JobInfo) {
	info.State = m.jobStateLocked(j)
	if info.State == jobWaiting {
		info.WaitingFor = j.lj.waitingFor
	}
	if !j.lj.backoffUntil.IsZero() {
		t := j.lj.backoffUntil
		info.NextTry = &t
	}
	info.ProcessStates = make([]ProcessState, 0, len(j.procs)+len(j.commits))
	for _, list := range [][]*Process{j.procs, j.commits} {
		for _, p := range list {
			ps := lifeProcessState(p)
			if ps.Ready && !p.Once {
				info.Ready++
			}
			info.ProcessStates = append(info.ProcessStates, ps)
		}
	}
}

// lifeProcessState is the lifecycle part of a process's info.
func lifeProcessState(p *Process) ProcessState {
	ps := ProcessState{Pid: p.ID, State: procStateLocked(p), Ready: true}
	if lc := p.lc; lc != nil {
		ps.Ready = lc.ready && !lc.reloading && !p.stopping
		ps.Health, ps.HealthError, ps.Status, ps.Errno, ps.MainPID = lc.healthState, lc.healthMsg, lc.status, lc.errno, lc.mainPID
	}
	return ps
}
