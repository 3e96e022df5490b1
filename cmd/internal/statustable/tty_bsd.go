//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package statustable

import "golang.org/x/sys/unix"

const ioctlReadTermios = unix.TIOCGETA
