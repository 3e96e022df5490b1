//go:build linux

package gaffer

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// notifySupported says that this system has the sd_notify server.
const notifySupported = true

// notifyMaxFDs bounds the descriptors one message may carry (BARRIER=1
// carries one); more are dropped by the kernel (MSG_CTRUNC).
const notifyMaxFDs = 16

// notifySock is the NOTIFY_SOCKET of one process: a unix datagram socket
// bound in gafferd's private directory, mode 0600, owned by the job's
// user (so that the process can connect to it and nobody else but root
// can), with SO_PASSCRED so that every message carries the sender's pid,
// which must be the process or one of its descendants (notify.go).
type notifySock struct {
	path string
	conn *net.UnixConn
}

// openNotifySocket binds a socket at path for a process of user uid and
// group gid (nil: gafferd's).
func openNotifySocket(path string, uid, gid *int) (*notifySock, error) {
	if len(path) >= len(unix.RawSockaddrUnix{}.Path) {
		return nil, fmt.Errorf("notify socket path %s is too long for a unix socket", path)
	}
	os.Remove(path) // a stale one of a process with the same id
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket: %v", err)
	}
	s := &notifySock{path: path, conn: c}
	rc, err := c.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
		if err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Chmod(path, 0o600)
	}
	if err == nil && (uid != nil || gid != nil) {
		u, g := -1, -1
		if uid != nil {
			u = *uid
		}
		if gid != nil {
			g = *gid
		}
		err = os.Lchown(path, u, g)
	}
	if err != nil {
		s.close()
		return nil, fmt.Errorf("notify socket: %v", err)
	}
	return s, nil
}

// read hands every datagram to handle with the sender's pid (0 when the
// message carried no credentials) and whether it was cut, until the
// socket is closed. Descriptors sent along (BARRIER=1's) are closed once
// handle returns: the sender of a barrier waits for that close, which
// thereby comes after its earlier messages were handled.
func (s *notifySock) read(handle func(msg []byte, pid int, truncated bool)) {
	buf := make([]byte, notifyMaxMessage)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*notifyMaxFDs))
	for {
		n, oobn, flags, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a passing error (ENOBUFS…): the socket is still ours
		}
		pid := 0
		var fds []int
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for i := range msgs {
				m := &msgs[i]
				if m.Header.Level != unix.SOL_SOCKET {
					continue
				}
				switch m.Header.Type {
				case unix.SCM_CREDENTIALS:
					if cred, err := unix.ParseUnixCredentials(m); err == nil {
						pid = int(cred.Pid)
					}
				case unix.SCM_RIGHTS:
					if f, err := unix.ParseUnixRights(m); err == nil {
						fds = append(fds, f...)
					}
				}
			}
		}
		handle(buf[:n], pid, flags&unix.MSG_TRUNC != 0)
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
}

// close closes the socket and removes its file.
func (s *notifySock) close() {
	s.conn.Close()
	os.Remove(s.path)
}

// inProcessTree reports whether pid is the process leader (OS pid) or
// one of its descendants: by its parents in /proc, or, for a descendant
// re-parented to gafferd (the subreaper) or to init, by the markers of
// its environment (instance, internal pid), as escape.go finds them.
func inProcessTree(pid, leader int, inst, id string) bool {
	if pid <= 0 {
		return false
	}
	if pid == leader {
		return true
	}
	self := os.Getpid()
	for cur, depth := pid, 0; depth < 64; depth++ {
		st, ok := readProcStat(cur)
		if !ok {
			break
		}
		if st.ppid == leader {
			return true
		}
		if st.ppid <= 1 || st.ppid == self {
			break
		}
		cur = st.ppid
	}
	i, pidMarker, _, ok := procMarkers(pid)
	return ok && i == inst && pidMarker == id
}
