package gaffer

// A manager's containment: its cgroups (cgroup_linux.go), the sockets of
// its jobs (sockets.go) and the memory_restart watcher (memrestart.go),
// and what the manager's code calls of them: a job that loads or updates
// is checked against what the machine offers and gets its sockets
// (containJobLocked); a spawn gets its cgroup root and copies of its
// job's sockets (prepareSpawnLocked); an unload releases the sockets;
// gafferd's stop removes what is empty (closeContainment).

import (
	"os"
	"strings"
	"syscall"
)

// containment is the manager's part (Manager.contain). cg is set once,
// before any job loads; the rest is guarded by the Manager's mutex.
type containment struct {
	cg      *cgRoot // nil: process groups only
	why     string  // why there is no cgroup2 containment
	sockets socketTable
	mem     memWatch
}

// enableCgroups gives the manager cgroups where the machine allows it
// (gafferd calls it before any job loads). It logs which containment is
// in use.
func (m *Manager) enableCgroups() {
	r, why := newCgRoot(m.instance, m.log)
	m.mu.Lock()
	m.contain.cg, m.contain.why = r, why
	m.mu.Unlock()
	if r == nil || r.v2 == "" {
		m.log.Info("containment: process groups and environment markers (no cgroup per job)", "why", why)
	} else {
		m.log.Info("containment: a cgroup per process", "cgroup", r.v2)
	}
	if r != nil {
		m.esc.useLeaves(r)
	}
}

// describeContainment adds to GET /'s answer which containment is in use
// ("cgroup2:<dir>" or "process-groups") and, with cgroups, where each
// limit comes from.
func (m *Manager) describeContainment(out map[string]any) {
	m.mu.Lock()
	r := m.contain.cg
	m.mu.Unlock()
	out["containment"] = r.describe()
	if r != nil {
		out["cgroup_limits"] = r.limitsInfo()
	}
}

// containJobLocked checks what a job that loads (or updates, when
// update) needs of the machine and gives it its sockets. For a Load of a
// job that exists it does nothing: Load answers 409.
func (m *Manager) containJobLocked(sid string, cfg *JobConfig, update bool) error {
	if s := m.sessions[sid]; !update && s != nil && s.jobs[cfg.Name] != nil {
		return nil
	}
	if err := m.checkMachineLocked(cfg); err != nil {
		return err
	}
	if err := m.contain.sockets.hold(sid+"."+cfg.Name, cfg.Name, cfg.Sockets); err != nil {
		return err
	}
	if cfg.MemoryRestart > 0 {
		m.startMemWatchLocked()
	}
	return nil
}

// checkMachineLocked refuses a job whose limits the machine cannot apply.
func (m *Manager) checkMachineLocked(cfg *JobConfig) error {
	keys := map[string]string{"memory": "memory_max", "cpu": "cpu_max", "pids": "pids_max"}
	var err error
	jobCgLimits(cfg).each(func(ctl string, _ [2]string, _ [][2]string) {
		switch {
		case err != nil:
		case m.contain.cg == nil && m.contain.why == "":
			err = Errorf(CodeBadValue, 400, "%s: this manager makes no cgroups (gafferd turns them on)", keys[ctl])
		case m.contain.cg == nil:
			err = Errorf(CodeBadValue, 400, "%s: this machine cannot apply it: no cgroup hierarchy gafferd can write (%s)", keys[ctl], m.contain.why)
		default:
			if _, e := m.contain.cg.limitSource(ctl); e != nil {
				err = Errorf(CodeBadValue, 400, "%s: this machine cannot apply it: %v", keys[ctl], e)
			}
		}
	})
	if err != nil || shimSupported {
		return err
	}
	probe := &shimSpec{}
	if shimSettings(cfg, probe) || len(cfg.Sockets) > 0 {
		return Errorf(CodeBadValue, 400, "limits, nice, umask, oom_score_adj and sockets need Linux")
	}
	return nil
}

// releaseJobLocked drops what an unloaded job held.
func (m *Manager) releaseJobLocked(full string) {
	m.contain.sockets.release(full)
}

// prepareSpawnLocked gives a spawn what it needs of the containment: the
// cgroup root, and copies of its job's sockets (the job may release them
// before the fork; the copies stay valid until spawnProcess closes them).
func (m *Manager) prepareSpawnLocked(s *spawnSpec) {
	s.cg = m.contain.cg
	s.socks, s.sockNames, s.sockErr = m.contain.sockets.files(s.job)
}

// closeContainment closes the job sockets and removes the manager's empty
// cgroups (gafferd stopping, after Shutdown).
func (m *Manager) closeContainment() {
	m.mu.Lock()
	m.contain.sockets.closeAll()
	r := m.contain.cg
	m.mu.Unlock()
	r.close()
}

// listenEnv sets the socket activation variables of a child with sockets
// (LISTEN_PID is set by the shim, in the child).
func listenEnv(env map[string]string, names []string) {
	delete(env, "LISTEN_PID")
	if len(names) == 0 {
		return
	}
	env["LISTEN_FDS"] = itoa(len(names))
	env["LISTEN_FDNAMES"] = strings.Join(names, ":")
}

// isListenVar tells the variables of socket activation, which describe
// gafferd's own descriptors when it inherited them: never passed on.
func isListenVar(k string) bool {
	return k == "LISTEN_FDS" || k == "LISTEN_PID" || k == "LISTEN_FDNAMES"
}

// closeFiles closes each file.
func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// execPlan is how one process is started: the program, its arguments,
// environment, descriptors and attributes, and what the parent closes
// after the fork (prepareExec, per system).
type execPlan struct {
	path      string
	argv, env []string
	files     []uintptr
	sys       *syscall.SysProcAttr
	cgfd      int      // the cgroup the clone enters; -1: none
	shimRead  *os.File // the shim's error pipe (nil: no shim)
	shimWrite *os.File
}

// closeChildEnds closes what only the child needed.
func (x *execPlan) closeChildEnds() {
	if x.cgfd >= 0 {
		closeFD(x.cgfd)
		x.cgfd = -1
	}
	if x.shimWrite != nil {
		x.shimWrite.Close()
		x.shimWrite = nil
	}
}

// closeShim closes the parent's end of the shim's error pipe.
func (x *execPlan) closeShim() {
	if x.shimRead != nil {
		x.shimRead.Close()
		x.shimRead = nil
	}
}
