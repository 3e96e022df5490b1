package gaffer

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	var info [128]byte // siginfo_t
	const pAll, wexited, wnohang, wnowait = 0, 4, 1, 0x01000000
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_WAITID, pAll, 0, uintptr(unsafe.Pointer(&info[0])), wexited|wnohang|wnowait, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, false
		}
		break
	}
	// si_pid follows si_signo, si_errno, si_code and, on 64-bit
	// platforms, 4 bytes of padding that align the union.
	off := 12
	if unsafe.Sizeof(uintptr(0)) == 8 {
		off = 16
	}
	pid := int(*(*int32)(unsafe.Pointer(&info[off])))
	return pid, pid > 0
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
