package gaffer

import "syscall"

// sysProcAttr puts the child in a process group of its own (or a session
// of its own when detached) and sets its credentials.
func sysProcAttr(detach bool, uid, gid *int) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{}
	if detach {
		a.Setsid = true
	} else {
		a.Setpgid = true
	}
	if uid != nil || gid != nil {
		c := &syscall.Credential{Uid: uint32(syscall.Getuid()), Gid: uint32(syscall.Getgid()), NoSetGroups: true}
		if uid != nil {
			c.Uid = uint32(*uid)
		}
		if gid != nil {
			c.Gid = uint32(*gid)
		}
		a.Credential = c
	}
	return a
}

// socketPair returns a connected pair of unix stream sockets, both
// close-on-exec; fds[0] (the parent's end) is non-blocking.
func socketPair() ([2]int, error) {
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return fds, err
	}
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		return fds, err
	}
	return fds, nil
}
