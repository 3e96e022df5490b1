package gaffer

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"
)

// Options configures a Manager.
type Options struct {
	// Logger receives the manager's log lines; nil means slog.Default().
	Logger *slog.Logger
	// Output, when set, is called with every chunk of output of every
	// process, from the pipe's reader goroutine: it must be quick. The
	// data is valid only during the call (the buffer is reused): copy it
	// to keep it. A panic in Output is logged and the output goes on.
	Output func(p *Process, label string, data []byte)
	// SpawnRetryDelay is the wait before trying again to spawn a job whose
	// last spawn failed (the executable vanished, say). Default 1 s.
	SpawnRetryDelay time.Duration
	// MaxProcesses bounds a job's numprocesses and scale target
	// ([gaffer] max_processes); 0 means DefaultMaxProcesses.
	MaxProcesses int
	// MaxGracefulTimeout bounds a job's graceful_timeout and a commit's
	// ([gaffer] max_graceful_timeout); 0 means DefaultMaxGracefulTimeout.
	MaxGracefulTimeout time.Duration
	// EssentialFailed, when set, is called once (on a goroutine of its
	// own) when a job with essential = true gives up: flapping's last
	// retry, or a failed run under restart = never. gafferd then stops
	// everything and exits 1.
	EssentialFailed func(job, reason string)
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
	procs        map[int]*Process // running processes by internal pid (the "running list")
	stopping     map[int]*Process // stopped, not yet exited
	released     map[int]*Process // detached processes Shutdown left running
	procJob      map[int]*job     // the job of every process of procs and stopping
	inflight     int              // spawns forked or forking, not yet registered
	nextPID      int
	shutdown     bool
	allGone      chan struct{} // closed when everything is gone during shutdown
	gen          uint64        // bumped by every event; see JobInfoJSON
	infoCache    map[string]*infoCacheEntry
	sinks        map[string]map[string]OutputSink
	esc          *escapeSweeper
	ledger       *ledger               // nil: no record of the processes (leftovers.go)
	adoptable    map[string][]*Process // detached processes of an earlier gafferd, by job
	life         managerLife           // notify sockets, deferred stops, essential (lifecycle.go)
	contain      containment           // cgroups, job sockets, memory_restart (contain.go)
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
	lastExitRec         *ExitRecord
	spawnErr            string
	removed             bool
	sinks               jobSinks
	queue               []*spawnReq        // kept-alive spawns waiting for the job's worker
	working             bool               // the job's spawn worker runs
	inflight            map[*spawnReq]bool // forking now (kept-alive and committed)
	lj                  jobLife            // readiness, dependencies, restart policy (lifecycle.go)
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
	m := &Manager{
		opts: opts, log: opts.Logger, bus: NewBus(), instance: hex.EncodeToString(b[:]),
		sessions: map[string]*session{}, procs: map[int]*Process{}, stopping: map[int]*Process{},
		released: map[int]*Process{}, procJob: map[int]*job{},
	}
	m.esc = newEscapeSweeper(m.log, m.isLiveMarker)
	return m
}

// Events returns the manager's event bus.
func (m *Manager) Events() *Bus { return m.bus }

// Instance returns the random id of this manager, set in every child's
// environment as GAFFER_INSTANCE.
func (m *Manager) Instance() string { return m.instance }

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
// is merged over the job's env. It returns once the processes are
// spawned; a job that cannot spawn them is not left loaded: Load returns
// the spawn error.
func (m *Manager) Load(sid string, cfg JobConfig, env map[string]string, start bool) error {
	if err := ValidateSession(sid); err != nil {
		return err
	}
	if err := m.validateJob(&cfg); err != nil {
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
	if cfg.Detach && (cfg.RedirectInput || len(cfg.CustomStreams) > 0 ||
		(len(cfg.RedirectOutput) > 0 && cfg.Logfile == "" && cfg.StdoutLogfile == "" && cfg.StderrLogfile == "")) {
		m.log.Warn("a detached process has no pipe to gafferd: redirect_output, redirect_input and custom_streams "+
			"are ignored (its output goes to its log files, else to /dev/null)", "job", sid+"."+cfg.Name)
	}
	m.mu.Lock()
	if m.shutdown {
		m.mu.Unlock()
		return Errorf(CodeUnavailable, 503, "gafferd is shutting down")
	}
	deps, restartWith, err := m.checkDepsLocked(sid, &cfg)
	if err == nil {
		err = m.containJobLocked(sid, &cfg, false)
	}
	if err != nil {
		m.mu.Unlock()
		return err
	}
	s, ok := m.sessions[sid]
	if ok {
		if _, exists := s.jobs[cfg.Name]; exists {
			m.mu.Unlock()
			return Errorf(CodeConflict, 409, "job %s.%s is already loaded", sid, cfg.Name)
		}
	} else {
		s = &session{id: sid, jobs: map[string]*job{}}
		m.sessions[sid] = s
		m.sessionOrder = append(m.sessionOrder, sid)
	}
	j := &job{session: sid, name: cfg.Name, full: sid + "." + cfg.Name, cfg: cfg, env: copyEnv(env),
		target: cfg.NumProcesses, state: JobNotStarted, inflight: map[*spawnReq]bool{}}
	if cfg.Flapping != nil {
		j.flap = newFlapState(*cfg.Flapping)
	}
	m.initLifeLocked(j, deps, restartWith)
	s.jobs[cfg.Name] = j
	s.order = append(s.order, cfg.Name)
	m.openSinksLocked(j)
	m.emit("load", j, nil, "name", j.full)
	m.adoptLocked(j)
	var first spawnBatch
	if start {
		first = m.startLocked(j)
	}
	m.mu.Unlock()
	if err := first.wait(); err != nil {
		m.mu.Lock()
		if !j.removed {
			m.unloadLocked(j)
		}
		m.mu.Unlock()
		return err
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
// spawns up to the target. Scaling done before is kept. It returns the
// spawns it asked for.
func (m *Manager) startLocked(j *job) spawnBatch {
	m.cancelTimersLocked(j)
	j.state = JobRunning
	j.spawnErr = ""
	if j.flap != nil {
		j.flap.reset()
	}
	m.resetLifeLocked(j)
	m.emit("start", j, nil, "name", j.full)
	return m.manageLocked(j)
}

// StartJob starts a stopped (or never started) job. It returns once the
// processes it starts are spawned, with the error of the first spawn
// that failed.
func (m *Manager) StartJob(full string) error {
	m.mu.Lock()
	j, err := m.jobLocked(full)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	var first spawnBatch
	if j.state == JobRunning {
		first = m.manageLocked(j)
	} else {
		first = m.startLocked(j)
	}
	m.mu.Unlock()
	return first.wait()
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
	return m.stopJobLocked(j, JobStopped)
}

func (m *Manager) stopJobLocked(j *job, state string) error {
	m.cancelTimersLocked(j)
	j.state = state
	m.emit("stop", j, nil, "name", j.full)
	if m.deferStopLocked(j) {
		return nil // its dependents exit first (depends.go)
	}
	err := m.stopAllProcsLocked(j)
	// Descendants of processes that exited before (a daemon a crashed
	// process left behind) carry the job's marker.
	m.esc.addJob(m.instance, j.full, j.cfg.GracefulTimeout)
	return err
}

func (m *Manager) cancelTimersLocked(j *job) {
	m.cancelLifeTimersLocked(j)
	if j.retryTimer != nil {
		j.retryTimer.Stop()
		j.retryTimer = nil
	}
	if j.spawnTimer != nil {
		j.spawnTimer.Stop()
		j.spawnTimer = nil
	}
}

// stopAllProcsLocked stops every process of the job, cancels its queued
// spawns and marks the spawns in flight to be stopped as they register.
func (m *Manager) stopAllProcsLocked(j *job) error {
	m.cancelSpawnsLocked(j)
	procs := append(append([]*Process(nil), j.procs...), j.commits...)
	j.procs, j.commits = nil, nil
	var errs []error
	for _, p := range procs {
		if err := m.stopProcLocked(j, p, 0); err != nil {
			errs = append(errs, err)
		}
	}
	return joinSignalErrors(errs)
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
	if err := m.dependentsLocked(j); err != nil {
		return err // depends.go
	}
	return m.unloadLocked(j)
}

func (m *Manager) unloadLocked(j *job) error {
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
	m.releaseJobLocked(j.full)
	delete(m.infoCache, j.full)
	m.emit("unload", j, nil, "name", j.full)
	err := m.stopJobLocked(j, JobStopped)
	m.closeSinksLocked(j)
	return err
}

// Update replaces the config of an existing job: its processes (committed
// ones included) are stopped and, unless the job is stopped, new ones
// start with the new config. start = true also starts a stopped job. The
// target becomes the new numprocesses.
func (m *Manager) Update(sid string, cfg JobConfig, env map[string]string, start bool) error {
	if err := m.validateJob(&cfg); err != nil {
		return err
	}
	cfg = cfg.Clone()
	normalizeLogConfig(&cfg)
	if _, _, err := resolveIDs(&cfg); err != nil {
		return err
	}
	m.mu.Lock()
	j, err := m.jobLocked(sid + "." + cfg.Name)
	var deps []resolvedDep
	var restartWith []string
	if err == nil {
		deps, restartWith, err = m.checkDepsLocked(sid, &cfg)
	}
	if err == nil {
		err = m.containJobLocked(sid, &cfg, true)
	}
	if err != nil {
		m.mu.Unlock()
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
	m.initLifeLocked(j, deps, restartWith)
	m.reopenSinksLocked(j)
	m.stopAllProcsLocked(j)
	m.emit("update", j, nil, "name", j.full)
	m.restartWithLocked(j, nil)
	var first spawnBatch
	if start || j.state == JobRunning || j.state == JobFlapping {
		if j.state != JobRunning {
			first = m.startLocked(j)
		} else {
			first = m.manageLocked(j)
		}
	}
	m.mu.Unlock()
	return first.wait()
}

// ReloadJob restarts every process of a job with its current config
// (HTTP state 2): the processes, committed ones included, are stopped and,
// unless the job is stopped, a full new set starts right away.
func (m *Manager) ReloadJob(full string) error {
	m.mu.Lock()
	j, err := m.jobLocked(full)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	m.cancelTimersLocked(j)
	if j.flap != nil {
		j.flap.reset()
	}
	m.resetLifeLocked(j)
	m.emit("restart", j, nil, "name", j.full)
	m.stopAllProcsLocked(j)
	if j.state == JobFlapping || j.state == JobGaveUp {
		j.state = JobRunning
	}
	m.restartWithLocked(j, nil)
	var first spawnBatch
	if j.state == JobRunning {
		first = m.manageLocked(j)
	}
	m.mu.Unlock()
	return first.wait()
}

// StopAll stops every process of the job (committed ones included)
// without changing its target: the kept-alive processes are replaced at
// once, a rolling restart.
func (m *Manager) StopAll(full string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.jobLocked(full)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range append(append([]*Process(nil), j.procs...), j.commits...) {
		if err := m.stopProcLocked(j, p, 0); err != nil {
			errs = append(errs, err)
		}
	}
	m.manageLocked(j)
	return joinSignalErrors(errs)
}

// manageLocked spawns or reaps processes so that a running job has its
// target number of kept-alive processes; the oldest are reaped first. It
// counts the spawns queued and in flight, so that the target is never
// overshot. It returns the spawns it queued, for callers that wait for
// them (without the lock).
func (m *Manager) manageLocked(j *job) spawnBatch {
	if j.state != JobRunning || m.shutdown || j.removed {
		return nil
	}
	want := m.wantLocked(j)
	have := len(j.procs) + len(j.queue) + j.liveInflight()
	for have > want && len(j.queue) > 0 {
		r := j.queue[len(j.queue)-1]
		j.queue = j.queue[:len(j.queue)-1]
		r.finish(errSpawnCancelled)
		have--
	}
	for have > want && len(j.procs) > 0 {
		p := j.procs[0]
		m.emit("reap", j, p, "name", j.full, "pid", p.ID, "os_pid", p.OSPid)
		m.stopProcLocked(j, p, 0)
		have--
	}
	for r := range j.inflight {
		if have <= want {
			break
		}
		if !r.once && !r.doomed {
			r.doomed = true // stopped as soon as it registers
			have--
		}
	}
	if have < want && !m.maySpawnLocked(j) {
		return nil // waiting for a dependency or a restart delay (lifecycle.go)
	}
	var batch spawnBatch
	for ; have < want; have++ {
		r := &spawnReq{j: j, done: make(chan struct{})}
		j.queue = append(j.queue, r)
		batch = append(batch, r)
	}
	if len(j.queue) > 0 && !j.working {
		j.working = true
		go m.spawnWorker(j)
	}
	return batch
}

// flapLocked stops a flapping job and, when retry, schedules its restart.
func (m *Manager) flapLocked(j *job, retry bool) {
	j.flaps++
	m.emit("flap", j, nil, "name", j.full, "retry", retry)
	state := JobGaveUp
	if retry {
		state = JobFlapping
	}
	m.cancelTimersLocked(j)
	j.state = state
	m.stopAllProcsLocked(j)
	if !retry {
		m.log.Error("job flapped too often; giving up until it is started again", "job", j.full,
			"flaps", j.flaps, "restarts", j.restarts)
		m.giveUpLocked(j, "flapping")
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
	if err := m.opts.limits().checkGraceful("graceful_timeout", graceful); err != nil {
		return 0, err
	}
	m.mu.Lock()
	j, err := m.jobLocked(full)
	if err != nil {
		m.mu.Unlock()
		return 0, err
	}
	if m.shutdown {
		m.mu.Unlock()
		return 0, Errorf(CodeUnavailable, 503, "gafferd is shutting down")
	}
	r := &spawnReq{j: j, once: true, extraEnv: env, graceful: graceful, done: make(chan struct{})}
	m.takeReqLocked(r)
	m.mu.Unlock()
	p, err := spawnProcess(r.spec, m.onExit)
	m.mu.Lock()
	m.registerLocked(r, p, err)
	m.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return p.ID, nil
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
