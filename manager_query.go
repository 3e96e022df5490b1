package gaffer

import "sort"

// Process returns a live process by internal pid.
func (m *Manager) Process(pid int) (*Process, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.procs[pid]
	return p, ok
}

// Sessions returns the session ids in creation order.
func (m *Manager) Sessions() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string{}, m.sessionOrder...)
}

// Jobs returns the full names of the jobs of a session, or of every
// session when sid is "".
func (m *Manager) Jobs(sid string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []string{}
	if sid != "" {
		s, ok := m.sessions[sid]
		if !ok {
			return nil, errNotFound("session %q not found", sid)
		}
		for _, n := range s.order {
			out = append(out, sid+"."+n)
		}
		return out, nil
	}
	for _, id := range m.sessionOrder {
		for _, n := range m.sessions[id].order {
			out = append(out, id+"."+n)
		}
	}
	return out, nil
}

// Pids returns every live internal pid in spawn order (full == ""), or
// the kept-alive pids of one job.
func (m *Manager) Pids(full string) ([]int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []int{}
	if full == "" {
		for id := range m.procs {
			out = append(out, id)
		}
		sort.Ints(out)
		return out, nil
	}
	j, err := m.jobLocked(full)
	if err != nil {
		return nil, err
	}
	for _, p := range j.procs {
		out = append(out, p.ID)
	}
	return out, nil
}

// JobConfig returns a copy of a job's config.
func (m *Manager) JobConfig(full string) (JobConfig, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.jobLocked(full)
	if err != nil {
		return JobConfig{}, err
	}
	return j.cfg.Clone(), nil
}

// JobProcesses returns the live processes of a job: kept-alive first,
// then committed.
func (m *Manager) JobProcesses(full string) ([]*Process, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.jobLocked(full)
	if err != nil {
		return nil, err
	}
	return append(append([]*Process(nil), j.procs...), j.commits...), nil
}

// JobSnapshot is the runtime state of one job, as persisted in the state
// file: its config, its target and whether it runs.
type JobSnapshot struct {
	Session string    `json:"session"`
	Config  JobConfig `json:"-"`
	Target  int       `json:"numprocesses"`
	State   string    `json:"state"`
}

// Snapshot returns every job's runtime state, in session then load order.
func (m *Manager) Snapshot() []JobSnapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []JobSnapshot
	for _, sid := range m.sessionOrder {
		s := m.sessions[sid]
		for _, n := range s.order {
			j := s.jobs[n]
			out = append(out, JobSnapshot{Session: sid, Config: j.cfg.Clone(), Target: j.target, State: j.state})
		}
	}
	return out
}
