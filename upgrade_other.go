//go:build !linux

package gaffer

import "syscall"

// selfExe is unknown here: upgrades in place need Linux.
var selfExe = ""

// upgradeSupported: an upgrade in place needs Linux (memfd, the exec of
// the children's parent thread, pidfds).
func upgradeSupported() error {
	return Errorf(CodeUnavailable, 503, "upgrade refused: an upgrade in place needs Linux")
}

func onMainThread() bool { return false }

func setCloexec(fd int, on bool) error {
	if on {
		syscall.CloseOnExec(fd)
		return nil
	}
	_, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFD, 0)
	if e != 0 {
		return e
	}
	return nil
}

func execUpgrade(doc *upgradeDoc, fds *fdList) error { return upgradeSupported() }

func leafDoc(l *cgLeaf) *upLeaf { return nil }

func restoreLeaf(r *cgRoot, u *upLeaf, inst, id, job string, detach bool) *cgLeaf { return nil }

func cgUnmoveProbe(instance string) {}

func cgMoved(r *cgRoot) bool { return false }
