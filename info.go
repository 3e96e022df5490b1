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
	info := JobInfo{Name: j.full, Running: len(j.procs) + len(j.commits), RunningOut: len(j.commits),
		MaxProcesses: j.target, Processes: []int{}, Config: j.cfg.Map(showSecrets), State: j.state,
		Restarts: j.restarts, Flaps: j.flaps, LastExit: j.lastExit, LastExitInfo: j.lastExitRec,
		Stopping: []int{}, SpawnError: j.spawnErr}
	for id, p := range m.stopping {
		if m.procJob[id] == j {
			info.Stopping = append(info.Stopping, p.ID)
		}
	}
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

type infoCacheEntry struct {
	gen  [2]uint64
	data [2][]byte
}

// JobInfoJSON returns JobInfo encoded as JSON. The encoding is cached
// until the next event: every change of a job's state publishes one, so
// a job polled by monitoring is encoded once per change, not per request.
// The returned bytes must not be modified.
func (m *Manager) JobInfoJSON(full string, showSecrets bool) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.jobLocked(full)
	if err != nil {
		return nil, err
	}
	i := 0
	if showSecrets {
		i = 1
	}
	if m.infoCache == nil {
		m.infoCache = map[string]*infoCacheEntry{}
	}
	e := m.infoCache[j.full]
	if e == nil {
		e = &infoCacheEntry{}
		m.infoCache[j.full] = e
	}
	if e.data[i] != nil && e.gen[i] == m.gen {
		return e.data[i], nil
	}
	data, err := json.Marshal(m.jobInfoLocked(j, showSecrets))
	if err != nil {
		return nil, err
	}
	e.data[i], e.gen[i] = append(data, '\n'), m.gen
	return e.data[i], nil
}

// AllJobInfo describes every job, in session then load order.
func (m *Manager) AllJobInfo(showSecrets func(full string) bool) []JobInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []JobInfo
	for _, sid := range m.sessionOrder {
		s := m.sessions[sid]
		for _, n := range s.order {
			j := s.jobs[n]
			out = append(out, m.jobInfoLocked(j, showSecrets(j.full)))
		}
	}
	return out
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
