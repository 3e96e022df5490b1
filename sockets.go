package gaffer

// Sockets passed to a job's processes, as systemd's socket activation
// does (sd_listen_fds(3)): gafferd binds each listening socket of a job
// once, when the job loads, and every process of the job gets it at fd
// 3, 4, … (in the order of the job's sockets setting, before its
// custom_streams), with LISTEN_FDS (the count), LISTEN_FDNAMES (their
// names, ':'-separated) and LISTEN_PID (the process's own pid, set by the
// exec shim, execshim_linux.go, in the process itself before it execs
// the command). Processes of a job (numprocesses > 1) share the sockets:
// the kernel spreads the connections among the processes that accept.
// The sockets belong to the job, not to its processes: they stay open
// while processes stop, crash and restart, so clients wait in the
// kernel's accept queue instead of being refused. A socket is closed when
// no loaded job names it any more (unload, or an update that drops it).
//
// Two jobs that name the same address share one socket (the same
// listening socket, so a new version of a service can take over from the
// old one without a refused connection). A socket is identified by its
// network and address (socketSpec.key); its options (backlog, mode) must
// then agree.
//
// The sockets are blocking, as systemd passes them (NonBlocking=false):
// gafferd never accepts on them. They are close-on-exec in gafferd; the
// fork puts the job's at 3, 4, … in the child. An upgrade in place (a
// gafferd that re-executes itself) can hand them over: each is one fd
// and its key.
//
// The spec of one socket, as the sockets setting and the state file hold
// it:
//
//	[NAME=]tcp://HOST:PORT[?backlog=N]
//	[NAME=]udp://HOST:PORT
//	[NAME=]unix:PATH[?backlog=N&mode=0660]    (unix:@NAME: abstract)
//
// HOST is an IP address (IPv6 in brackets), localhost, or empty for every
// address. NAME (LISTEN_FDNAMES) defaults to the job's name, as systemd
// names a socket after its unit. In a configuration file, "@NAME" names a
// [socket:NAME] section (bind, backlog, mode), resolved when the file is
// read (configini.go).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// socketSpec is one listening socket of a job.
type socketSpec struct {
	name    string      // LISTEN_FDNAMES entry; "" for the job's name
	network string      // tcp, udp or unix
	addr    string      // host:port (normalised) or the unix path
	backlog int         // listen(2) backlog; 0: the kernel's maximum (somaxconn)
	mode    os.FileMode // unix socket file mode; 0: 0600
}

// Bounds of the socket settings.
const (
	socketMaxBacklog = 1 << 16
	maxJobSockets    = 64
)

// key identifies the socket: jobs that name the same key share it.
func (s socketSpec) key() string {
	if s.network == "unix" {
		return "unix:" + s.addr
	}
	return s.network + "://" + s.addr
}

// String is the spec in its canonical form (parseSocketSpec reads it).
func (s socketSpec) String() string {
	var b strings.Builder
	if s.name != "" {
		b.WriteString(s.name + "=")
	}
	b.WriteString(s.key())
	var opts []string
	if s.backlog > 0 {
		opts = append(opts, "backlog="+strconv.Itoa(s.backlog))
	}
	if s.mode != 0 {
		opts = append(opts, fmt.Sprintf("mode=%04o", uint32(s.mode)))
	}
	if len(opts) > 0 {
		b.WriteString("?" + strings.Join(opts, "&"))
	}
	return b.String()
}

// fdName is the socket's LISTEN_FDNAMES entry for a job named job.
func (s socketSpec) fdName(job string) string {
	if s.name != "" {
		return s.name
	}
	return job
}

// parseSocketSpec reads one spec (see the file's comment). "@NAME" is not
// a spec: the caller resolves it first.
func parseSocketSpec(text string) (socketSpec, error) {
	var s socketSpec
	t := strings.TrimSpace(text)
	if i := strings.Index(t, "="); i >= 0 && !strings.Contains(t[:i], ":") {
		s.name, t = t[:i], t[i+1:]
		if p := nameProblem(s.name, true); p != "" {
			return s, fmt.Errorf("socket name %s %s", quoteName(s.name), p)
		}
	}
	var opts string
	if i := strings.IndexByte(t, '?'); i >= 0 {
		t, opts = t[:i], t[i+1:]
	}
	switch {
	case strings.HasPrefix(t, "tcp://"), strings.HasPrefix(t, "udp://"):
		s.network = t[:3]
		addr, err := socketHostPort(t[6:])
		if err != nil {
			return s, fmt.Errorf("%s: %v", text, err)
		}
		s.addr = addr
	case strings.HasPrefix(t, "unix:"):
		s.network, s.addr = "unix", t[5:]
		if s.addr == "" || s.addr == "@" || strings.ContainsRune(s.addr, 0) {
			return s, fmt.Errorf("%s: unix: needs a path, as in unix:/run/app.sock (or unix:@name, abstract)", text)
		}
		if len(s.addr) > 107 {
			return s, fmt.Errorf("%s: a unix socket path is at most 107 bytes", text)
		}
		if s.addr[0] != '@' {
			s.addr = filepath.Clean(s.addr)
		}
	default:
		return s, fmt.Errorf("%q: expected tcp://HOST:PORT, udp://HOST:PORT or unix:PATH", text)
	}
	if opts != "" {
		for _, o := range strings.Split(opts, "&") {
			k, v, _ := strings.Cut(o, "=")
			switch k {
			case "backlog":
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > socketMaxBacklog || s.network == "udp" {
					return s, fmt.Errorf("%s: backlog: expected an integer from 1 to %d (tcp and unix only), got %q", text, socketMaxBacklog, v)
				}
				s.backlog = n
			case "mode":
				m, err := strconv.ParseUint(v, 8, 32)
				if err != nil || m == 0 || m > 0o777 || s.network != "unix" || s.addr[0] == '@' {
					return s, fmt.Errorf("%s: mode: expected an octal mode like 0660 (unix paths only), got %q", text, v)
				}
				s.mode = os.FileMode(m)
			default:
				return s, fmt.Errorf("%s: unknown option %q (want backlog, mode)", text, k)
			}
		}
	}
	return s, nil
}

// socketHostPort checks HOST:PORT: an IP address (IPv6 in brackets),
// localhost (127.0.0.1) or nothing (every address), and a port.
func socketHostPort(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("expected HOST:PORT (IPv6 in brackets), got %q", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("invalid port %q", port)
	}
	switch host {
	case "":
	case "localhost":
		host = "127.0.0.1"
	default:
		a, err := netip.ParseAddr(host)
		if err != nil || a.Zone() != "" {
			return "", fmt.Errorf("%q is not an IP address (write an address, not a host name)", host)
		}
		host = a.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// checkSocketSetting checks the sockets setting of a job (any source):
// every entry a spec or an @NAME reference, no address twice.
func checkSocketSetting(list []string) error {
	if len(list) > maxJobSockets {
		return errBadRequest("sockets: at most %d sockets per job, got %d", maxJobSockets, len(list))
	}
	seen := map[string]bool{}
	for _, e := range list {
		if ref, ok := strings.CutPrefix(strings.TrimSpace(e), "@"); ok {
			if p := nameProblem(ref, true); p != "" {
				return errBadRequest("sockets: @%s: the name %s", ref, p)
			}
			continue
		}
		s, err := parseSocketSpec(e)
		if err != nil {
			return errBadRequest("sockets: %v", err)
		}
		if seen[s.key()] {
			return errBadRequest("sockets: %s is listed twice", s.key())
		}
		seen[s.key()] = true
	}
	return nil
}

// boundSocket is one listening socket and the jobs that hold it.
type boundSocket struct {
	spec socketSpec
	f    *os.File
	refs int
	dev  uint64 // the unix socket file, removed at close if still ours
	ino  uint64
}

// heldSocket is one socket of a job, with its name for that job.
type heldSocket struct {
	b    *boundSocket
	name string
}

// socketTable holds the sockets of a manager's jobs (Manager's lock held).
type socketTable struct {
	bound map[string]*boundSocket // by key
	jobs  map[string][]heldSocket // by full job name, in the setting's order
}

// heldSocketKeys counts the sockets bound in this process by key, so that
// the configuration check (checkSocketsBindable) does not mistake a
// socket gafferd holds for one another program holds.
var heldSocketKeys struct {
	sync.Mutex
	n map[string]int
}

func noteHeldSocket(key string, delta int) {
	heldSocketKeys.Lock()
	defer heldSocketKeys.Unlock()
	if heldSocketKeys.n == nil {
		heldSocketKeys.n = map[string]int{}
	}
	heldSocketKeys.n[key] += delta
	if heldSocketKeys.n[key] <= 0 {
		delete(heldSocketKeys.n, key)
	}
}

func socketHeld(key string) bool {
	heldSocketKeys.Lock()
	defer heldSocketKeys.Unlock()
	return heldSocketKeys.n[key] > 0
}

// hold gives the job full (named job inside its session) the sockets of
// its setting: those already bound are shared, the others bound now. The
// sockets it held before and no longer names are released afterwards, so
// an unchanged socket is never closed. On error nothing changes.
func (t *socketTable) hold(full, job string, list []string) error {
	if t.bound == nil {
		t.bound, t.jobs = map[string]*boundSocket{}, map[string][]heldSocket{}
	}
	var held []heldSocket
	undo := func() {
		for _, h := range held {
			t.unref(h.b)
		}
	}
	for _, e := range list {
		if ref, ok := strings.CutPrefix(strings.TrimSpace(e), "@"); ok {
			undo()
			return errBadRequest("sockets: @%s names a [socket:%s] section, which only a configuration file has; "+
				"in JSON write the socket itself (tcp://HOST:PORT, unix:PATH)", ref, ref)
		}
		s, err := parseSocketSpec(e)
		if err != nil {
			undo()
			return errBadRequest("sockets: %v", err)
		}
		b := t.bound[s.key()]
		if b != nil {
			if b.spec.backlog != s.backlog || b.spec.mode != s.mode {
				undo()
				return Errorf(CodeConflict, 409, "sockets: %s is already bound with other options (%s); give it the same backlog and mode",
					s.key(), b.spec.String())
			}
		} else {
			f, dev, ino, err := bindSocket(s)
			if err != nil {
				undo()
				return Errorf(CodeSpawnFailed, 400, "sockets: cannot listen on %s: %v", s.key(), err)
			}
			b = &boundSocket{spec: s, f: f, dev: dev, ino: ino}
			b.spec.name = ""
			t.bound[s.key()] = b
			noteHeldSocket(s.key(), 1)
		}
		b.refs++
		held = append(held, heldSocket{b: b, name: s.fdName(job)})
	}
	old := t.jobs[full]
	if len(held) > 0 {
		t.jobs[full] = held
	} else {
		delete(t.jobs, full)
	}
	for _, h := range old {
		t.unref(h.b)
	}
	return nil
}

// release drops the sockets of a job (unloaded).
func (t *socketTable) release(full string) {
	old := t.jobs[full]
	delete(t.jobs, full)
	for _, h := range old {
		t.unref(h.b)
	}
}

func (t *socketTable) unref(b *boundSocket) {
	b.refs--
	if b.refs > 0 {
		return
	}
	delete(t.bound, b.spec.key())
	noteHeldSocket(b.spec.key(), -1)
	b.close()
}

// closeAll closes every socket (gafferd stopping).
func (t *socketTable) closeAll() {
	for _, b := range t.bound {
		noteHeldSocket(b.spec.key(), -1)
		b.close()
	}
	t.bound, t.jobs = nil, nil
}

// files returns copies of the job's sockets (close-on-exec; the caller
// closes them once the child has its own) and their names, in order.
func (t *socketTable) files(full string) ([]*os.File, []string, error) {
	held := t.jobs[full]
	var fs []*os.File
	var names []string
	for _, h := range held {
		fd, err := unix.FcntlInt(h.b.f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			for _, f := range fs {
				f.Close()
			}
			return nil, nil, fmt.Errorf("sockets: %s: %v", h.b.spec.key(), err)
		}
		fs = append(fs, os.NewFile(uintptr(fd), h.b.spec.key()))
		names = append(names, h.name)
	}
	return fs, names, nil
}

// close closes the socket and removes its unix socket file if the file is
// still the one it bound.
func (b *boundSocket) close() {
	b.f.Close()
	if b.spec.network == "unix" && b.spec.addr[0] != '@' {
		var st unix.Stat_t
		if unix.Lstat(b.spec.addr, &st) == nil && uint64(st.Dev) == b.dev && uint64(st.Ino) == b.ino {
			os.Remove(b.spec.addr)
		}
	}
}

// bindSocket binds and listens (tcp, unix) and returns a blocking,
// close-on-exec descriptor of the socket, with the device and inode of a
// unix socket's file.
func bindSocket(s socketSpec) (f *os.File, dev, ino uint64, err error) {
	var sc syscall.Conn
	var closer func() error
	switch s.network {
	case "tcp":
		l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", s.addr)
		if err != nil {
			return nil, 0, 0, err
		}
		sc, closer = l.(*net.TCPListener), l.Close
	case "udp":
		c, err := net.ListenPacket("udp", s.addr)
		if err != nil {
			return nil, 0, 0, err
		}
		sc, closer = c.(*net.UDPConn), c.Close
	default:
		var l net.Listener
		if s.addr[0] == '@' {
			l, err = net.Listen("unix", s.addr)
		} else {
			l, err = listenUnix(s.addr, s.mode)
		}
		if err != nil {
			return nil, 0, 0, err
		}
		ul := l.(*net.UnixListener)
		ul.SetUnlinkOnClose(false) // the file stays: the socket lives on in the copy
		sc, closer = ul, l.Close
	}
	defer closer()
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, 0, 0, err
	}
	nfd := -1
	if cerr := rc.Control(func(fd uintptr) { nfd, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3) }); cerr != nil {
		return nil, 0, 0, cerr
	}
	if err != nil {
		return nil, 0, 0, err
	}
	fail := func(err error) (*os.File, uint64, uint64, error) {
		unix.Close(nfd)
		return nil, 0, 0, err
	}
	if err := unix.SetNonblock(nfd, false); err != nil {
		return fail(err)
	}
	if s.backlog > 0 {
		if err := unix.Listen(nfd, s.backlog); err != nil {
			return fail(err)
		}
	}
	if s.network == "unix" && s.addr[0] != '@' {
		var st unix.Stat_t
		if err := unix.Lstat(s.addr, &st); err == nil {
			dev, ino = uint64(st.Dev), uint64(st.Ino)
		}
	}
	return os.NewFile(uintptr(nfd), s.key()), dev, ino, nil
}

// checkSocketBindable tells, when a configuration is read, whether the
// socket could be bound: a tcp or udp address is bound and released at
// once (unless gafferd holds it already), a unix path must be free or a
// stale socket, in an existing directory.
func checkSocketBindable(s socketSpec) error {
	if socketHeld(s.key()) {
		return nil
	}
	switch s.network {
	case "tcp":
		l, err := net.Listen("tcp", s.addr)
		if err != nil {
			return err
		}
		return l.Close()
	case "udp":
		c, err := net.ListenPacket("udp", s.addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	if s.addr[0] == '@' {
		return nil
	}
	if st, err := os.Stat(filepath.Dir(s.addr)); err != nil || !st.IsDir() {
		return fmt.Errorf("directory %s does not exist", filepath.Dir(s.addr))
	}
	if st, err := os.Lstat(s.addr); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("%s exists and is not a socket", s.addr)
		}
		if c, err := net.DialTimeout("unix", s.addr, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("%s is in use by a running server", s.addr)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
