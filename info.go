package gaffer

import (
	"encoding/json"
	"math"
	"slices"
	"time"
)

// JobInfo is the JSON of GET /jobs/<sid>/<name> (reference §2.4.3), with
// the state, restart and flap counts added.
type JobInfo struct {
	Name         string         `json:"name"`
	Active       bool           `json:"active"`
	Running      int            `json:"running"`
	RunningOut   int            `json:"running_out"`
	MaxProcesses int            `json:"max_processes"`
	Processes    []int          `json:"processes"`
	Config       map[string]any `json:"config"`
	State        string         `json:"state"`
	Restarts     int            `json:"restarts"`
	Flaps        int            `json:"flaps"`
	LastExit     *int           `json:"last_exit_status"`
	// LastExitInfo tells how the job's last process ended (nil before
	// the first exit).
	LastExitInfo *ExitRecord `json:"last_exit"`
	// Stopping lists the processes stopped but not exited yet: they
	// left Processes at once.
	Stopping   []int  `json:"stopping"`
	SpawnError string `json:"spawn_error,omitempty"`
	// Lifecycle (lifecycle.go): the dependency the job waits for (state
	// waiting), the time of its next try (state backoff), how many of its
	// kept-alive processes are ready, and the state of each process.
	WaitingFor    string         `json:"waiting_for,omitempty"`
	NextTry       *time.Time     `json:"next_try,omitempty"`
	Ready         int            `json:"ready"`
	ProcessStates []ProcessState `json:"process_states"`
}

// ProcessState is the lifecycle of one process, in its job's info and
// its own: State is starting, ready, running (a job without a ready
// setting), reloading, unhealthy or stopping; Health is "" (no health
// setting), starting, healthy, failing or unhealthy; Status is its last
// sd_notify STATUS= line.
type ProcessState struct {
	Pid         int    `json:"pid"`
	State       string `json:"state"`
	Ready       bool   `json:"ready"`
	Health      string `json:"health,omitempty"`
	HealthError string `json:"health_error,omitempty"`
	Status      string `json:"status,omitempty"`
	Errno       int    `json:"errno,omitempty"`
	MainPID     int    `json:"main_pid,omitempty"`
}

// ExitRecord is how a process ended: its exit status, or the signal that
// killed it, when, and after how long.
type ExitRecord struct {
	PID        int       `json:"pid"`
	OSPid      int       `json:"os_pid"`
	ExitStatus int       `json:"exit_status"`
	TermSignal int       `json:"term_signal"`
	Signal     string    `json:"signal,omitempty"` // SIGKILL…; "" for a normal exit
	Time       time.Time `json:"time"`
	Uptime     float64   `json:"uptime"` // seconds
}

// JobInfo describes a job. showSecrets keeps secret-looking env values
// (callers without manage rights get them masked).
func (m *Manager) JobInfo(full string, showSecrets bool) (JobInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.jobLocked(full)
	if err != nil {
		return JobInfo{}, err
	}
	return m.jobInfoLocked(j, showSecrets), nil
}

func (m *Manager) jobInfoLocked(j *job, showSecrets bool) JobInfo {
	var stopping []int
	for id, p := range m.stopping {
		if m.procJob[id] == j {
			stopping = append(stopping, p.ID)
		}
	}
	return m.jobInfoWithLocked(j, showSecrets, stopping)
}

// jobInfoWithLocked is jobInfoLocked given the job's stopping processes
// (AllJobInfo sorts m.stopping by job once for every job).
func (m *Manager) jobInfoWithLocked(j *job, showSecrets bool, stopping []int) JobInfo {
	info := JobInfo{Name: j.full, Running: len(j.procs) + len(j.commits), RunningOut: len(j.commits),
		MaxProcesses: j.target, Processes: make([]int, 0, len(j.procs)+len(j.commits)), Config: j.cfg.Map(showSecrets), State: j.state,
		Restarts: j.restarts, Flaps: j.flaps, LastExit: j.lastExit, LastExitInfo: j.lastExitRec,
		Stopping: append([]int{}, stopping...), SpawnError: j.spawnErr}
	slices.Sort(info.Stopping)
	for _, p := range j.procs {
		info.Processes = append(info.Processes, p.ID)
	}
	for _, p := range j.commits {
		info.Processes = append(info.Processes, p.ID)
	}
	info.Active = info.Running > 0
	m.lifeJobInfoLocked(j, &info)
	return info
}

// stoppingByJobLocked returns the stopping processes of every job.
func (m *Manager) stoppingByJobLocked() map[*job][]int {
	if len(m.stopping) == 0 {
		return nil
	}
	out := map[*job][]int{}
	for id, p := range m.stopping {
		if j := m.procJob[id]; j != nil {
			out[j] = append(out[j], p.ID)
		}
	}
	return out
}

// The job-info cache: the JSON of a job's info (with and without its
// secrets), kept until an event concerns the job. Every change of a job's
// info publishes an event naming the job or one of its processes (emit),
// which calls infoChangedLocked; events about other jobs leave the entry
// valid, so a polled job is encoded once per change of its own, however
// busy the others. The encoding runs outside the manager's lock.
type infoCacheEntry struct {
	job     *job      // the job the entry describes (a job loaded again under the name is another)
	changed uint64    // m.gen of the last event about the job
	built   [2]uint64 // m.gen when data[i] was taken
	data    [2][]byte // JSON and '\n'; nil: not built
}

// infoChangedLocked marks the cached info of the job of an event stale:
// j's, or p's when j is nil.
func (m *Manager) infoChangedLocked(j *job, p *Process) {
	if j != nil {
		if e := m.infoCache[j.full]; e != nil {
			e.changed = m.gen
		}
	}
	if p != nil && (j == nil || p.Job != j.full) {
		if e := m.infoCache[p.Job]; e != nil {
			e.changed = m.gen
		}
	}
}

// cachedInfoLocked returns the cached JSON of j's info, or nil.
func (m *Manager) cachedInfoLocked(j *job, i int) []byte {
	if e := m.infoCache[j.full]; e != nil && e.job == j && e.data[i] != nil && e.built[i] >= e.changed {
		return e.data[i]
	}
	return nil
}

// storeInfoLocked caches data, j's info as taken at gen, unless the job
// is gone or a newer encoding is there.
func (m *Manager) storeInfoLocked(j *job, i int, gen uint64, data []byte) {
	if j.removed {
		return
	}
	if m.infoCache == nil {
		m.infoCache = map[string]*infoCacheEntry{}
	}
	e := m.infoCache[j.full]
	if e == nil || e.job != j {
		// Events about j since gen found no entry to mark: count them
		// all as changes (this data is then stale unless none came).
		e = &infoCacheEntry{job: j, changed: m.gen}
		m.infoCache[j.full] = e
	}
	if e.data[i] == nil || gen >= e.built[i] {
		e.data[i], e.built[i] = data, gen
	}
}

func secretsIndex(showSecrets bool) int {
	if showSecrets {
		return 1
	}
	return 0
}

// JobInfoJSON returns JobInfo encoded as JSON, with a final newline. The
// encoding is cached until the next event about the job (see
// infoCacheEntry), and done outside the manager's lock. The returned
// bytes must not be modified.
func (m *Manager) JobInfoJSON(full string, showSecrets bool) ([]byte, error) {
	i := secretsIndex(showSecrets)
	m.mu.Lock()
	j, err := m.jobLocked(full)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	if data := m.cachedInfoLocked(j, i); data != nil {
		m.mu.Unlock()
		return data, nil
	}
	info, gen := m.jobInfoLocked(j, showSecrets), m.gen
	m.mu.Unlock()
	data, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	data = append(data, '\n')
	m.mu.Lock()
	m.storeInfoLocked(j, i, gen, data)
	m.mu.Unlock()
	return data, nil
}

// AllJobInfo describes every job, in session then load order.
func (m *Manager) AllJobInfo(showSecrets func(full string) bool) []JobInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []JobInfo
	stopping := m.stoppingByJobLocked()
	for _, sid := range m.sessionOrder {
		s := m.sessions[sid]
		for _, n := range s.order {
			j := s.jobs[n]
			out = append(out, m.jobInfoWithLocked(j, showSecrets(j.full), stopping[j]))
		}
	}
	return out
}

// allJobInfoJSON is the body of GET /jobs?details=1: {"jobs": [...]},
// the info of every job canRead allows (secrets shown where showSecrets
// says), in session then load order, and a final newline. Each job's
// JSON comes from the job-info cache; the ones not cached are encoded
// outside the lock, and cached.
func (m *Manager) allJobInfoJSON(showSecrets, canRead func(full string) bool) ([]byte, error) {
	type part struct {
		j       *job
		i       int
		info    JobInfo
		data    []byte
		encoded bool
	}
	var parts []part
	m.mu.Lock()
	gen := m.gen
	var stopping map[*job][]int
	for _, sid := range m.sessionOrder {
		s := m.sessions[sid]
		for _, n := range s.order {
			j := s.jobs[n]
			if !canRead(j.full) {
				continue
			}
			show := showSecrets(j.full)
			pt := part{j: j, i: secretsIndex(show)}
			if pt.data = m.cachedInfoLocked(j, pt.i); pt.data == nil {
				if stopping == nil {
					stopping = m.stoppingByJobLocked()
				}
				pt.info = m.jobInfoWithLocked(j, show, stopping[j])
			}
			parts = append(parts, pt)
		}
	}
	m.mu.Unlock()
	size, encoded := 16, 0
	for k := range parts {
		if parts[k].data == nil {
			data, err := json.Marshal(parts[k].info)
			if err != nil {
				return nil, err
			}
			parts[k].data, parts[k].info, parts[k].encoded = append(data, '\n'), JobInfo{}, true
			encoded++
		}
		size += len(parts[k].data)
	}
	if encoded > 0 {
		m.mu.Lock()
		for _, pt := range parts {
			if pt.encoded {
				m.storeInfoLocked(pt.j, pt.i, gen, pt.data)
			}
		}
		m.mu.Unlock()
	}
	out := make([]byte, 0, size)
	out = append(out, `{"jobs":[`...)
	for k, pt := range parts {
		if k > 0 {
			out = append(out, ',')
		}
		out = append(out, pt.data[:len(pt.data)-1]...)
	}
	return append(out, "]}\n"...), nil
}

// ProcessInfo is the JSON of GET /<pid> (reference §2.4.4).
type ProcessInfo struct {
	Pid            int               `json:"pid"`
	Name           string            `json:"name"`
	Cmd            string            `json:"cmd"`
	Args           []string          `json:"args"`
	Env            map[string]string `json:"env"`
	UID            *int              `json:"uid"`
	GID            *int              `json:"gid"`
	OSPid          int               `json:"os_pid"`
	CreateTime     float64           `json:"create_time"`
	Committed      bool              `json:"commited"` // sic: the key 0.5.2 clients read
	RedirectOutput []string          `json:"redirect_output"`
	RedirectInput  bool              `json:"redirect_input"`
	CustomStreams  []string          `json:"custom_streams"`
	Active         bool              `json:"active"`
	Stopping       bool              `json:"stopping"`
	ProcessState                     // state, ready, health, status… (lifecycle.go)
}

// ProcessInfo describes a live process; showSecrets as for JobInfo. Without
// it, the expansion of secret-looking variables in cmd and args is masked
// too ("--token=$API_TOKEN" runs with the value but shows "--token=********").
func (m *Manager) ProcessInfo(pid int, showSecrets bool) (ProcessInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.procs[pid]
	if !ok {
		return ProcessInfo{}, errNotFound("process %d not found", pid)
	}
	env := make(map[string]string, len(p.Env))
	for k, v := range p.Env {
		if !showSecrets && IsSecretName(k) {
			v = secretMask
		}
		env[k] = v
	}
	cmd, args := p.Cmd, nonNil(p.Args)
	if !showSecrets {
		var cfg *JobConfig
		if j, err := m.jobLocked(p.Job); err == nil {
			cfg = &j.cfg
		}
		argv := maskedArgv(cfg, p.Env, append([]string{p.Cmd}, p.Args...))
		cmd, args = argv[0], argv[1:]
	}
	return ProcessInfo{
		Pid: p.ID, Name: p.Job, Cmd: cmd, Args: args, Env: env, UID: p.UID, GID: p.GID,
		OSPid: p.OSPid, CreateTime: float64(p.Created.UnixNano()) / 1e9, Committed: p.Once,
		RedirectOutput: nonNil(p.outLabels), RedirectInput: p.redirectInput,
		CustomStreams: nonNil(p.customOrder), Active: !p.exited, Stopping: p.stopping,
		ProcessState: lifeProcessState(p),
	}, nil
}

// ProcessStats samples one live process.
func (m *Manager) ProcessStats(pid int) (ProcStats, error) {
	p, ok := m.Process(pid)
	if !ok {
		return ProcStats{}, errNotFound("process %d not found", pid)
	}
	return p.Stats(), nil
}

// JobStats are the figures of a job's processes (GET
// /jobs/<sid>/<name>/stats, reference §8.2): each process's, and the sums
// and extremes of their percents. MarshalJSON writes "N/A" for the sums
// and extremes when no process could be sampled.
type JobStats struct {
	Name  string
	Stats []ProcStats
	// Sampled counts the processes whose cpu and memory figures are
	// known; when it is 0 the figures below are 0.
	Sampled int
	Mem     float64 // percent of physical memory, summed over the processes
	MaxMem  float64 // the largest process's
	MinMem  float64 // the smallest process's
	CPU     float64 // percent of one core, summed over the processes
	MaxCPU  float64
	MinCPU  float64
}

// JobStats samples every process of a job, committed ones included.
func (m *Manager) JobStats(full string) (JobStats, error) {
	procs, err := m.JobProcesses(full)
	if err != nil {
		return JobStats{}, err
	}
	_, name := SplitName(full)
	sid, _ := SplitName(full)
	js := JobStats{Name: sid + "." + name, Stats: []ProcStats{}}
	var sumMem, sumCPU float64
	minMem, maxMem, minCPU, maxCPU := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	valid := 0
	for _, p := range procs {
		st := p.Stats()
		js.Stats = append(js.Stats, st)
		mem, cpu := st.MemPercent, st.CPUPercent
		if !st.Sampled || mem < 0 {
			continue
		}
		valid++
		sumMem += mem
		sumCPU += cpu
		minMem, maxMem = math.Min(minMem, mem), math.Max(maxMem, mem)
		minCPU, maxCPU = math.Min(minCPU, cpu), math.Max(maxCPU, cpu)
	}
	js.Sampled = valid
	if valid == 0 {
		return js, nil
	}
	r := func(f float64) float64 { return math.Round(f*10) / 10 }
	js.Mem, js.MaxMem, js.MinMem = r(sumMem), r(maxMem), r(minMem)
	js.CPU, js.MaxCPU, js.MinCPU = r(sumCPU), r(maxCPU), r(minCPU)
	return js, nil
}
