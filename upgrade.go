package gaffer

// Upgrading gafferd in place (SIGUSR2, POST /upgrade, gaffer upgrade):
// gafferd re-executes its own binary (the path it was started from, so
// that a new build at that path replaces the old one) without stopping
// anything it supervises.
//
//  1. The new binary is checked first: it runs as "<exe> --upgrade-check
//     <gafferd's arguments>", which reads the configuration and must
//     print upgradeProtocol; anything else refuses the upgrade and the
//     running gafferd goes on.
//  2. The manager is frozen (freeze): no spawn in flight or queued, no
//     process stopping, no exit half handled, no stdin write under way;
//     then every output pipe's reader is paused (a read deadline in the
//     past: the read under way ends, what the process writes next stays
//     in the pipe for the new instance, so no line is lost or read twice).
//  3. The state is written to a memfd as JSON (upgradeDoc): the instance
//     id, internal pids, restart counts, job configs, the rings of every
//     stream with their sequence numbers, and the descriptors passed on
//     (close-on-exec cleared, named by number): the API listeners, the
//     job sockets, the data directory's lock, every pipe and custom
//     stream, adopted processes' pidfds. GAFFER_UPGRADE_FD names the memfd.
//  4. execve runs on the spawner's thread (spawner.go), the parent of
//     every child: that thread survives as the new process's main thread,
//     so no child gets its death signal, and the children stay children
//     of gafferd (same pid). If execve fails, the readers resume and the
//     error is reported.
//  5. The new instance (restoreHandoff) takes the same instance id (same
//     markers, same cgroups: nothing is taken for a leftover), keeps the
//     lock, adopts the listeners, rebuilds the jobs and processes, reaps
//     its children with wait4 and reads the pipes on.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// upgradeProtocol is the version of the handoff; the new binary's
// --upgrade-check prints it.
const upgradeProtocol = "gaffer-upgrade-protocol 1"

// upgradeEnv names the descriptor of the handoff in the new instance.
const upgradeEnv = "GAFFER_UPGRADE_FD"

// Bounds of an upgrade.
const (
	upgradeFreezeWait = 30 * time.Second // for spawns, stops and exits under way to end
	upgradePauseWait  = 10 * time.Second // for the readers to pause
	upgradeCheckWait  = 30 * time.Second // for the new binary's check
)

// upgradeCount is the number of upgrades this gafferd went through (GET /
// reports it: a client sees an upgrade done when it grows).
var upgradeCount atomic.Int64

// upgradeMu serialises the upgrades.
var upgradeMu sync.Mutex

// upgradeDoc is the handoff.
type upgradeDoc struct {
	Protocol   string             `json:"protocol"`
	Instance   string             `json:"instance"`
	NextPID    int                `json:"next_pid"`
	Gen        uint64             `json:"gen"`
	BusSeq     uint64             `json:"bus_seq"`
	Upgrades   int64              `json:"upgrades"`
	LockFD     int                `json:"lock_fd"` // -1: no data directory
	Listeners  []upListener       `json:"listeners"`
	Sockets    []upSocket         `json:"sockets"`
	SocketJobs map[string][]upRef `json:"socket_jobs"`
	FileJobs   []upSessionJob     `json:"file_jobs"`
	Sessions   []upSession        `json:"sessions"`
	CgMoved    bool               `json:"cg_moved"`
}

type upListener struct {
	Bind string `json:"bind"`
	FD   int    `json:"fd"`
}

type upSocket struct {
	Spec string `json:"spec"`
	FD   int    `json:"fd"`
	Refs int    `json:"refs"`
	Dev  uint64 `json:"dev"`
	Ino  uint64 `json:"ino"`
}

type upRef struct {
	Key  string `json:"key"`
	Name string `json:"name"`
}

type upSessionJob struct {
	Session    string         `json:"session"`
	Config     map[string]any `json:"config"`
	GracefulNS int64          `json:"graceful_ns"`
}

type upSession struct {
	ID   string  `json:"id"`
	Jobs []upJob `json:"jobs"`
}

type upJob struct {
	Job         upSessionJob      `json:"job"`
	Env         map[string]string `json:"env"`
	Target      int               `json:"target"`
	State       string            `json:"state"`
	Restarts    int               `json:"restarts"`
	Flaps       int               `json:"flaps"`
	LastExit    *int              `json:"last_exit"`
	LastExitRec *ExitRecord       `json:"last_exit_rec"`
	SpawnErr    string            `json:"spawn_err"`
	Procs       []upProc          `json:"procs"`
	Commits     []upProc          `json:"commits"`
}

type upProc struct {
	ID            int               `json:"id"`
	OSPid         int               `json:"os_pid"`
	Once          bool              `json:"once"`
	Cmd           string            `json:"cmd"`
	Args          []string          `json:"args"`
	Env           map[string]string `json:"env"`
	UID           *int              `json:"uid"`
	GID           *int              `json:"gid"`
	Cwd           string            `json:"cwd"`
	Created       time.Time         `json:"created"`
	OutLabels     []string          `json:"out_labels"`
	RedirectInput bool              `json:"redirect_input"`
	Detach        bool              `json:"detach"`
	StartTicks    uint64            `json:"start_ticks"`
	MarkInst      string            `json:"mark_inst"`
	MarkID        string            `json:"mark_id"`
	GracefulNS    int64             `json:"graceful_ns"`
	Adopted       bool              `json:"adopted"`
	PidfFD        int               `json:"pidf_fd"` // adopted: its pidfd; else -1
	StdinFD       int               `json:"stdin_fd"`
	Custom        []upStreamFD      `json:"custom"`
	Streams       []upStream        `json:"streams"`
	Cg            *upLeaf           `json:"cg"`
}

type upStreamFD struct {
	Label string `json:"label"`
	FD    int    `json:"fd"`
}

// upStream is one stream: its ring (chunks numbered from Next-len), and
// the pipe its reader reads (-1 once it reached EOF).
type upStream struct {
	Label  string   `json:"label"`
	Next   uint64   `json:"next"`
	Chunks [][]byte `json:"chunks"`
	FD     int      `json:"fd"`
	Custom bool     `json:"custom"` // FD is the custom stream's socket
}

type upLeaf struct {
	V2   string            `json:"v2"`
	V1   map[string]string `json:"v1"`
	Stop string            `json:"stop"`
}

// outPipe is one output pipe of a process and its reader.
type outPipe struct {
	f        *os.File
	st       *Stream
	onOutput func(*Process, string, []byte)
	log      *slog.Logger
	pausing  atomic.Bool   // an upgrade stops the reader
	stopped  chan struct{} // closed when the reader returns
	handed   bool          // it returned for the pause, not at EOF (read after stopped)
}

// startPipe starts the reader of one output pipe.
func (p *Process) startPipe(pp *outPipe) {
	pp.stopped = make(chan struct{})
	p.pipes = append(p.pipes, pp)
	p.ioWG.Add(1)
	go p.readLoop(pp)
}

// resume restarts a paused reader (an upgrade that failed).
func (pp *outPipe) resume(p *Process) {
	pp.pausing.Store(false)
	pp.handed = false
	pp.f.SetReadDeadline(time.Time{})
	pp.stopped = make(chan struct{})
	go p.readLoop(pp)
}

// upgradeListeners are the API listeners, by bind string, for the next
// instance; inherited ones are taken by the first Listen of their bind.
var upgradeListeners struct {
	sync.Mutex
	live      map[string]net.Listener
	inherited map[string]net.Listener
}

// upgradeListen returns the listener inherited for bind, else calls
// listen, and records the listener for an upgrade.
func upgradeListen(bind string, listen func() (net.Listener, error)) (net.Listener, error) {
	upgradeListeners.Lock()
	l := upgradeListeners.inherited[bind]
	delete(upgradeListeners.inherited, bind)
	upgradeListeners.Unlock()
	if l == nil {
		var err error
		if l, err = listen(); err != nil {
			return nil, err
		}
	} else if ul, ok := l.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(true) // as listenUnix made it
	}
	upgradeListeners.Lock()
	if upgradeListeners.live == nil {
		upgradeListeners.live = map[string]net.Listener{}
	}
	upgradeListeners.live[bind] = l
	upgradeListeners.Unlock()
	return l, nil
}

// UpgradeCheck is gafferd's --upgrade-check: it reads the configuration
// as gafferd would and prints the handoff protocol this binary speaks. A
// gafferd that upgrades runs it first with the new binary.
func UpgradeCheck(configPath string, stdout io.Writer) error {
	if configPath != "" {
		if _, err := LoadConfig(configPath); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "%s (gafferd %s)\n", upgradeProtocol, Version)
	return nil
}

// checkUpgradeBinary runs the new binary's --upgrade-check with
// gafferd's own arguments.
func checkUpgradeBinary(exe string) error {
	ctx, cancel := context.WithTimeout(context.Background(), upgradeCheckWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, append([]string{"--upgrade-check"}, os.Args[1:]...)...)
	cmd.Env = withoutEnv(os.Environ(), upgradeEnv)
	out, err := cmd.CombinedOutput()
	text := strings.TrimSpace(string(out))
	if len(text) > 500 {
		text = text[:500] + "…"
	}
	if err != nil {
		if text != "" {
			err = fmt.Errorf("%v: %s", err, text)
		}
		return Errorf(CodeUnavailable, 503, "upgrade refused: the new binary %s failed its check (%v); the running gafferd goes on", exe, err)
	}
	if !strings.Contains(text, upgradeProtocol) {
		return Errorf(CodeUnavailable, 503, "upgrade refused: the new binary %s does not speak %q (its check said %q); the running gafferd goes on",
			exe, upgradeProtocol, text)
	}
	return nil
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// upgrade checks the new binary and, when it passes, hands over and
// re-executes it; it returns only when the upgrade did not happen.
// started, when set, is called once the check passed, before the freeze.
func (d *Daemon) upgrade(started func()) (err error) {
	defer func() {
		if err != nil {
			d.log.Error("upgrade did not happen; the running gafferd goes on", "err", err)
		}
	}()
	if !upgradeMu.TryLock() {
		return Errorf(CodeConflict, 409, "an upgrade is already under way")
	}
	defer upgradeMu.Unlock()
	if err := upgradeSupported(); err != nil {
		return err
	}
	if d.Manager == nil {
		return Errorf(CodeUnavailable, 503, "gafferd is not running yet")
	}
	if err := checkUpgradeBinary(selfExe); err != nil {
		return err
	}
	if started != nil {
		started()
	}
	d.log.Info("upgrading: handing over to the new binary", "exe", selfExe)
	fr, err := d.Manager.freeze()
	if err != nil {
		return err
	}
	err = d.handOver(fr)
	fr.thaw()
	return err
}

// handleUpgrade serves POST /upgrade (admin only): 202 once the new
// binary passed its check; the exec follows.
func (s *Server) handleUpgrade(w http.ResponseWriter, r *http.Request) {
	if !allow(w, caller(r).IsAdmin()) {
		return
	}
	if s.upgrade == nil {
		writeError(w, Errorf(CodeUnavailable, 503, "this server cannot upgrade in place (not gafferd)"))
		return
	}
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- s.upgrade(func() {
			close(ready)
			<-r.Context().Done() // the answer is out (or the client left) before the freeze
		})
	}()
	select {
	case err := <-errc:
		writeError(w, err)
	case <-ready:
		w.Header().Set("Connection", "close") // this connection ends with the exec
		writeJSON(w, 202, map[string]any{"upgrading": true, "upgrades": upgradeCount.Load(), "exe": selfExe})
		http.NewResponseController(w).Flush()
	}
}

// frozen is a manager frozen for an upgrade: its mutex, the reaper's and
// every process's stdin lock are held, the readers paused.
type frozen struct {
	m        *Manager
	procs    []*Process
	releases []func() // the writes' turns held (tryHoldWrites)
	paused   []*outPipe
}

// busyLocked says what an upgrade must wait for ("" for nothing).
func (m *Manager) busyLocked() string {
	switch {
	case m.shutdown:
		return "gafferd is shutting down"
	case m.inflight > 0:
		return "a spawn is under way"
	case len(m.stopping) > 0:
		return "processes are stopping"
	case len(m.adoptable) > 0:
		return "detached processes of a previous gafferd wait for their job"
	}
	for _, s := range m.sessions {
		for _, j := range s.jobs {
			if len(j.queue) > 0 || j.working {
				return "spawns are queued for " + j.full
			}
		}
	}
	return ""
}

// freeze waits (bounded) until nothing is under way, then holds the
// manager and pauses the readers.
func (m *Manager) freeze() (*frozen, error) {
	deadline := time.Now().Add(upgradeFreezeWait)
	for {
		m.mu.Lock()
		why := m.busyLocked()
		if why == "" {
			theReaper.mu.Lock()
			if theReaper.calling > 0 {
				why = "exits are being handled"
			} else if fr, ok := m.lockWriters(); ok {
				if err := fr.pause(); err != nil {
					fr.thaw()
					return nil, err
				}
				return fr, nil
			} else {
				why = "a write to a process's stdin is under way"
			}
			theReaper.mu.Unlock()
		}
		m.mu.Unlock()
		if time.Now().After(deadline) {
			return nil, Errorf(CodeConflict, 409, "upgrade refused: %s (waited %s); try again", why, upgradeFreezeWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockWriters takes every process's stdin lock (all or none).
func (m *Manager) lockWriters() (*frozen, bool) {
	fr := &frozen{m: m}
	for _, p := range m.procs {
		release, ok := p.tryHoldWrites()
		if !ok {
			for _, r := range fr.releases {
				r()
			}
			return nil, false
		}
		fr.procs = append(fr.procs, p)
		fr.releases = append(fr.releases, release)
	}
	return fr, true
}

// pause stops every reader; what was read is in the rings.
func (fr *frozen) pause() error {
	var pipes []*outPipe
	for _, p := range fr.procs {
		for _, pp := range p.pipes {
			select {
			case <-pp.stopped:
				continue // at EOF already
			default:
			}
			pp.pausing.Store(true)
			if err := pp.f.SetReadDeadline(time.Unix(1, 0)); err != nil {
				pp.pausing.Store(false)
				fr.paused = pipes
				return fmt.Errorf("upgrade refused: process %d's %s pipe cannot be paused: %v", p.ID, pp.st.Label, err)
			}
			pipes = append(pipes, pp)
		}
	}
	fr.paused = pipes
	timeout := time.After(upgradePauseWait)
	for _, pp := range pipes {
		select {
		case <-pp.stopped:
		case <-timeout:
			return fmt.Errorf("upgrade refused: a reader of %s did not pause within %s", pp.st.Label, upgradePauseWait)
		}
	}
	return nil
}

// thaw resumes the paused readers and releases the locks (the upgrade
// did not happen).
func (fr *frozen) thaw() {
	byPipe := map[*outPipe]*Process{}
	for _, p := range fr.procs {
		for _, pp := range p.pipes {
			byPipe[pp] = p
		}
	}
	for _, pp := range fr.paused {
		<-pp.stopped
		if pp.handed {
			pp.resume(byPipe[pp])
		} else {
			pp.pausing.Store(false)
		}
	}
	for _, r := range fr.releases {
		r()
	}
	theReaper.mu.Unlock()
	fr.m.mu.Unlock()
	theReaper.poke() // exits that came meanwhile
}

// handOver writes the state and execs the new binary; it returns only if
// the exec failed.
func (d *Daemon) handOver(fr *frozen) error {
	m := fr.m
	var fds fdList
	doc := &upgradeDoc{Protocol: upgradeProtocol, Instance: m.instance, NextPID: m.nextPID, Gen: m.gen,
		Upgrades: upgradeCount.Load() + 1, LockFD: -1, SocketJobs: map[string][]upRef{}}
	m.bus.mu.Lock()
	doc.BusSeq = m.bus.seq
	m.bus.mu.Unlock()
	if m.ledger != nil {
		doc.LockFD = fds.add(m.ledger.dir)
	}
	doc.CgMoved = cgMoved(m.contain.cg)
	upgradeListeners.Lock()
	for bind, l := range upgradeListeners.live {
		if sc, ok := l.(syscall.Conn); ok {
			doc.Listeners = append(doc.Listeners, upListener{Bind: bind, FD: fds.addConn(sc)})
		}
	}
	upgradeListeners.Unlock()
	for _, b := range m.contain.sockets.bound {
		doc.Sockets = append(doc.Sockets, upSocket{Spec: b.spec.String(), FD: fds.add(b.f), Refs: b.refs, Dev: b.dev, Ino: b.ino})
	}
	for full, held := range m.contain.sockets.jobs {
		for _, h := range held {
			doc.SocketJobs[full] = append(doc.SocketJobs[full], upRef{Key: h.b.spec.key(), Name: h.name})
		}
	}
	d.mu.Lock()
	for _, sj := range d.fileJobs {
		doc.FileJobs = append(doc.FileJobs, sessionJobDoc(sj.Session, sj.Config))
	}
	d.mu.Unlock()
	for _, sid := range m.sessionOrder {
		s := m.sessions[sid]
		us := upSession{ID: sid}
		for _, name := range s.order {
			j := s.jobs[name]
			uj := upJob{Job: sessionJobDoc(sid, j.cfg), Env: j.env, Target: j.target, State: j.state,
				Restarts: j.restarts, Flaps: j.flaps, LastExit: j.lastExit, LastExitRec: j.lastExitRec, SpawnErr: j.spawnErr}
			for _, p := range j.procs {
				uj.Procs = append(uj.Procs, procDoc(p, &fds))
			}
			for _, p := range j.commits {
				uj.Commits = append(uj.Commits, procDoc(p, &fds))
			}
			us.Jobs = append(us.Jobs, uj)
		}
		doc.Sessions = append(doc.Sessions, us)
	}
	if fds.err != nil {
		fds.restore()
		return fmt.Errorf("upgrade: %v", fds.err)
	}
	err := execUpgrade(doc, &fds)
	fds.restore()
	return err
}

func sessionJobDoc(sid string, cfg JobConfig) upSessionJob {
	return upSessionJob{Session: sid, Config: cfg.Map(true), GracefulNS: int64(cfg.GracefulTimeout)}
}

func (u upSessionJob) config() (JobConfig, error) {
	cfg, err := JobConfigFromMap(u.Config)
	if err != nil {
		return cfg, err
	}
	cfg.GracefulTimeout = time.Duration(u.GracefulNS)
	return cfg, nil
}

// procDoc describes a process and adds its descriptors to fds.
func procDoc(p *Process, fds *fdList) upProc {
	u := upProc{ID: p.ID, OSPid: p.OSPid, Once: p.Once, Cmd: p.Cmd, Args: p.Args, Env: p.Env, UID: p.UID, GID: p.GID,
		Cwd: p.Cwd, Created: p.Created, OutLabels: p.outLabels, RedirectInput: p.redirectInput, Detach: p.detach,
		StartTicks: p.startTicks, MarkInst: p.markInst, MarkID: p.markID, GracefulNS: int64(p.graceful),
		Adopted: p.adopted, PidfFD: -1, StdinFD: -1, Cg: leafDoc(p.cg)}
	if p.adopted && p.pidf != nil {
		u.PidfFD = fds.add(p.pidf)
	}
	if p.stdin != nil {
		u.StdinFD = fds.add(p.stdin)
	}
	for _, label := range p.customOrder {
		u.Custom = append(u.Custom, upStreamFD{Label: label, FD: fds.add(p.custom[label])})
	}
	piped := map[*Stream]*outPipe{}
	for _, pp := range p.pipes {
		piped[pp.st] = pp
	}
	for _, label := range p.Streams() {
		st := p.streams[label]
		if st == nil {
			continue
		}
		us := upStream{Label: label, FD: -1}
		us.Next, us.Chunks = st.handoff()
		if pp := piped[st]; pp != nil && pp.handed {
			if f, ok := p.custom[label]; ok && f == pp.f {
				us.Custom = true
			} else {
				us.FD = fds.add(pp.f)
			}
		}
		u.Streams = append(u.Streams, us)
	}
	return u
}

// handoff returns the stream's next sequence number and the chunks it
// holds (the last ones, numbered up to next-1).
func (s *Stream) handoff() (uint64, [][]byte) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out [][]byte
	for _, rc := range s.chunks[s.head:] {
		out = append(out, rc.data())
	}
	return s.nextSeq, out
}

// fdList is the descriptors passed on, their close-on-exec flag cleared
// (restore sets it again when the exec failed).
type fdList struct {
	fds []int
	err error
}

func (l *fdList) add(f *os.File) int {
	if f == nil {
		return -1
	}
	return l.addConn(f)
}

func (l *fdList) addConn(c syscall.Conn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		l.err = errors.Join(l.err, err)
		return -1
	}
	n := -1
	if cerr := rc.Control(func(fd uintptr) {
		n = int(fd)
		err = setCloexec(n, false)
	}); cerr != nil || err != nil {
		l.err = errors.Join(l.err, cerr, err)
		return -1
	}
	l.fds = append(l.fds, n)
	return n
}

func (l *fdList) restore() {
	for _, fd := range l.fds {
		setCloexec(fd, true)
	}
}
