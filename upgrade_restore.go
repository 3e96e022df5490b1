package gaffer

// The new instance's side of an upgrade in place (upgrade.go): it reads
// the handoff, continues the same instance and takes over the children,
// their pipes and the listeners.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pendingHandoff is the handoff this gafferd started with (nil: a fresh
// start). One Daemon per process takes it.
var pendingHandoff *upgradeDoc

// takeHandoff reads the handoff named by GAFFER_UPGRADE_FD, if any, and
// removes the variable (the children must not inherit it). An unreadable
// handoff is an error: this gafferd then stops, and with it the children
// of the failed upgrade (their parent is gone either way).
func takeHandoff() error {
	v, ok := os.LookupEnv(upgradeEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(upgradeEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return fmt.Errorf("%s=%q: not a descriptor", upgradeEnv, v)
	}
	f := inherited(fd, "upgrade-handoff")
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("upgrade handoff: %v", err)
	}
	var doc upgradeDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("upgrade handoff: %v", err)
	}
	if doc.Protocol != upgradeProtocol {
		return fmt.Errorf("upgrade handoff: protocol %q, this gafferd speaks %q", doc.Protocol, upgradeProtocol)
	}
	upgradeListeners.Lock()
	upgradeListeners.inherited = map[string]net.Listener{}
	for _, il := range doc.Listeners {
		f := inherited(il.FD, "listener:"+il.Bind)
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			upgradeListeners.Unlock()
			return fmt.Errorf("upgrade handoff: listener %s: %v", il.Bind, err)
		}
		upgradeListeners.inherited[il.Bind] = l
	}
	upgradeListeners.Unlock()
	upgradeCount.Store(doc.Upgrades)
	pendingHandoff = &doc
	return nil
}

// continueInstance makes a new manager the instance of the handoff (its
// id, internal pids, event numbers), before its cgroups are made.
func (m *Manager) continueInstance() {
	doc := pendingHandoff
	if doc == nil {
		return
	}
	m.mu.Lock()
	m.instance, m.nextPID, m.gen = doc.Instance, doc.NextPID, doc.Gen
	m.mu.Unlock()
	m.bus.mu.Lock()
	m.bus.seq = doc.BusSeq
	m.bus.mu.Unlock()
	if doc.CgMoved {
		cgUnmoveProbe(doc.Instance)
	}
}

// restoreHandoff is restoreState for an upgraded gafferd: the jobs and
// processes of the handoff, the data directory's lock kept, no
// leftover to end.
func (d *Daemon) restoreHandoff() error {
	doc := pendingHandoff
	pendingHandoff = nil
	m := d.Manager
	d.mu.Lock()
	d.fileJobs = nil
	for _, u := range doc.FileJobs {
		cfg, err := u.config()
		if err != nil {
			d.mu.Unlock()
			return fmt.Errorf("upgrade handoff: job %s.%v: %v", u.Session, u.Config["name"], err)
		}
		d.fileJobs = append(d.fileJobs, SessionJob{Session: u.Session, Config: cfg})
	}
	d.mu.Unlock()
	if err := m.restoreJobs(doc); err != nil {
		return err
	}
	m.mu.Lock()
	n := len(m.procs)
	m.mu.Unlock()
	d.log.Info("upgraded in place: the processes go on", "instance", doc.Instance, "upgrades", doc.Upgrades, "processes", n)
	if doc.LockFD < 0 {
		return nil
	}
	dir := inherited(doc.LockFD, d.DataDir())
	if _, err := startLedger(d.DataDir(), dir, m, m.log); err != nil {
		return fmt.Errorf("process record: %w", err)
	}
	sf, _, err := OpenState(d.DataDir(), d.log)
	if err != nil {
		return err
	}
	d.state = NewStateRecorder(sf, func() []SessionJob {
		d.mu.Lock()
		defer d.mu.Unlock()
		return append([]SessionJob(nil), d.fileJobs...)
	})
	return d.state.StartManager(m)
}

// restoreJobs rebuilds the jobs and processes of the handoff and takes
// over the children.
func (m *Manager) restoreJobs(doc *upgradeDoc) error {
	m.mu.Lock()
	m.restoreSocketsLocked(doc)
	var all []*Process
	var pipes []func()
	var bad []string
	for _, us := range doc.Sessions {
		for _, uj := range us.Jobs {
			cfg, err := uj.Job.config()
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s.%v: %v", us.ID, uj.Job.Config["name"], err))
				continue
			}
			normalizeLogConfig(&cfg)
			s, ok := m.sessions[us.ID]
			if !ok {
				s = &session{id: us.ID, jobs: map[string]*job{}}
				m.sessions[us.ID] = s
				m.sessionOrder = append(m.sessionOrder, us.ID)
			}
			j := &job{session: us.ID, name: cfg.Name, full: us.ID + "." + cfg.Name, cfg: cfg, env: uj.Env,
				target: uj.Target, state: uj.State, restarts: uj.Restarts, flaps: uj.Flaps, lastExit: uj.LastExit,
				lastExitRec: uj.LastExitRec, spawnErr: uj.SpawnErr, inflight: map[*spawnReq]bool{}}
			if cfg.Flapping != nil {
				j.flap = newFlapState(*cfg.Flapping)
			}
			s.jobs[cfg.Name] = j
			s.order = append(s.order, cfg.Name)
			m.openSinksLocked(j)
			if cfg.MemoryRestart > 0 {
				m.startMemWatchLocked()
			}
			for _, list := range [][]upProc{uj.Procs, uj.Commits} {
				for _, up := range list {
					p, start := m.restoreProc(j, up)
					m.procs[p.ID] = p
					m.procJob[p.ID] = j
					if p.Once {
						j.commits = append(j.commits, p)
					} else {
						j.procs = append(j.procs, p)
					}
					all = append(all, p)
					pipes = append(pipes, start)
				}
			}
			if j.state == JobFlapping && j.cfg.Flapping != nil {
				m.armFlapRetryLocked(j)
			}
		}
	}
	// The lifecycle of each job (depends_on, restart_with, restart
	// policy), resolved once every job of the handoff exists. Its running
	// processes continue as ready: their probes, watchdog and notify
	// socket are not carried over (README, upgrade).
	for _, sid := range m.sessionOrder {
		for _, j := range m.sessions[sid].jobs {
			deps, restartWith, err := m.checkDepsLocked(sid, &j.cfg)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", j.full, err))
			}
			m.initLifeLocked(j, deps, restartWith)
		}
	}
	m.mu.Unlock()
	for _, start := range pipes {
		start()
	}
	for _, p := range all {
		if p.adopted {
			go m.watchAdopted(p, p.pidf)
			continue
		}
		theReaper.adopt(p.OSPid, func(ws syscall.WaitStatus) {
			m.onExit(p, ws)
			if p.cg != nil && len(p.cg.procs()) == 0 {
				p.cg.remove()
			}
		})
	}
	m.mu.Lock()
	for _, s := range m.sessions {
		for _, j := range s.jobs {
			m.manageLocked(j) // a process that ended during the exec is replaced as usual
		}
	}
	m.mu.Unlock()
	if len(bad) > 0 {
		return fmt.Errorf("upgrade handoff: jobs that cannot be read: %s", strings.Join(bad, "; "))
	}
	return nil
}

// restoreProc rebuilds one process (Manager's lock held); start starts
// its readers.
func (m *Manager) restoreProc(j *job, u upProc) (*Process, func()) {
	p := &Process{ID: u.ID, OSPid: u.OSPid, Job: j.full, Once: u.Once, Cmd: u.Cmd, Args: u.Args, Env: u.Env,
		UID: u.UID, GID: u.GID, Cwd: u.Cwd, Created: u.Created, outLabels: u.OutLabels,
		streams: map[string]*Stream{}, custom: map[string]*os.File{}, redirectInput: u.RedirectInput,
		ioDone: make(chan struct{}), exitCh: make(chan struct{}), detach: u.Detach, startTicks: u.StartTicks,
		markInst: u.MarkInst, markID: u.MarkID, registered: true, graceful: time.Duration(u.GracefulNS),
		pidfd: -1, adopted: u.Adopted, lastWall: time.Now()}
	if p.Env == nil {
		p.Env = map[string]string{}
	}
	if u.StdinFD >= 0 {
		p.stdin = pollFile(u.StdinFD, "stdin")
	}
	for _, c := range u.Custom {
		p.custom[c.Label] = pollFile(c.FD, "custom:"+c.Label)
		p.customOrder = append(p.customOrder, c.Label)
	}
	if u.Adopted && u.PidfFD >= 0 {
		setCloexec(u.PidfFD, true)
		p.pidf = pidFile(u.PidfFD)
	} else if fd, err := pidfdOpen(p.OSPid); err == nil {
		p.pidfd = fd // our unreaped child: the pid cannot name another process
	}
	if u.Cg != nil && m.contain.cg != nil {
		p.cg = restoreLeaf(m.contain.cg, u.Cg, p.markInst, p.markID, j.full, p.detach)
	}
	onOutput := m.outputFunc(j)
	var pipes []*outPipe
	for _, us := range u.Streams {
		st := restoredStream(us.Label, j.cfg.RingSize, us.Next, us.Chunks)
		p.streams[us.Label] = st
		var f *os.File
		switch {
		case us.Custom:
			f = p.custom[us.Label]
		case us.FD >= 0:
			f = pollFile(us.FD, "output:"+us.Label)
		}
		if f == nil {
			st.Close() // it had reached EOF
			continue
		}
		pipes = append(pipes, &outPipe{f: f, st: st, onOutput: onOutput, log: m.log})
	}
	return p, func() {
		for _, pp := range pipes {
			p.startPipe(pp)
		}
		go func() {
			p.ioWG.Wait()
			close(p.ioDone)
		}()
	}
}

// restoredStream is a stream with the chunks of the handoff, numbered up
// to next-1.
func restoredStream(label string, ringSize int, next uint64, chunks [][]byte) *Stream {
	st := NewStream(label, ringSize)
	if next < uint64(len(chunks))+1 {
		next = uint64(len(chunks)) + 1
	}
	st.nextSeq = next - uint64(len(chunks))
	for _, c := range chunks {
		st.Write(c)
	}
	st.nextSeq = next
	st.last.Store(next - 1)
	return st
}

// pollFile makes an inherited descriptor an *os.File the runtime's poller
// serves (non-blocking), as os.Pipe's are.
func pollFile(fd int, name string) *os.File {
	syscall.SetNonblock(fd, true)
	return inherited(fd, name)
}

// inherited takes a descriptor of the handoff: close-on-exec again, so
// that no child spawned from now on inherits it (a child holding the data
// directory's lock or a pipe would outlive gafferd's kill -9 with it).
func inherited(fd int, name string) *os.File {
	setCloexec(fd, true)
	return os.NewFile(uintptr(fd), name)
}

// restoreSocketsLocked rebuilds the job sockets' table.
func (m *Manager) restoreSocketsLocked(doc *upgradeDoc) {
	t := &m.contain.sockets
	if len(doc.Sockets) == 0 {
		return
	}
	t.bound, t.jobs = map[string]*boundSocket{}, map[string][]heldSocket{}
	for _, us := range doc.Sockets {
		spec, err := parseSocketSpec(us.Spec)
		f := inherited(us.FD, us.Spec)
		if err != nil {
			m.log.Error("upgrade handoff: a job socket cannot be read; closed", "socket", us.Spec, "err", err)
			f.Close()
			continue
		}
		b := &boundSocket{spec: spec, f: f, refs: us.Refs, dev: us.Dev, ino: us.Ino}
		t.bound[spec.key()] = b
		noteHeldSocket(spec.key(), 1)
	}
	for full, refs := range doc.SocketJobs {
		for _, r := range refs {
			if b := t.bound[r.Key]; b != nil {
				t.jobs[full] = append(t.jobs[full], heldSocket{b: b, name: r.Name})
			}
		}
	}
}

// armFlapRetryLocked schedules the retry of a job that was waiting for
// one when gafferd upgraded (its full retry_in from now).
func (m *Manager) armFlapRetryLocked(j *job) {
	delay := secondsToDuration(j.cfg.Flapping.RetryIn)
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if j.retryTimer != t || j.removed || j.state != JobFlapping {
			return
		}
		j.retryTimer = nil
		j.state = JobRunning
		m.manageLocked(j)
	})
	j.retryTimer = t
}

// adopt registers onExit for a child this process did not fork (an
// upgraded gafferd's children) and looks for its exit at once.
func (r *reaper) adopt(pid int, onExit func(syscall.WaitStatus)) {
	r.mu.Lock()
	if !r.started {
		r.started = true
		c := make(chan os.Signal, 64)
		signal.Notify(c, syscall.SIGCHLD)
		go r.loop(c)
	}
	r.waiters[pid] = onExit
	r.mu.Unlock()
	r.poke()
}
