package gaffer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// selfExe is the binary gafferd was started from (/proc/self/exe, read at
// start): an upgrade execs that path, so that a new build put there
// replaces the old one.
var selfExe = func() string {
	p, err := os.Executable()
	if err != nil {
		return ""
	}
	return p
}()

// upgradeSupported says why this gafferd cannot upgrade in place (nil when
// it can).
func upgradeSupported() error {
	if selfExe == "" {
		return Errorf(CodeUnavailable, 503, "upgrade refused: the path of gafferd's binary is unknown")
	}
	if !theSpawner.onMain {
		return Errorf(CodeUnavailable, 503, "upgrade refused: the spawner does not run on the main thread "+
			"(the program must call gaffer.RunWithSpawner from its main function, with runtime.LockOSThread in an init function)")
	}
	return nil
}

// onMainThread reports whether the caller runs on the process's main
// thread.
func onMainThread() bool { return unix.Gettid() == unix.Getpid() }

// setCloexec sets or clears a descriptor's close-on-exec flag.
func setCloexec(fd int, on bool) error {
	flag := 0
	if on {
		flag = unix.FD_CLOEXEC
	}
	_, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, flag)
	return err
}

// execUpgrade writes the handoff to a memfd and execs selfExe on the
// spawner's thread; it returns only if the exec failed.
func execUpgrade(doc *upgradeDoc, fds *fdList) error {
	data, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("upgrade: %v", err)
	}
	mfd, err := unix.MemfdCreate("gaffer-upgrade", 0) // no MFD_CLOEXEC: the new instance reads it
	if err != nil {
		return fmt.Errorf("upgrade: memfd: %v", err)
	}
	defer unix.Close(mfd)
	for rest := data; len(rest) > 0; {
		n, err := unix.Write(mfd, rest)
		if err != nil {
			return fmt.Errorf("upgrade: memfd: %v", err)
		}
		rest = rest[n:]
	}
	if _, err := unix.Seek(mfd, 0, 0); err != nil {
		return fmt.Errorf("upgrade: memfd: %v", err)
	}
	env := append(withoutEnv(os.Environ(), upgradeEnv), upgradeEnv+"="+strconv.Itoa(mfd))
	argv := append([]string{os.Args[0]}, os.Args[1:]...)
	// Other forks (os/exec elsewhere in gafferd) must not inherit the
	// descriptors whose close-on-exec flag is cleared.
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	theSpawner.do(func() { err = syscall.Exec(selfExe, argv, env) })
	return fmt.Errorf("upgrade: exec %s: %v", selfExe, err)
}

// leafDoc describes a process's cgroup for the handoff.
func leafDoc(l *cgLeaf) *upLeaf {
	if l == nil {
		return nil
	}
	return &upLeaf{V2: l.v2, V1: l.v1, Stop: l.stop}
}

// restoreLeaf registers a process's cgroup again.
func restoreLeaf(r *cgRoot, u *upLeaf, inst, id, job string, detach bool) *cgLeaf {
	l := &cgLeaf{key: escapeKey{inst: inst, id: id}, job: job, detach: detach, v2: u.V2, v1: u.V1, stop: u.Stop}
	if l.v1 == nil {
		l.v1 = map[string]string{}
	}
	r.register(l)
	return l
}

// cgUnmoveProbe: a gafferd that moved itself into gaffer-<instance>/gafferd
// (cgroup_linux.go) finds itself there after the exec; its cgroup is the
// one above.
func cgUnmoveProbe(instance string) {
	h := cgHostProbe()
	suffix := string(filepath.Separator) + filepath.Join("gaffer-"+instance, "gafferd")
	if !strings.HasSuffix(h.v2, suffix) {
		return
	}
	h.v2 = strings.TrimSuffix(h.v2, suffix)
	h.v2Ctl = map[string]bool{}
	if data, err := os.ReadFile(filepath.Join(h.v2, "cgroup.controllers")); err == nil {
		for _, c := range strings.Fields(string(data)) {
			h.v2Ctl[c] = true
		}
	}
}

// cgMoved reports whether gafferd moved itself into its manager's cgroup.
func cgMoved(r *cgRoot) bool { return r != nil && r.moved }
