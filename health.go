package gaffer

// Health checks: once a process is ready, its health probe runs at once
// and then every health_interval, each for at most health_timeout. An
// answer makes it healthy; health_retries failures in a row make it
// unhealthy: the unhealthy event is published and the process is
// restarted (SIGTERM, graceful_timeout, SIGKILL, then replaced as the
// restart policy says, as a failed run). The next check is armed only
// once the previous one answered, and none runs after the process was
// stopped (probeRun).

// healthMsgMax bounds the failure text kept in the process's info.
const healthMsgMax = 256

// healthResult is the answer of one health check.
func (m *Manager) healthResult(p *Process, pr *probeRun, err error) {
	lc := p.lc
	j := m.procJob[p.ID]
	if j == nil || lc.ended {
		return
	}
	if err == nil {
		lc.healthFails, lc.healthMsg = 0, ""
		if lc.healthState != healthHealthy {
			lc.healthState = healthHealthy
			m.emit("healthy", j, p, "name", j.full, "pid", p.ID, "os_pid", p.OSPid)
			m.depsChangedLocked(j)
		}
	} else {
		lc.healthFails++
		msg := err.Error()
		if len(msg) > healthMsgMax {
			msg = msg[:healthMsgMax]
		}
		lc.healthMsg = msg
		if lc.healthFails >= lc.cfg.HealthRetries {
			lc.healthState = healthUnhealthy
			m.log.Warn("process unhealthy; restarting it", "job", j.full, "pid", p.ID, "os_pid", p.OSPid,
				"failures", lc.healthFails, "last_error", msg)
			m.emit("unhealthy", j, p, "name", j.full, "pid", p.ID, "os_pid", p.OSPid,
				"failures", lc.healthFails, "reason", msg)
			m.lifeFailLocked(j, p, "unhealthy")
			return
		}
		lc.healthState = healthFailing
		m.gen++
	}
	m.scheduleProbeLocked(p, pr, lc.cfg.HealthInterval, lc.cfg.HealthTimeout, m.healthResult)
}
