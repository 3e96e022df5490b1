package gaffer

import (
	"bytes"
	"encoding/binary"
	"sort"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// On macOS, without cgo, the figures that need libproc (RSS, VMS, CPU
// time, threads, descriptors) stay at zero ("N/A" would hide that the
// process runs). What the kern.proc sysctls give is reported: the nice
// value, the owner, the command line and the children.

// readStats reports whether the process is alive, its nice value and its
// start time.
func readStats(pid int) rawStats {
	if syscall.Kill(pid, 0) != nil {
		return rawStats{}
	}
	r := rawStats{ok: true}
	if kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid); err == nil && int(kp.Proc.P_pid) == pid {
		r.nice, r.niceOK = int(kp.Proc.P_nice), true
		r.started = float64(kp.Proc.P_starttime.Nano()) / 1e9
	}
	return r
}

// readStatLine is readStats (memory_restart's sample).
func readStatLine(pid int) (rawStats, bool) {
	r := readStats(pid)
	return r, r.ok
}

// readDetails reads the real uid (kern.proc.pid), the command line
// (kern.procargs2) and the children (kern.proc.all, by parent pid).
func readDetails(pid int) rawDetails {
	d := rawDetails{uid: -1}
	if kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid); err == nil && int(kp.Proc.P_pid) == pid {
		d.uid = int(kp.Eproc.Pcred.P_ruid)
	}
	if raw, err := unix.SysctlRaw("kern.procargs2", pid); err == nil {
		d.cmdline = darwinArgs(raw)
	}
	if all, err := unix.SysctlKinfoProcSlice("kern.proc.all"); err == nil {
		for i := range all {
			if int(all[i].Eproc.Ppid) == pid && all[i].Proc.P_pid > 0 {
				d.children = append(d.children, int(all[i].Proc.P_pid))
			}
		}
	}
	sort.Ints(d.children)
	return d
}

// darwinArgs parses kern.procargs2: argc (a 32-bit integer), the
// executable path, NUL padding, then argc NUL-terminated arguments.
func darwinArgs(raw []byte) []string {
	if len(raw) < 4 {
		return nil
	}
	argc := int(binary.LittleEndian.Uint32(raw))
	rest := raw[4:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return nil
	}
	rest = bytes.TrimLeft(rest[i:], "\x00")
	var args []string
	for len(args) < argc && len(rest) > 0 {
		j := bytes.IndexByte(rest, 0)
		if j < 0 {
			j = len(rest)
		}
		args = append(args, string(rest[:j]))
		if j == len(rest) {
			break
		}
		rest = rest[j+1:]
	}
	return args
}

// processAge returns the seconds since a process started (started is a
// Unix time in seconds), 0 when unknown.
func processAge(started float64) float64 {
	if started <= 0 {
		return 0
	}
	return max(float64(time.Now().UnixNano())/1e9-started, 0)
}

// totalMemory is unknown on macOS without cgo.
func totalMemory() int64 { return 0 }
