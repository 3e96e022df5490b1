//go:build !linux

package gaffer

import (
	"os"
	"syscall"
	"time"
)

// SetSubreaper is a no-op outside Linux, where the flag does not exist;
// it still turns on SetReapAll.
func SetSubreaper() error {
	SetReapAll(true)
	return nil
}

func ownChildren() []int { return nil }

func allPids() []int { return nil }

func environValue(pid int, name string) (string, bool) { return "", false }

func ppidOf(pid int) int { return -1 }

const peekSupported = false

// peekZombie is not available here: the reaper tries each registered pid.
func peekZombie() (int, bool) { return 0, false }

func isZombie(pid int) bool { return false }

type procStat struct {
	state     byte
	ppid      int
	pgid      int
	sid       int
	startTime uint64
}

func readProcStat(pid int) (procStat, bool) { return procStat{}, false }

func procEnviron(pid int) (map[string]string, bool) { return nil, false }

func procCmdline(pid int) []string { return nil }

// setDeathSignal: no parent-death signal nor pidfd outside Linux.
func setDeathSignal(a *syscall.SysProcAttr, detach bool, pidfd *int) { *pidfd = -1 }

func pidfdOpen(pid int) (int, error) { return -1, syscall.ENOSYS }

func pidfdSignal(fd int, sig syscall.Signal) error { return syscall.ENOSYS }

func closeFD(fd int) { syscall.Close(fd) }

func signalPid(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

func bootTime() (time.Time, bool) { return time.Time{}, false }

func pidfdSupported() bool { return false }

func procMarkers(pid int) (inst, id, job string, ok bool) { return "", "", "", false }

func pidFile(fd int) *os.File { return os.NewFile(uintptr(fd), "pidfd") }

func ticksToDuration(t uint64) time.Duration { return 0 }
