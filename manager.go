package gaffer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// Options configures a Manager.
type Options struct {
	// Logger receives the manager's log lines; nil means slog.Default().
	Logger *slog.Logger
	// Output, when set, is called with every chunk of output of every
	// process, from the pipe's reader goroutine: it must be quick.
	Output func(p *Process, label string, data []byte)
	// SpawnRetryDelay is the wait before trying again to spawn a job whose
	// last spawn failed (the executable vanished, say). Default 1 s.
	SpawnRetryDelay time.Duration
}

// Manager supervises jobs grouped in sessions. It is safe for concurrent
// use; see the package documentation for its locking rule.
type Manager struct {
	mu       sync.Mutex
	opts     Options
	log      *slog.Logger
	bus      *Bus
	instance string

	sessions     map[string]*session
	sessionOrder []string
	procs        map[int]*Process // live processes (running or stopping) by internal pid
	procJob      map[int]*job
	nextPID      int
	shutdown     bool
	allGone      chan struct{} // closed when procs empties during shutdown
	gen          uint64        // bumped by every event; see JobInfoJSON
	infoCache    map[string]*infoCacheEntry
	sinks        map[string]map[string]OutputSink
}

type session struct {
	id    string
	jobs  map[string]*job
	order []string
}

// Job states reported in JobInfo.State.
const (
	JobRunning    = "running"
	JobStopped    = "stopped"
	JobNotStarted = "not_started"
	JobFlapping   = "flapping" // waiting for a retry after flapping
	JobGaveUp     = "gave_up"  // flapped max_retry times
)

type job struct {
	session, name, full string
	cfg                 JobConfig
	env                 map[string]string
	target              int
	state               string
	procs               []*Process // kept-alive, oldest first
	commits             []*Process
	flap                *flapState
	retryTimer          *time.Timer
	spawnTimer          *time.Timer
	restarts            int
	flaps               int
	lastExit            *int
	spawnErr            string
	removed             bool
	sinks               jobSinks
}

// NewManager returns a Manager with no job.
func NewManager(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SpawnRetryDelay <= 0 {
		opts.SpawnRetryDelay = time.Second
	}
	var b [8]byte
	rand.Read(b[:])
	return &Manager{
		opts: opts, log: opts.Logger, bus: NewBus(), instance: hex.EncodeToString(b[:]),
		sessions: map[string]*session{}, procs: map[int]*Process{}, procJob: map[int]*job{},
	}
}

// Events returns the manager's event bus.
func (m *Manager) Events() *Bus { return m.bus }

// Instance returns the random id of this manager, set in every child's
// environment as GAFFER_INSTANCE.
func (m *Manager) Instance() string { return m.instance }

func (m *Manager) publish(name string, kv ...any) {
	m.gen++ // every change of state publishes: cached views are stale now
	data := make(map[string]any, len(kv)/2+1)
	for i := 0; i+1 < len(kv); i += 2 {
		data[kv[i].(string)] = kv[i+1]
	}
	m.bus.Publish(name, data)
}

func (m *Manager) jobLocked(full string) (*job, error) {
	sid, name := SplitName(full)
	s, ok := m.sessions[sid]
	if !ok {
		return nil, errNotFound("job %q not found", full)
	}
	j, ok := s.jobs[name]
	if !ok {
		return nil, errNotFound("job %q not found", full)
	}
	return j, nil
}

// Load adds a job to session sid and, when start is true, starts it. env
// is merged over the job's env. A job that cannot spawn its first process
// is not left loaded: Load returns the spawn error.
func (m *Manager) Load(sid string, cfg JobConfig, env map[string]string, start bool) error {
	if err := ValidateSession(sid); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.Clone()
	normalizeLogConfig(&cfg)
	// Check now what can be checked before anything changes.
	if _, _, err := resolveIDs(&cfg); err != nil {
		return err
	}
	if !cfg.Shell {
		probe := &spawnSpec{cfg: &cfg, env: env, job: sid + "." + cfg.Name}
		if _, _, err := buildCommand(&cfg, buildEnv(probe)); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shutdown {
		return Errorf(CodeUnavailable, 503, "gafferd is shutting down")
	}
	s, ok := m.sessions[sid]
	if ok {
		if _, exists := s.jobs[cfg.Name]; exists {
			return Errorf(CodeConflict, 409, "job %s.%s is already loaded", sid, cfg.Name)
		}
	} else {
		s = &session{id: sid, jobs: map[string]*job{}}
		m.sessions[sid] = s
		m.sessionOrder = append(m.sessionOrder, sid)
	}
	j := &job{session: sid, name: cfg.Name, full: sid + "." + cfg.Name, cfg: cfg, env: copyEnv(env),
		target: cfg.NumProcesses, state: JobNotStarted}
	if cfg.Flapping != nil {
		j.flap = newFlapState(*cfg.Flapping)
	}
	s.jobs[cfg.Name] = j
	s.order = append(s.order, cfg.Name)
	m.openSinksLocked(j)
	m.publish("load", "name", j.full)
	m.publish("create", "name", j.full)
	if start {
		if err := m.startLocked(j); err != nil {
			m.unloadLocked(j)
			return err
		}
	}
	return nil
}

func copyEnv(env map[string]string) map[string]string {
	if env == nil {
		return nil
	}
	c := make(map[string]string, len(env))
	for k, v := range env {
		c[k] = v
	}
	return c
}

// startLocked starts a job: it un-stops it, resets the flapping history and
// spawns up to the target. Scaling done before is kept.
func (m *Manager) startLocked(j *job) error {
	m.cancelTimersLocked(j)
	j.state = JobRunning
	j.spawnErr = ""
	if j.flap != nil {
		j.flap.reset()
	}
	m.publish("start", "name", j.full)
	m.publish("job."+j.full+".start", "name", j.full)
	m.publish("proc."+j.full+".start", "name", j.full)
	return m.manageLocked(j)
}

// StartJob starts a stopped (or never started) job.
func (m *Manager) StartJob(full string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.jobLocked(full)
	if err != nil {
		return err
	}
	if j.state == JobRunning {
		return m.manageLocked(j)
	}
	return m.startLocked(j)
}

// StopJob stops every process of the job, committed ones included, and
// keeps it stopped until it is started again. Its target is kept.
func (m *Manager) StopJob(full string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.jobLocked(full)
	if err != nil {
		return err
	}
	m.stopJobLocked(j, JobStopped)
	return nil
}

func (m *Manager) stopJobLocked(j *job, state string) {
	m.cancelTimersLocked(j)
	j.state = state
	m.publish("stop", "name", j.full)
	m.publish("job."+j.full+".stop", "name", j.full)
	m.publish("proc."+j.full+".stop", "name", j.full)
	m.stopAllProcsLocked(j)
	m.stopOrphansLocked(j)
}

func (m *Manager) cancelTimersLocked(j *job) {
	if j.retryTimer != nil {
		j.retryTimer.Stop()
		j.retryTimer = nil
	}
	if j.spawnTimer != nil {
		j.spawnTimer.Stop()
		j.spawnTimer = nil
	}
}

func (m *Manager) stopAllProcsLocked(j *job) {
	procs := append(append([]*Process(nil), j.procs...), j.commits...)
	j.procs, j.commits = nil, nil
	for _, p := range procs {
		m.stopProcLocked(j, p, 0)
	}
}

// Unload stops a job's processes and removes it (and its session when it
// was the last job there).
func (m *Manager) Unload(full string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.jobLocked(full)
	if err != nil {
		return err
	}
	m.unloadLocked(j)
	return nil
}

func (m *Manager) unloadLocked(j *job) {
	s := m.sessions[j.session]
	delete(s.jobs, j.name)
	for i, n := range s.order {
		if n == j.name {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	if len(s.jobs) == 0 {
		delete(m.sessions, j.session)
		for i, id := range m.sessionOrder {
			if id == j.session {
				m.sessionOrder = append(m.sessionOrder[:i], m.sessionOrder[i+1:]...)
				break
			}
		}
	}
	j.removed = true
	delete(m.infoCache, j.full)
	m.publish("unload", "name", j.full)
	m.publish("delete", "name", j.full)
	m.stopJobLocked(j, JobStopped)
	m.closeSinksLocked(j)
}

// Update replaces the config of an existing job: its processes (committed
// ones included) are stopped and, unless the job is stopped, new ones
// start with the new config. start = true also starts a stopped job. The
// target becomes the new numprocesses.
func (m *Manager) Update(sid string, cfg JobConfig, env map[string]string, start bool) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.Clone()
	normalizeLogConfig(&cfg)
	if _, _, err := resolveIDs(&cfg); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.jobLocked(sid + "." + cfg.Name)
	if err != nil {
		return err
	}
	m.cancelTimersLocked(j)
	j.cfg = cfg
	if env != nil {
		j.env = copyEnv(env)
	}
	j.target = cfg.NumProcesses
	j.flap = nil
	if cfg.Flapping != nil {
		j.flap = newFlapState(*cfg.Flapping)
	}
	m.reopenSinksLocked(j)
	m.stopAllProcsLocked(j)
	m.publish("update", "name", j.full)
	if start || j.state == JobRunning || j.state == JobFlapping {
		if j.state != JobRunning {
			return m.startLocked(j)
		}
		return m.manageLocked(j)
	}
	return nil
}

// ReloadJob restarts every process of a job with its current config
// (HTTP state 2): the processes, committed ones included, are stopped and,
// unless the job is stopped, a full new set starts right away.
func (m *Manager) ReloadJob(full string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.jobLocked(full)
	if err != nil {
		return err
	}
	m.cancelTimersLocked(j)
	if j.flap != nil {
		j.flap.reset()
	}
	m.stopAllProcsLocked(j)
	if j.state == JobFlapping || j.state == JobGaveUp {
		j.state = JobRunning
	}
	if j.state == JobRunning {
		return m.manageLocked(j)
	}
	return nil
}

// StopAll stops every process of the job (committed ones included)
// without changing its target: kept-alive processes are replaced as they
// exit, a rolling restart.
func (m *Manager) StopAll(full string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.jobLocked(full)
	if err != nil {
		return err
	}
	for _, p := range append(append([]*Process(nil), j.procs...), j.commits...) {
		m.stopProcLocked(j, p, 0)
	}
	return nil
}

// manageLocked spawns or reaps processes so that a running job has its
// target number of kept-alive processes; the oldest are reaped first.
func (m *Manager) manageLocked(j *job) error {
	if j.state != JobRunning || m.shutdown || j.removed {
		return nil
	}
	for len(j.procs) > j.target {
		p := j.procs[0]
		m.publish("reap", "name", j.full, "pid", p.ID, "os_pid", p.OSPid)
		m.publish("job."+j.full+".reap", "name", j.full, "pid", p.ID, "os_pid", p.OSPid)
		m.publish(procEvent(p.ID, "reap"), "name", j.full, "pid", p.ID, "os_pid", p.OSPid)
		m.stopProcLocked(j, p, 0)
	}
	for len(j.procs) < j.target {
		if _, err := m.spawnLocked(j, false, nil, 0); err != nil {
			j.spawnErr = err.Error()
			m.publish("spawn_error", "name", j.full, "reason", err.Error())
			m.publish("job."+j.full+".spawn_error", "name", j.full, "reason", err.Error())
			m.log.Error("spawn failed", "job", j.full, "err", err)
			if j.spawnTimer == nil {
				j.spawnTimer = time.AfterFunc(m.opts.SpawnRetryDelay, func() {
					m.mu.Lock()
					defer m.mu.Unlock()
					j.spawnTimer = nil
					m.manageLocked(j)
				})
			}
			return err
		}
	}
	return nil
}

func procEvent(pid int, what string) string {
	return "proc." + itoa(pid) + "." + what
}

// spawnLocked starts one process of the job.
func (m *Manager) spawnLocked(j *job, once bool, extraEnv map[string]string, graceful time.Duration) (*Process, error) {
	m.nextPID++
	id := m.nextPID
	spec := &spawnSpec{id: id, job: j.full, cfg: &j.cfg, env: j.env, extraEnv: extraEnv, once: once,
		instance: m.instance, ringSize: j.cfg.RingSize, onOutput: m.outputFunc(j)}
	p, err := spawnProcess(spec, m.onExit)
	if err != nil {
		return nil, err
	}
	p.graceful = j.cfg.GracefulTimeout
	if once && graceful > 0 {
		p.graceful = graceful
	}
	m.procs[id] = p
	m.procJob[id] = j
	if once {
		j.commits = append(j.commits, p)
	} else {
		j.procs = append(j.procs, p)
	}
	m.publish("spawn", "name", j.full, "pid", id, "os_pid", p.OSPid)
	if !once {
		m.publish("job."+j.full+".spawn", "name", j.full, "pid", id, "os_pid", p.OSPid)
		m.publish("proc."+j.full+".spawn", "name", j.full, "pid", id, "os_pid", p.OSPid)
	}
	return p, nil
}

// stopProcLocked removes p from its job's lists, publishes stop_process,
// sends SIGTERM to its process group and arms the SIGKILL timer. A
// graceful timeout of 0 means the process's own.
func (m *Manager) stopProcLocked(j *job, p *Process, graceful time.Duration) {
	j.procs = removeProc(j.procs, p)
	j.commits = removeProc(j.commits, p)
	if p.stopping || p.exited {
		return
	}
	p.stopping = true
	m.publish("stop_process", "name", j.full, "pid", p.ID, "os_pid", p.OSPid)
	if graceful <= 0 {
		graceful = p.graceful
	}
	if graceful <= 0 {
		signalGroup(p, syscall.SIGKILL)
		return
	}
	signalGroup(p, syscall.SIGTERM)
	p.stopTimer = time.AfterFunc(graceful, func() { m.killStopping(p) })
}

// killStopping is the graceful timer: SIGKILL to whatever is left of the
// process and its group.
func (m *Manager) killStopping(p *Process) {
	m.mu.Lock()
	exited := p.exited
	m.mu.Unlock()
	if !exited {
		// Not reaped yet: its pid (and so its group id) cannot be reused.
		signalGroup(p, syscall.SIGKILL)
		return
	}
	// The leader is gone but members of its group outlived it: find them
	// by their marker so that a reused pid is never hit.
	killMarked(m.instance, p.ID, syscall.SIGKILL)
}

func removeProc(list []*Process, p *Process) []*Process {
	for i, q := range list {
		if q == p {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

// onExit is called by the reaper when a child has exited.
func (m *Manager) onExit(p *Process, ws syscall.WaitStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	p.exited = true
	p.exitedAt = now
	if ws.Exited() {
		p.exitStatus = ws.ExitStatus()
	}
	if ws.Signaled() {
		p.termSignal = int(ws.Signal())
	}
	close(p.exitCh)
	if p.stopTimer != nil {
		// Keep the timer only if members of the group are still alive.
		if syscall.Kill(-p.OSPid, 0) != nil {
			p.stopTimer.Stop()
		}
	}
	j := m.procJob[p.ID]
	delete(m.procs, p.ID)
	delete(m.procJob, p.ID)
	if p.stdin != nil {
		p.stdin.Close()
	}
	if j == nil {
		return
	}
	status := p.exitStatus
	j.lastExit = &status
	payload := []any{"name", j.full, "pid", p.ID, "os_pid", p.OSPid, "exit_status", p.exitStatus,
		"term_signal", p.termSignal, "once", p.Once}
	m.publish("exit", payload...)
	m.publish("job."+j.full+".exit", payload...)
	m.publish("proc."+j.full+".exit", payload...)
	m.publish(procEvent(p.ID, "exit"), payload...)
	if m.shutdown && len(m.procs) == 0 && m.allGone != nil {
		close(m.allGone)
		m.allGone = nil
	}
	wasKept := !p.Once && containsProc(j.procs, p)
	j.procs = removeProc(j.procs, p)
	j.commits = removeProc(j.commits, p)
	if j.removed || m.shutdown || j.state != JobRunning || p.Once {
		return
	}
	if !wasKept {
		// Deliberately stopped (stop_process, stopall, reap): not a crash.
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
	m.manageLocked(j)
}

func containsProc(list []*Process, p *Process) bool {
	for _, q := range list {
		if q == p {
			return true
		}
	}
	return false
}

// flapLocked stops a flapping job and, when retry, schedules its restart.
func (m *Manager) flapLocked(j *job, retry bool) {
	j.flaps++
	m.publish("flap", "name", j.full, "retry", retry)
	m.publish("job."+j.full+".flap", "name", j.full, "retry", retry)
	state := JobGaveUp
	if retry {
		state = JobFlapping
	}
	m.cancelTimersLocked(j)
	j.state = state
	m.stopAllProcsLocked(j)
	if !retry {
		m.log.Warn("job flapped too often; giving up until it is started again", "job", j.full)
		return
	}
	delay := secondsToDuration(j.cfg.Flapping.RetryIn)
	m.log.Warn("job is flapping; retrying later", "job", j.full, "retry_in", delay)
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if j.retryTimer != t || j.removed || j.state != JobFlapping {
			return // cancelled by stop, unload, update or reload
		}
		j.retryTimer = nil
		j.state = JobRunning
		m.manageLocked(j)
	})
	j.retryTimer = t
}

// Commit starts a one-off process of the job, even when the job is
// stopped: it is never restarted and not counted in numprocesses. A
// graceful timeout of 0 means the job's. It returns the internal pid.
func (m *Manager) Commit(full string, graceful time.Duration, env map[string]string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.jobLocked(full)
	if err != nil {
		return 0, err
	}
	if m.shutdown {
		return 0, Errorf(CodeUnavailable, 503, "gafferd is shutting down")
	}
	p, err := m.spawnLocked(j, true, env, graceful)
	if err != nil {
		return 0, err
	}
	return p.ID, nil
}

// StopProcess stops one process (SIGTERM, SIGKILL after its graceful
// timeout). A kept-alive process is replaced when its exit is seen.
func (m *Manager) StopProcess(pid int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.procs[pid]
	if !ok {
		return errNotFound("process %d not found", pid)
	}
	m.stopProcLocked(m.procJob[pid], p, 0)
	return nil
}

// Kill sends sig to one process and publishes proc.<pid>.kill.
func (m *Manager) Kill(pid int, sig syscall.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.procs[pid]
	if !ok {
		return errNotFound("process %d not found", pid)
	}
	m.publish(procEvent(pid, "kill"), "name", p.Job, "pid", pid, "signum", int(sig))
	if !p.exited {
		syscall.Kill(p.OSPid, sig)
	}
	return nil
}

// KillAll sends sig to every process of the job, committed ones included.
func (m *Manager) KillAll(full string, sig syscall.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.jobLocked(full)
	if err != nil {
		return err
	}
	m.publish("job."+j.full+".kill", "name", j.full, "signum", int(sig))
	for _, p := range append(append([]*Process(nil), j.procs...), j.commits...) {
		m.publish(procEvent(p.ID, "kill"), "name", j.full, "pid", p.ID, "signum", int(sig))
		if !p.exited {
			syscall.Kill(p.OSPid, sig)
		}
	}
	return nil
}

// Send writes data to a process's stdin (stream "" or "stdin") or to one
// of its custom streams.
func (m *Manager) Send(pid int, data []byte, stream string) error {
	p, ok := m.Process(pid)
	if !ok {
		return errNotFound("process %d not found", pid)
	}
	return p.Write(stream, data)
}

// Shutdown stops every job (detached processes are left running) and
// waits until every process has exited or ctx ends. New loads are
// refused from then on.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.shutdown = true
	for _, sid := range m.sessionOrder {
		s := m.sessions[sid]
		for _, n := range s.order {
			j := s.jobs[n]
			m.cancelTimersLocked(j)
			j.state = JobStopped
			m.publish("stop", "name", j.full)
			m.publish("job."+j.full+".stop", "name", j.full)
			for _, p := range append(append([]*Process(nil), j.procs...), j.commits...) {
				if j.cfg.Detach {
					// Detached processes outlive gafferd (reference §15 #40).
					delete(m.procs, p.ID)
					delete(m.procJob, p.ID)
					continue
				}
				m.stopProcLocked(j, p, 0)
			}
			j.procs, j.commits = nil, nil
			m.stopOrphansLocked(j)
		}
	}
	var wait chan struct{}
	if len(m.procs) > 0 {
		m.allGone = make(chan struct{})
		wait = m.allGone
	}
	m.mu.Unlock()
	if wait == nil {
		return nil
	}
	select {
	case <-wait:
		return nil
	case <-ctx.Done():
		m.mu.Lock()
		for _, p := range m.procs {
			signalGroup(p, syscall.SIGKILL)
		}
		m.mu.Unlock()
		return ctx.Err()
	}
}

// stopOrphansLocked signals descendants of the job's processes that
// escaped their process group and were re-parented to gafferd (a double
// fork): they are recognised by the markers in their environment.
func (m *Manager) stopOrphansLocked(j *job) {
	var orphans []int
	for _, pid := range ownChildren() {
		if m.isOwnChildLocked(pid) {
			continue
		}
		if v, ok := environValue(pid, markerVar); !ok || v != m.instance {
			continue
		}
		if v, ok := environValue(pid, "GAFFER_JOB"); !ok || v != j.full {
			continue
		}
		orphans = append(orphans, pid)
	}
	if len(orphans) == 0 {
		return
	}
	for _, pid := range orphans {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	grace := j.cfg.GracefulTimeout
	inst, full := m.instance, j.full
	time.AfterFunc(grace, func() {
		for _, pid := range orphans {
			if v, ok := environValue(pid, markerVar); ok && v == inst {
				if g, ok := environValue(pid, "GAFFER_JOB"); ok && g == full {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	})
}

func (m *Manager) isOwnChildLocked(osPid int) bool {
	for _, p := range m.procs {
		if p.OSPid == osPid {
			return true
		}
	}
	return false
}

// killMarked sends sig to every process whose environment carries this
// manager's instance marker and the internal pid id (GAFFER_PID).
func killMarked(instance string, id int, sig syscall.Signal) {
	want := itoa(id)
	for _, pid := range allPids() {
		if v, ok := environValue(pid, markerVar); !ok || v != instance {
			continue
		}
		if v, ok := environValue(pid, "GAFFER_PID"); ok && v == want {
			syscall.Kill(pid, sig)
		}
	}
}
