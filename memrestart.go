package gaffer

// memory_restart (pm2's max_memory_restart): a kept-alive process whose
// memory stays above the job's memory_restart is restarted, as a
// stop_process would (SIGTERM, SIGKILL after the graceful timeout, a new
// process at once). The memory is the process's cgroup's when a memory
// controller accounts it (the process and all it started), else the
// process's RSS. One goroutine samples every memRestartPeriod, only
// while a loaded job sets memory_restart, reading one file per process of
// those jobs; a process is restarted once memRestartSamples samples in a
// row were above, so that a short peak does not restart it.

import (
	"time"
)

// Sampling of memory_restart (variables for the tests).
var (
	memRestartPeriod  = 2 * time.Second
	memRestartSamples = 3
)

// memWatch is the watcher's state (Manager's lock held).
type memWatch struct {
	running bool
	over    map[*Process]int // consecutive samples above the limit
}

// startMemWatchLocked starts the watcher unless it runs.
func (m *Manager) startMemWatchLocked() {
	if m.contain.mem.running {
		return
	}
	m.contain.mem.running = true
	m.contain.mem.over = map[*Process]int{}
	go m.memLoop(memRestartPeriod, memRestartSamples)
}

type memCandidate struct {
	p     *Process
	j     *job
	limit int64
}

func (m *Manager) memLoop(period time.Duration, samples int) {
	t := time.NewTicker(period)
	defer t.Stop()
	for range t.C {
		m.mu.Lock()
		var cands []memCandidate
		for _, sid := range m.sessionOrder {
			s := m.sessions[sid]
			for _, n := range s.order {
				j := s.jobs[n]
				if j.cfg.MemoryRestart <= 0 {
					continue
				}
				for _, p := range j.procs {
					cands = append(cands, memCandidate{p, j, j.cfg.MemoryRestart})
				}
			}
		}
		if len(cands) == 0 && !m.anyMemRestartLocked() || m.shutdown {
			m.contain.mem.running = false
			m.contain.mem.over = nil
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		used := make([]int64, len(cands))
		for i, c := range cands {
			used[i] = processMemory(c.p)
		}
		m.mu.Lock()
		over := map[*Process]int{}
		for i, c := range cands {
			if used[i] <= c.limit {
				continue
			}
			n := m.contain.mem.over[c.p] + 1
			if n < samples {
				over[c.p] = n
				continue
			}
			if c.p.stopping || c.p.exited || !containsProc(c.j.procs, c.p) {
				continue
			}
			m.log.Warn("process memory stayed above memory_restart; restarting it", "job", c.j.full, "pid", c.p.ID,
				"os_pid", c.p.OSPid, "memory", used[i], "memory_restart", c.limit, "samples", n)
			m.stopProcLocked(c.j, c.p, 0)
			m.manageLocked(c.j)
		}
		m.contain.mem.over = over
		m.mu.Unlock()
	}
}

// anyMemRestartLocked tells whether a loaded job sets memory_restart (it
// may have no process right now).
func (m *Manager) anyMemRestartLocked() bool {
	for _, s := range m.sessions {
		for _, j := range s.jobs {
			if j.cfg.MemoryRestart > 0 {
				return true
			}
		}
	}
	return false
}

// processMemory is the memory memory_restart compares: the cgroup's when
// accounted, else the RSS; 0 when unknown.
func processMemory(p *Process) int64 {
	if n, ok := p.cg.memory(); ok {
		return n
	}
	if raw, ok := readStatLine(p.OSPid); ok {
		return raw.rss
	}
	return 0
}
