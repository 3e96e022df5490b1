//go:build !linux

package gaffer

import "errors"

// notifySupported: the sd_notify server needs SCM_CREDENTIALS (Linux).
const notifySupported = false

type notifySock struct{ path string }

func openNotifySocket(path string, uid, gid *int) (*notifySock, error) {
	return nil, errors.New("ready = notify and watchdog need Linux (the sender's credentials of SCM_CREDENTIALS)")
}

func (s *notifySock) read(handle func(msg []byte, pid int, truncated bool)) {}

func (s *notifySock) close() {}

func inProcessTree(pid, leader int, inst, id string) bool { return pid == leader }
