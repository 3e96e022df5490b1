package gaffer

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SetSubreaper makes this process the child subreaper of its descendants
// (Linux): orphaned grandchildren are re-parented to it rather than to
// init, so it can reap them and find them again. It also turns on
// SetReapAll.
func SetSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return err
	}
	SetReapAll(true)
	return nil
}

// ownChildren lists the pids whose parent is this process, from
// /proc/self/task/*/children, falling back to a scan of /proc.
func ownChildren() []int {
	var out []int
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	ok := false
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		ok = true
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	if ok {
		return out
	}
	me := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppidOf(pid) == me {
			out = append(out, pid)
		}
	}
	return out
}

func ppidOf(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 2 {
		return -1
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// allPids lists every pid in /proc.
func allPids() []int {
	ents, _ := os.ReadDir("/proc")
	out := make([]int, 0, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// environValue reads one variable of another process's environment.
func environValue(pid int, name string) (string, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return "", false
	}
	prefix := []byte(name + "=")
	for _, kv := range bytes.Split(data, []byte{0}) {
		if bytes.HasPrefix(kv, prefix) {
			return string(kv[len(prefix):]), true
		}
	}
	return "", false
}

// peekSupported says that peekZombie works here.
const peekSupported = true

// peekZombie returns the pid of a child that has exited, without reaping
// it (waitid P_ALL, WEXITED|WNOHANG|WNOWAIT).
func peekZombie() (int, bool) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, false
		}
		break
	}
	pid := int(siginfoPid(&info))
	return pid, pid > 0
}

// siginfoPid reads si_pid: in the kernel's siginfo_t it follows si_signo,
// si_errno, si_code and, on 64-bit platforms, 4 bytes of padding that
// align the union (x/sys/unix exposes the union as raw bytes).
func siginfoPid(info *unix.Siginfo) int32 {
	off := uintptr(12)
	if unsafe.Sizeof(uintptr(0)) == 8 {
		off = 16
	}
	return *(*int32)(unsafe.Add(unsafe.Pointer(info), off))
}

// isZombie reports whether pid is a zombie.
func isZombie(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	return i > 0 && i+2 < len(data) && data[i+2] == 'Z'
}

// procStat is what gafferd reads of /proc/<pid>/stat.
type procStat struct {
	state     byte
	ppid      int
	pgid      int
	sid       int
	startTime uint64 // clock ticks after boot: with the pid, a process's identity
}

// readProcStat parses /proc/<pid>/stat (the command name, in parentheses,
// may hold spaces and parentheses: the fields start after the last ')').
func readProcStat(pid int) (procStat, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return procStat{}, false
	}
	f := strings.Fields(string(data[i+2:]))
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return procStat{}, false
	}
	var st procStat
	st.state = f[0][0]
	st.ppid, _ = strconv.Atoi(f[1])
	st.pgid, _ = strconv.Atoi(f[2])
	st.sid, _ = strconv.Atoi(f[3])
	st.startTime, _ = strconv.ParseUint(f[19], 10, 64)
	return st, true
}

// procEnviron reads another process's whole environment.
func procEnviron(pid int) (map[string]string, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return nil, false
	}
	env := map[string]string{}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if k, v, ok := bytes.Cut(kv, []byte{'='}); ok && len(k) > 0 {
			env[string(k)] = string(v)
		}
	}
	return env, true
}

// procCmdline reads another process's argv.
func procCmdline(pid int) []string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(data) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
}

// setDeathSignal asks the kernel to SIGKILL the child when the thread
// that forked it dies (see spawner.go), and to hand back a pidfd of the
// child (CLONE_PIDFD) in *pidfd, or -1 where the kernel has none.
func setDeathSignal(a *syscall.SysProcAttr, detach bool, pidfd *int) {
	if !detach {
		a.Pdeathsig = syscall.SIGKILL
	}
	*pidfd = -1
	if pidfdSupported() {
		a.PidFD = pidfd
	}
}

// pidfdOpen returns a pidfd of pid (Linux 5.3+): once open it always
// names that process, even after its pid was freed and reused.
func pidfdOpen(pid int) (int, error) { return unix.PidfdOpen(pid, 0) }

// pidfdSignal sends sig through a pidfd: ESRCH once the process was
// reaped, never another process.
func pidfdSignal(fd int, sig syscall.Signal) error {
	return unix.PidfdSendSignal(fd, unix.Signal(sig), nil, 0)
}

func closeFD(fd int) { unix.Close(fd) }

// signalPid sends sig to a pid (or a process group when pid < 0).
func signalPid(pid int, sig syscall.Signal) error { return unix.Kill(pid, unix.Signal(sig)) }

// bootTime is the time the machine booted, for start times in ticks.
func bootTime() (time.Time, bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Unix(n, 0), err == nil
		}
	}
	return time.Time{}, false
}

var pidfdProbe struct {
	once sync.Once
	ok   bool
}

// pidfdSupported reports whether this kernel has pidfds (pidfd_open,
// Linux 5.3, implies CLONE_PIDFD, 5.2).
func pidfdSupported() bool {
	pidfdProbe.once.Do(func() {
		fd, err := unix.PidfdOpen(os.Getpid(), 0)
		if err == nil {
			unix.Close(fd)
			pidfdProbe.ok = true
		}
	})
	return pidfdProbe.ok
}

// procMarkers reads the gaffer markers of another process's environment
// (GAFFER_INSTANCE, GAFFER_PID, GAFFER_JOB); ok is false without them.
func procMarkers(pid int) (inst, id, job string, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil || !bytes.Contains(data, []byte(markerVar+"=")) {
		return "", "", "", false
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		k, v, found := bytes.Cut(kv, []byte{'='})
		if !found {
			continue
		}
		switch string(k) {
		case markerVar:
			inst = string(v)
		case "GAFFER_PID":
			id = string(v)
		case "GAFFER_JOB":
			job = string(v)
		}
	}
	return inst, id, job, inst != ""
}

// pidFile wraps a pidfd in a non-blocking *os.File, so that waiting for
// it to become readable (the process exited) uses the runtime's poller.
func pidFile(fd int) *os.File {
	unix.SetNonblock(fd, true)
	return os.NewFile(uintptr(fd), "pidfd")
}

// ticksToDuration converts /proc clock ticks.
func ticksToDuration(t uint64) time.Duration {
	return time.Duration(float64(t) / clockTicks * float64(time.Second))
}
