package gaffer

// The exec shim: what must be done in the child itself, after the fork
// and before the command runs, and that Go's ForkExec cannot do (it has
// no hook between fork and exec): resource limits (setrlimit is
// per-process), oom_score_adj, nice (per-thread in Linux), the umask,
// LISTEN_PID and WATCHDOG_PID (the child's own pid, unknown before the
// fork; the shim execs in place, so the command keeps that pid), and joining
// cgroups that the clone could not enter (v1 hierarchies, or a kernel
// without CLONE_INTO_CGROUP).
//
// The child execs gafferd's own binary again (/proc/self/exe, the binary
// gafferd runs, even if its file was replaced meanwhile) with argv[0] =
// shimArg0 and the settings in $GAFFER_EXEC_SHIM; this package's init
// sees them, before main and before any other package of the program that
// imports this one, applies them on the main thread (init runs locked to
// it, so nice and the parent-death signal stay on the thread that execs)
// and execs the command, with $GAFFER_EXEC_SHIM removed. Any program
// built on this package is its own shim (gafferd, gaffer, the test
// binary). Only a spawn that needs it pays for it: one more exec of
// gafferd's binary, a few milliseconds (BenchmarkSpawnContained).
//
// When gafferd runs as root and the job sets uid/gid, the shim applies
// the settings as root (so that a hard limit can be raised, a negative
// nice or a lower oom_score_adj set, as systemd does) and then drops to
// the job's user and group; changing credentials clears the parent-death
// signal, so the shim sets it again and checks that gafferd is still its
// parent. The kernel keeps the parent-death signal across the execs
// (gafferd's binary is not set-user-ID).
//
// An error of the shim (a limit refused, an exec that fails) is written
// to a pipe gafferd reads until it closes (close-on-exec: the command
// started): the spawn fails with that reason, as a failed exec does.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	shimArg0 = "gaffer-exec-shim"
	shimEnv  = "GAFFER_EXEC_SHIM"
	// shimStartTimeout bounds the wait for the shim to exec the command.
	shimStartTimeout = 10 * time.Second
)

// shimSpec is what the shim applies.
type shimSpec struct {
	Path     string       `json:"path"`
	ErrFD    int          `json:"err_fd"`
	Join     []string     `json:"join,omitempty"` // cgroup.procs files to enter
	Rlimits  []shimRlimit `json:"rlimits,omitempty"`
	Nice     *int         `json:"nice,omitempty"`
	Umask    *int         `json:"umask,omitempty"`
	OOM      *int         `json:"oom_score_adj,omitempty"`
	UID      *int         `json:"uid,omitempty"`
	GID      *int         `json:"gid,omitempty"`
	Listen   bool         `json:"listen,omitempty"`       // set LISTEN_PID
	Watchdog bool         `json:"watchdog_pid,omitempty"` // set WATCHDOG_PID
	DeathSig bool         `json:"death_signal,omitempty"`
	PPid     int          `json:"ppid"`
}

type shimRlimit struct {
	Key      string `json:"key"`
	Resource int    `json:"resource"`
	Cur      uint64 `json:"cur"`
	Max      uint64 `json:"max"`
}

func init() {
	if len(os.Args) < 2 || os.Args[0] != shimArg0 {
		return
	}
	raw, ok := syscall.Getenv(shimEnv)
	if !ok {
		return
	}
	runShim(raw, os.Args[1:])
}

// runShim applies the spec and execs the command; it never returns.
func runShim(raw string, argv []string) {
	var s shimSpec
	errFD := -1
	fail := func(format string, args ...any) {
		if errFD >= 0 {
			syscall.Write(errFD, []byte(fmt.Sprintf(format, args...)))
		}
		os.Exit(127)
	}
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		os.Exit(127)
	}
	errFD = s.ErrFD
	syscall.CloseOnExec(errFD)
	os.Unsetenv(shimEnv)
	for _, f := range s.Join {
		if err := os.WriteFile(f, []byte("0"), 0); err != nil {
			fail("cgroup: cannot enter %s: %v", f, err)
		}
	}
	for _, r := range s.Rlimits {
		// syscall.Setrlimit: for RLIMIT_NOFILE it also stops Exec from
		// restoring the soft limit the Go runtime raised at start.
		if err := syscall.Setrlimit(r.Resource, &syscall.Rlimit{Cur: r.Cur, Max: r.Max}); err != nil {
			fail("%s %s: %v", r.Key, formatRlimit(r.Cur, r.Max), err)
		}
	}
	if s.OOM != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*s.OOM)), 0); err != nil {
			fail("oom_score_adj %d: %v", *s.OOM, err)
		}
	}
	if s.Nice != nil {
		if err := unix.Setpriority(unix.PRIO_PROCESS, 0, *s.Nice); err != nil {
			fail("nice %d: %v", *s.Nice, err)
		}
	}
	if s.Umask != nil {
		syscall.Umask(*s.Umask)
	}
	if s.GID != nil {
		if err := syscall.Setgid(*s.GID); err != nil {
			fail("gid %d: %v", *s.GID, err)
		}
	}
	if s.UID != nil {
		if err := syscall.Setuid(*s.UID); err != nil {
			fail("uid %d: %v", *s.UID, err)
		}
	}
	if s.DeathSig && (s.UID != nil || s.GID != nil) {
		unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0)
		if os.Getppid() != s.PPid {
			os.Exit(1) // gafferd died before the signal was armed again
		}
	}
	if s.Listen {
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	}
	if s.Watchdog {
		os.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	}
	err := syscall.Exec(s.Path, argv, os.Environ())
	fail("cannot start %q: %v", s.Path, err)
}

// shimSupported says that this system has the shim.
const shimSupported = true

// rlimitResources maps the limit settings to their resources.
var rlimitResources = []struct {
	key   string
	res   int
	get   func(c *JobConfig) string
	sized bool
}{
	{"limit_nofile", unix.RLIMIT_NOFILE, func(c *JobConfig) string { return c.LimitNofile }, false},
	{"limit_nproc", unix.RLIMIT_NPROC, func(c *JobConfig) string { return c.LimitNproc }, false},
	{"limit_core", unix.RLIMIT_CORE, func(c *JobConfig) string { return c.LimitCore }, true},
	{"limit_memlock", unix.RLIMIT_MEMLOCK, func(c *JobConfig) string { return c.LimitMemlock }, true},
	{"limit_as", unix.RLIMIT_AS, func(c *JobConfig) string { return c.LimitAS }, true},
}

// shimSettings fills the per-job part of a spec from cfg; it reports
// whether the job needs the shim for itself.
func shimSettings(cfg *JobConfig, s *shimSpec) bool {
	need := false
	for _, r := range rlimitResources {
		if v := r.get(cfg); v != "" {
			cur, max, err := parseRlimit(v, r.sized)
			if err == nil {
				s.Rlimits = append(s.Rlimits, shimRlimit{Key: r.key, Resource: r.res, Cur: cur, Max: max})
				need = true
			}
		}
	}
	if cfg.Nice != nil {
		s.Nice, need = cfg.Nice, true
	}
	if cfg.OOMScoreAdj != nil {
		s.OOM, need = cfg.OOMScoreAdj, true
	}
	if cfg.Umask != "" {
		if n, err := strconv.ParseUint(cfg.Umask, 8, 32); err == nil {
			m := int(n)
			s.Umask, need = &m, true
		}
	}
	return need
}

// waitShim reads the shim's error pipe until the command started (EOF)
// and returns the shim's error, if any.
func waitShim(r *os.File) error {
	r.SetReadDeadline(time.Now().Add(shimStartTimeout))
	var buf [4096]byte
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			if os.IsTimeout(err) {
				return fmt.Errorf("the exec shim did not start the command within %v", shimStartTimeout)
			}
			break
		}
	}
	if n > 0 {
		return fmt.Errorf("%s", buf[:n])
	}
	return nil
}

// prepareExec decides how to start one process: directly (ForkExec of
// the command, into its cgroup when leaf is set) or through the shim when
// the job needs it or the cgroup must be entered by the child itself.
func prepareExec(s *spawnSpec, leaf *cgLeaf, path string, argv, env []string, files []uintptr, uid, gid *int, pidfd *int) (*execPlan, error) {
	cfg := s.cfg
	x := &execPlan{path: path, argv: argv, env: env, files: files, cgfd: -1}
	sh := &shimSpec{Path: path, PPid: os.Getpid(), DeathSig: !cfg.Detach, Listen: len(s.socks) > 0, Watchdog: s.watchdogPID}
	need := shimSettings(cfg, sh) || sh.Listen || sh.Watchdog
	x.cgfd = leaf.openDir()
	if joins := leaf.joinFiles(x.cgfd >= 0); len(joins) > 0 {
		sh.Join, need = joins, true
	}
	if need {
		// The shim changes the credentials itself, after the settings.
		sh.UID, sh.GID, uid, gid = uid, gid, nil, nil
		r, w, err := os.Pipe()
		if err != nil {
			x.closeChildEnds()
			return nil, err
		}
		x.shimRead, x.shimWrite = r, w
		x.files = append(files[:len(files):len(files)], w.Fd())
		sh.ErrFD = len(x.files) - 1
		raw, err := json.Marshal(sh)
		if err != nil {
			x.closeChildEnds()
			x.closeShim()
			return nil, err
		}
		x.env = append(env[:len(env):len(env)], shimEnv+"="+string(raw))
		x.path, x.argv = "/proc/self/exe", append([]string{shimArg0}, argv...)
	}
	x.sys = sysProcAttr(cfg.Detach, uid, gid)
	setDeathSignal(x.sys, cfg.Detach, pidfd)
	if x.cgfd >= 0 {
		x.sys.UseCgroupFD, x.sys.CgroupFD = true, x.cgfd
	}
	return x, nil
}

// cloneIntoUnsupported tells a fork error of a kernel without
// CLONE_INTO_CGROUP (or without clone3).
func cloneIntoUnsupported(err error) bool {
	return errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.E2BIG) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, syscall.EOPNOTSUPP)
}
