package gaffer

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one OS process spawned from a job. Its fields are set at
// spawn and never change; the mutable state belongs to the Manager.
type Process struct {
	ID      int               // internal pid, never reused by a Manager
	OSPid   int               // the operating system's pid
	Job     string            // full job name, session.job
	Once    bool              // committed (one-off) process, never restarted
	Cmd     string            // executable as run
	Args    []string          // arguments as run (argv[1:])
	Env     map[string]string // full environment of the child
	UID     *int              // resolved uid, nil when unchanged
	GID     *int              // resolved gid, nil when unchanged
	Cwd     string
	Created time.Time

	outLabels     []string           // redirect_output labels, stdout first
	streams       map[string]*Stream // output labels and custom streams
	stdin         *os.File
	custom        map[string]*os.File
	customOrder   []string
	redirectInput bool
	ioWG          sync.WaitGroup
	ioDone        chan struct{}
	exitCh        chan struct{}

	detach     bool
	startTicks uint64 // start time in /proc (clock ticks after boot), 0 if unknown
	// The markers of its environment (GAFFER_INSTANCE, GAFFER_PID): its
	// descendants carry them too. An adopted process keeps the ones of
	// the gafferd that spawned it.
	markInst, markID string

	// Guarded by the Manager's mutex.
	registered bool // in the manager's tables (a spawn registers after its fork)
	stopping   bool
	released   bool // detached, left running by Shutdown
	stopTimer  *time.Timer
	graceful   time.Duration
	exited     bool
	exitStatus int
	termSignal int
	exitedAt   time.Time
	// pidfd names the OS process for good (Linux 5.3+; -1: none): a
	// signal through it can never reach a process that reused the pid.
	// Closed once the exit is handled; used only with the Manager's
	// mutex held, so that it is never used after the close.
	pidfd int
	// adopted: not our child but a detached process of an earlier
	// gafferd (leftovers.go); its exit is seen through pidf.
	adopted bool
	pidf    *os.File
	// cg is the process's cgroup (cgroup_linux.go), nil without one; set
	// at spawn (or adoption) and never changed.
	cg *cgLeaf

	statsMu  sync.Mutex
	lastCPU  float64 // seconds
	lastWall time.Time

	lc *procLife // kept-alive: readiness, health (lifecycle.go); guarded by the Manager's mutex
}

// Streams returns the labels of the process's readable streams: the
// redirect_output labels first, then the custom streams.
func (p *Process) Streams() []string {
	out := append([]string(nil), p.outLabels...)
	if len(out) == 2 && out[0] == out[1] {
		out = out[:1]
	}
	return append(out, p.customOrder...)
}

// Stream returns the output stream with the given label; "" means the
// first redirect_output label.
func (p *Process) Stream(label string) (*Stream, bool) {
	if label == "" {
		if len(p.outLabels) == 0 {
			return nil, false
		}
		label = p.outLabels[0]
	}
	s, ok := p.streams[label]
	return s, ok
}

// HasStdin reports whether the process has a stdin pipe.
func (p *Process) HasStdin() bool { return p.stdin != nil }

// IsCustomStream reports whether label is one of the custom streams.
func (p *Process) IsCustomStream(label string) bool { _, ok := p.custom[label]; return ok }

// IODone is closed when every output pipe of the process reached EOF.
func (p *Process) IODone() <-chan struct{} { return p.ioDone }

// Exited is closed when the OS process has exited and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.exitCh }

// spawnSpec is everything needed to start one process.
type spawnSpec struct {
	id       int
	job      string
	cfg      *JobConfig
	env      map[string]string // manager-level env given at load
	extraEnv map[string]string // commit env
	once     bool
	instance string
	ringSize int
	onOutput func(p *Process, label string, data []byte)
	log      *slog.Logger
	// Containment (prepareSpawnLocked): the cgroup root, and copies of
	// the job's sockets with their names, closed once forked.
	cg        *cgRoot
	socks     []*os.File
	sockNames []string
	sockErr   error
	// watchdogPID: the child gets WATCHDOG_PID, its own pid (set by the
	// shim, which execs in place), with its WATCHDOG_USEC (openNotify).
	watchdogPID bool
}

var devNull struct {
	once sync.Once
	f    *os.File
	err  error
}

func openDevNull() (*os.File, error) {
	devNull.once.Do(func() { devNull.f, devNull.err = os.OpenFile(os.DevNull, os.O_RDWR, 0) })
	return devNull.f, devNull.err
}

// buildEnv computes the child environment: gafferd's own (with os_env),
// then the job's env over it, the load-time env, the commit env, and the
// GAFFER_* markers.
func buildEnv(s *spawnSpec) map[string]string {
	env := map[string]string{}
	if s.cfg.OSEnv {
		for _, kv := range os.Environ() {
			if i := strings.IndexByte(kv, '='); i > 0 && !isListenVar(kv[:i]) && !isNotifyVar(kv[:i]) {
				env[kv[:i]] = kv[i+1:]
			}
		}
	}
	for _, m := range []map[string]string{s.cfg.Env, s.env, s.extraEnv} {
		for k, v := range m {
			env[k] = v
		}
	}
	env["GAFFER_JOB"] = s.job
	env["GAFFER_PID"] = strconv.Itoa(s.id)
	env[markerVar] = s.instance
	delete(env, shimEnv) // only the shim's own environment holds it
	return env
}

// markerVar is set in every child's environment to gafferd's instance id,
// so that descendants that escaped the process group can be recognised
// through /proc/<pid>/environ.
const markerVar = "GAFFER_INSTANCE"

// buildCommand returns the executable path and argv for the job (reference
// §6.2 with its Recommended fixes).
func buildCommand(cfg *JobConfig, env map[string]string) (path string, argv []string, err error) {
	if cfg.Shell {
		line := cfg.Cmd
		for _, a := range cfg.Args {
			line += " " + shellQuote(a)
		}
		return "/bin/sh", []string{"sh", "-c", line}, nil
	}
	words, err := SplitCommandLine(cfg.Cmd)
	if err != nil {
		return "", nil, errBadRequest("cmd: %v", err)
	}
	if len(words) == 0 {
		return "", nil, errBadRequest("cmd: the command line is empty")
	}
	words = append(words, cfg.Args...)
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for i, w := range words {
		if words[i], err = ExpandVars(w, lookup); err != nil {
			return "", nil, Errorf(CodeSpawnFailed, 400, "%s: %v", cfg.Name, err)
		}
	}
	path, err = lookExec(words[0], env, cfg.Cwd)
	if err != nil {
		return "", nil, err
	}
	return path, words, nil
}

// lookExec finds the executable: a name with a '/' is taken relative to
// cwd; a bare name is searched in the child's PATH, else gafferd's PATH,
// else the default search path.
func lookExec(name string, env map[string]string, cwd string) (string, error) {
	check := func(p string) error {
		full := p
		if !filepath.IsAbs(full) && cwd != "" {
			full = filepath.Join(cwd, full)
		}
		st, err := os.Stat(full)
		if err != nil {
			return err
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable file", full)
		}
		return nil
	}
	if strings.Contains(name, "/") {
		if err := check(name); err != nil {
			return "", Errorf(CodeSpawnFailed, 400, "cannot run %q: %v", name, err)
		}
		return name, nil
	}
	path, ok := env["PATH"]
	if !ok {
		path = os.Getenv("PATH")
	}
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if check(p) == nil {
			if !filepath.IsAbs(p) && cwd != "" {
				p = filepath.Join(cwd, p)
			}
			return p, nil
		}
	}
	return "", Errorf(CodeSpawnFailed, 400, "cannot run %q: not found in PATH %s", name, path)
}

// resolveIDs turns uid/gid names or numbers into numeric ids.
func resolveIDs(cfg *JobConfig) (uid, gid *int, err error) {
	if cfg.UID != "" {
		n, err := strconv.Atoi(cfg.UID)
		if err != nil {
			u, lerr := user.Lookup(cfg.UID)
			if lerr != nil {
				return nil, nil, Errorf(CodeSpawnFailed, 400, "uid: unknown user %q", cfg.UID)
			}
			n, _ = strconv.Atoi(u.Uid)
			if cfg.GID == "" {
				g, _ := strconv.Atoi(u.Gid)
				gid = &g
			}
		}
		uid = &n
	}
	if cfg.GID != "" {
		n, err := strconv.Atoi(cfg.GID)
		if err != nil {
			g, lerr := user.LookupGroup(cfg.GID)
			if lerr != nil {
				return nil, nil, Errorf(CodeSpawnFailed, 400, "gid: unknown group %q", cfg.GID)
			}
			n, _ = strconv.Atoi(g.Gid)
		}
		gid = &n
	}
	return uid, gid, nil
}

// spawnProcess starts the OS process. onExit is called by the reaper. It
// runs without the Manager's lock: the PATH lookup, the user lookup and
// the fork may block.
func spawnProcess(s *spawnSpec, onExit func(*Process, syscall.WaitStatus)) (*Process, error) {
	defer closeFiles(s.socks) // the child has its own copies once forked
	cfg := s.cfg
	env := buildEnv(s)
	path, argv, err := buildCommand(cfg, env)
	if err != nil {
		return nil, err
	}
	uid, gid, err := resolveIDs(cfg)
	if err != nil {
		return nil, err
	}
	if s.sockErr != nil {
		return nil, Errorf(CodeSpawnFailed, 500, "%v", s.sockErr)
	}
	if len(s.socks) > 0 || len(s.sockNames) > 0 {
		listenEnv(env, s.sockNames)
	}
	p := &Process{
		ID: s.id, Job: s.job, Once: s.once, Cmd: argv[0], Args: argv[1:], Env: env,
		UID: uid, GID: gid, Cwd: cfg.Cwd, streams: map[string]*Stream{}, custom: map[string]*os.File{},
		ioDone: make(chan struct{}), exitCh: make(chan struct{}), detach: cfg.Detach,
		markInst: s.instance, markID: strconv.Itoa(s.id), pidfd: -1,
	}
	null, err := openDevNull()
	if err != nil {
		return nil, err
	}
	var childEnds, parentReads []*os.File
	fail := func(err error) (*Process, error) {
		closeFiles(childEnds)
		closeFiles(parentReads)
		if p.stdin != nil {
			p.stdin.Close()
		}
		for _, f := range p.custom {
			f.Close()
		}
		if p.cg != nil {
			p.cg.remove()
		}
		return nil, err
	}
	// fds 0-2, then the job's sockets from fd 3 (sd_listen_fds), then
	// the custom streams.
	files := []uintptr{null.Fd(), null.Fd(), null.Fd()}
	for _, f := range s.socks {
		files = append(files, f.Fd())
	}
	type reader struct {
		label string
		f     *os.File
	}
	var readers []reader
	if cfg.Detach {
		// A detached process outlives gafferd: no pipe to gafferd (it
		// would get EPIPE or SIGPIPE once gafferd is gone). Its output
		// goes to its log files, written by the process itself, or to
		// /dev/null.
		for i, path := range detachedLogs(cfg) {
			if path == "" {
				continue
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				return fail(Errorf(CodeSpawnFailed, 400, "%s: log file: %v", cfg.Name, err))
			}
			childEnds = append(childEnds, f)
			files[1+i] = f.Fd()
		}
	} else {
		p.outLabels = append([]string(nil), cfg.RedirectOutput...)
		p.redirectInput = cfg.RedirectInput
		if cfg.RedirectInput {
			r, w, err := os.Pipe()
			if err != nil {
				return fail(err)
			}
			childEnds = append(childEnds, r)
			p.stdin = w
			files[0] = r.Fd()
		}
		for i, label := range cfg.RedirectOutput {
			if i == 1 && label == cfg.RedirectOutput[0] {
				files[2] = files[1] // merged: one pipe, order kept
				continue
			}
			r, w, err := os.Pipe()
			if err != nil {
				return fail(err)
			}
			childEnds = append(childEnds, w)
			parentReads = append(parentReads, r)
			files[1+i] = w.Fd()
			readers = append(readers, reader{label, r})
		}
		for _, label := range cfg.CustomStreams {
			fds, err := socketPair()
			if err != nil {
				return fail(err)
			}
			parent := os.NewFile(uintptr(fds[0]), "custom:"+label)
			child := os.NewFile(uintptr(fds[1]), "custom-child:"+label)
			childEnds = append(childEnds, child)
			p.custom[label] = parent
			p.customOrder = append(p.customOrder, label)
			files = append(files, child.Fd())
			readers = append(readers, reader{label, parent})
		}
	}
	if s.cg != nil {
		lim := jobCgLimits(cfg)
		if p.cg, err = s.cg.newLeaf(s.instance, p.markID, s.job, lim, cfg.Detach); err != nil {
			if lim != (cgLimits{}) {
				return fail(Errorf(CodeSpawnFailed, 500, "%s: %v", cfg.Name, err))
			}
			// Without limits a process is still contained by its group
			// and its markers, as on a machine without cgroups.
			s.log.Warn("cannot make the cgroup of a process; it runs without one", "job", s.job, "err", err)
			p.cg = nil
		}
	}
	envList := make([]string, 0, len(env)+1)
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	sort.Strings(envList)
	pidfd := -1
	var pid int
	var shimErr *os.File
	for attempt := 0; ; attempt++ {
		x, err := prepareExec(s, p.cg, path, argv, envList, files, uid, gid, &pidfd)
		if err != nil {
			return fail(Errorf(CodeSpawnFailed, 500, "cannot start %q: %v", path, err))
		}
		attr := &syscall.ProcAttr{Dir: cfg.Cwd, Env: x.env, Files: x.files, Sys: x.sys}
		theSpawner.do(func() {
			pid, err = theReaper.spawn(func() (int, error) {
				return syscall.ForkExec(x.path, x.argv, attr)
			}, func(ws syscall.WaitStatus) {
				onExit(p, ws)
				if p.cg != nil && len(p.cg.procs()) == 0 {
					p.cg.remove()
				}
			})
		})
		x.closeChildEnds()
		if err != nil && x.cgfd >= 0 && attempt == 0 && cloneIntoUnsupported(err) {
			// No CLONE_INTO_CGROUP here (Linux < 5.7): the shim enters
			// the cgroup from now on.
			s.cg.noClone.Store(true)
			x.closeShim()
			continue
		}
		if err != nil {
			x.closeShim()
			return fail(Errorf(CodeSpawnFailed, 400, "cannot start %q: %v", path, err))
		}
		shimErr = x.shimRead
		break
	}
	if shimErr != nil {
		err := waitShim(shimErr)
		shimErr.Close()
		if err != nil {
			if pidfd >= 0 {
				pidfdSignal(pidfd, syscall.SIGKILL) // a shim that did not start the command in time
				closeFD(pidfd)
			}
			return fail(Errorf(CodeSpawnFailed, 400, "cannot start %q: %v", path, err))
		}
	}
	p.pidfd = pidfd
	p.OSPid = pid
	if shimErr != nil && len(s.socks) > 0 {
		p.Env["LISTEN_PID"] = strconv.Itoa(pid)
	}
	if shimErr != nil && s.watchdogPID {
		p.Env["WATCHDOG_PID"] = strconv.Itoa(pid)
	}
	p.Created = time.Now()
	p.lastWall = p.Created
	if st, ok := readProcStat(pid); ok {
		p.startTicks = st.startTime
	}
	closeFiles(childEnds)
	for _, rd := range readers {
		st := NewStream(rd.label, s.ringSize)
		p.streams[rd.label] = st
		p.ioWG.Add(1)
		go p.readLoop(rd.f, st, s.onOutput, s.log)
	}
	go func() {
		p.ioWG.Wait()
		close(p.ioDone)
	}()
	return p, nil
}

// detachedLogs returns the files a detached process writes its stdout
// and stderr to ("" for /dev/null).
func detachedLogs(cfg *JobConfig) [2]string {
	out, errs := cfg.StdoutLogfile, cfg.StderrLogfile
	if out == "" {
		out = cfg.Logfile
	}
	if errs == "" {
		errs = cfg.Logfile
	}
	return [2]string{out, errs}
}

// readBufPool holds the read buffers: a pipe reader takes one only while
// data is ready, so a thousand idle processes hold no buffer at all.
var readBufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// readLoop drains one output pipe until EOF, whatever the subscribers do.
// A panic of the ring, a sink or the output hook is logged with its stack
// and the loop goes on draining: the process stays supervised.
func (p *Process) readLoop(f *os.File, st *Stream, onOutput func(*Process, string, []byte), log *slog.Logger) {
	defer p.ioWG.Done()
	defer st.Close()
	defer f.Close()
	guard := &outputGuard{log: log, pid: p.ID, job: p.Job, label: st.Label}
	if onOutput != nil {
		defer guard.call(func() { onOutput(p, st.Label, nil) }) // end of this writer's output
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			buf := readBufPool.Get().(*[]byte)
			for {
				n, rerr = syscall.Read(int(fd), *buf)
				if rerr != syscall.EINTR {
					break
				}
			}
			if rerr == syscall.EAGAIN {
				readBufPool.Put(buf)
				return false
			}
			if n > 0 {
				data := (*buf)[:n]
				guard.call(func() { st.Write(data) })
				if onOutput != nil {
					guard.call(func() { onOutput(p, st.Label, data) })
				}
			}
			readBufPool.Put(buf)
			return true
		})
		if err != nil || n <= 0 || (rerr != nil && !errors.Is(rerr, syscall.EAGAIN)) {
			return
		}
	}
}

// outputGuard runs the consumers of a pipe's output and turns their
// panics into log lines: the first with its stack, then at most one a
// minute with the count.
type outputGuard struct {
	log      *slog.Logger
	pid      int
	job      string
	label    string
	panics   int
	lastLog  time.Time
	unlogged int
}

func (g *outputGuard) call(fn func()) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		g.panics++
		log := g.log
		if log == nil {
			log = slog.Default()
		}
		now := time.Now()
		if g.panics == 1 {
			log.Error("panic in an output consumer; output keeps being drained", "job", g.job, "pid", g.pid,
				"stream", g.label, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			g.lastLog = now
			return
		}
		g.unlogged++
		if now.Sub(g.lastLog) >= time.Minute {
			log.Error("more panics in an output consumer", "job", g.job, "pid", g.pid, "stream", g.label,
				"count", g.unlogged, "last", fmt.Sprint(v))
			g.lastLog, g.unlogged = now, 0
		}
	}()
	fn()
}
