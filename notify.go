package gaffer

// gafferd as an sd_notify server (sd_notify(3)), so that daemons that
// already tell systemd about themselves (systemd-notify, Go and Python
// libraries, nginx, postgres) tell gafferd the same way, unchanged.
//
// A process of a job with ready = notify or a watchdog gets its own
// NOTIFY_SOCKET: a unix datagram socket in a private directory of
// gafferd (0711: a job's user reaches its own socket, nobody lists the
// others), mode 0600 and owned by the job's user, so that only that user
// (and root) can connect. Every datagram carries its sender's credentials
// (SO_PASSCRED, SCM_CREDENTIALS, written by the kernel): a message is
// taken only from the process or one of its descendants (by its parents,
// or by the GAFFER_INSTANCE/GAFFER_PID markers every descendant inherits),
// as NotifyAccess=all does for a systemd unit, since systemd-notify runs
// as a child of the service. A process of another job, even of the same
// user, that found the socket is refused: its pid is not in the tree.
// (Root, which may write any pid in its credentials, is not contained by
// this, as it is not by systemd.) systemd-notify waits for the answer to
// its BARRIER=1 (a descriptor the server closes once the earlier messages
// were handled), so it is still alive when its message is checked.
//
// Understood: READY=1 (the process is ready, or done reloading),
// RELOADING=1 (reloading until the next READY=1), STOPPING=1 (it is
// stopping on its own: no more health checks nor watchdog), STATUS= (a
// line shown in the process's info), ERRNO= (shown), MAINPID= (shown;
// gaffer keeps supervising the process it spawned, and the pid must be in
// its tree), EXTEND_TIMEOUT_USEC= (pushes ready_timeout back, from now),
// WATCHDOG=1 (the keep-alive), WATCHDOG=trigger (fail now), WATCHDOG_USEC=
// (a new interval) and BARRIER=1. Other assignments are ignored, as
// systemd ignores the ones it does not know.

import (
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// notifyMaxMessage is the largest message taken (systemd's limit too).
const notifyMaxMessage = 4096

// notifyStatusMax bounds the STATUS= text kept.
const notifyStatusMax = 512

// isNotifyVar tells the variables of a notify socket, which a child never
// inherits from gafferd's own environment (gafferd's own NOTIFY_SOCKET is
// systemd's, for gafferd alone).
func isNotifyVar(k string) bool {
	return k == "NOTIFY_SOCKET" || k == "WATCHDOG_USEC" || k == "WATCHDOG_PID"
}

// readNotify reads the process's socket until it is closed (its exit).
func (m *Manager) readNotify(p *Process, s *notifySock) {
	s.read(func(msg []byte, pid int, truncated bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		j := m.procJob[p.ID]
		if j == nil || p.exited {
			return
		}
		if truncated || !utf8.Valid(msg) {
			m.refuseNotifyLocked(j, p, pid, "a message that is too long or not UTF-8")
			return
		}
		if !inProcessTree(pid, p.OSPid, p.markInst, p.markID) {
			m.refuseNotifyLocked(j, p, pid, "a sender that is not the process nor one of its descendants")
			return
		}
		m.notifyLocked(j, p, string(msg))
	})
}

// refuseNotifyLocked logs a refused message: the first, then one in 100.
func (m *Manager) refuseNotifyLocked(j *job, p *Process, pid int, why string) {
	lc := p.lc
	lc.refused++
	if lc.refused == 1 || lc.refused%100 == 0 {
		m.log.Warn("notify message refused: "+why, "job", j.full, "pid", p.ID, "os_pid", p.OSPid,
			"sender_pid", pid, "refused", lc.refused)
	}
}

// notifyMsg is one parsed message: the assignments gaffer understands.
type notifyMsg struct {
	ready, reloading, stopping bool
	status                     *string
	errno, mainPID             int // -1: not given
	extendTimeout              time.Duration
	watchdog                   string // "", "1" or "trigger"
	watchdogInterval           time.Duration
}

// parseNotify reads a message: newline-separated KEY=VALUE assignments;
// a value that is not of its kind, and an unknown key, are ignored.
func parseNotify(msg string) notifyMsg {
	n := notifyMsg{errno: -1, mainPID: -1}
	usec := func(v string) time.Duration {
		u, err := strconv.ParseUint(v, 10, 63)
		if err != nil || u > uint64(1<<62)/1000 {
			return 0
		}
		return time.Duration(u) * time.Microsecond
	}
	for _, line := range strings.Split(msg, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "READY":
			n.ready = n.ready || v == "1"
		case "RELOADING":
			n.reloading = n.reloading || v == "1"
		case "STOPPING":
			n.stopping = n.stopping || v == "1"
		case "STATUS":
			if len(v) > notifyStatusMax {
				v = strings.ToValidUTF8(v[:notifyStatusMax], "")
			}
			n.status = &v
		case "ERRNO":
			if e, err := strconv.Atoi(v); err == nil && e >= 0 {
				n.errno = e
			}
		case "MAINPID":
			if pid, err := strconv.Atoi(v); err == nil && pid > 0 {
				n.mainPID = pid
			}
		case "EXTEND_TIMEOUT_USEC":
			n.extendTimeout = usec(v)
		case "WATCHDOG":
			if v == "1" || v == "trigger" {
				n.watchdog = v
			}
		case "WATCHDOG_USEC":
			n.watchdogInterval = usec(v)
		}
	}
	return n
}

// notifyLocked applies one message of process p. RELOADING=1 and
// READY=1 in one message leave it ready, in the order systemd reads them.
func (m *Manager) notifyLocked(j *job, p *Process, msg string) {
	lc := p.lc
	n := parseNotify(msg)
	changed := false
	if n.reloading && !lc.reloading {
		lc.reloading, changed = true, true
	}
	if n.ready {
		if lc.reloading {
			lc.reloading, changed = false, true
		}
		if !lc.ready && !p.stopping && lc.readySpec != nil && lc.readySpec.kind == probeNotify {
			m.readyLocked(j, p, "notify")
			m.depsChangedLocked(j)
		}
	}
	if n.stopping && !lc.selfStop {
		lc.selfStop, changed = true, true
		lc.healthProbe.stop()
		if lc.watchdogTimer != nil {
			lc.watchdogTimer.Stop()
			lc.watchdogTimer = nil
		}
	}
	if n.status != nil && *n.status != lc.status {
		lc.status, changed = *n.status, true
	}
	if n.errno >= 0 && n.errno != lc.errno {
		lc.errno, changed = n.errno, true
	}
	if n.mainPID > 0 && n.mainPID != lc.mainPID && inProcessTree(n.mainPID, p.OSPid, p.markInst, p.markID) {
		lc.mainPID, changed = n.mainPID, true
	}
	if n.extendTimeout > 0 && !lc.ready && lc.readyTimer != nil {
		if d := time.Now().Add(n.extendTimeout); d.After(lc.readyDeadline) {
			lc.readyDeadline = d
		}
	}
	if n.watchdogInterval > 0 && !lc.ended && !lc.selfStop {
		lc.watchdog = n.watchdogInterval
		m.armWatchdogLocked(p)
		changed = true
	}
	switch {
	case lc.watchdog <= 0 || lc.ended || lc.selfStop:
	case n.watchdog == "trigger":
		m.watchdogFailedLocked(j, p, "WATCHDOG=trigger")
	case n.watchdog == "1":
		m.armWatchdogLocked(p)
	}
	if changed {
		m.gen++ // the info shows it
	}
}

// armWatchdogLocked (re)starts the watchdog interval of a process.
func (m *Manager) armWatchdogLocked(p *Process) {
	lc := p.lc
	if lc.watchdogTimer != nil {
		lc.watchdogTimer.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(lc.watchdog, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		j := m.procJob[p.ID]
		if lc.watchdogTimer != t || lc.ended || j == nil {
			return // re-armed, or the process stopped
		}
		m.watchdogFailedLocked(j, p, "no WATCHDOG=1 within "+lc.watchdog.String())
	})
	lc.watchdogTimer = t
}

// watchdogFailedLocked sends SIGABRT to a process whose watchdog ran out
// (systemd's WatchdogSignal) and SIGKILL to its group after its graceful
// timeout if it is still there; its exit is then handled as a crash.
func (m *Manager) watchdogFailedLocked(j *job, p *Process, why string) {
	lc := p.lc
	if lc.watchdogTimer != nil {
		lc.watchdogTimer.Stop()
		lc.watchdogTimer = nil
	}
	if lc.failed != "" {
		return
	}
	lc.failed = "watchdog"
	m.log.Warn("watchdog: sending SIGABRT", "job", j.full, "pid", p.ID, "os_pid", p.OSPid, "reason", why)
	m.emit("watchdog", j, p, "name", j.full, "pid", p.ID, "os_pid", p.OSPid, "reason", why)
	if err := m.signalLeaderLocked(p, syscall.SIGABRT); err != nil {
		m.log.Error("watchdog: cannot send SIGABRT", "job", j.full, "pid", p.ID, "err", err)
	}
	lc.abortTimer = time.AfterFunc(p.graceful, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if !p.exited {
			m.signalGroupLocked(p, syscall.SIGKILL)
		}
	})
}
