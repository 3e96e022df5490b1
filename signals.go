package gaffer

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"syscall"
)

// signalNames maps the names accepted by kill, killall and the signal
// routes (without the SIG prefix) to signals.
var signalNames = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "ILL": syscall.SIGILL,
	"TRAP": syscall.SIGTRAP, "ABRT": syscall.SIGABRT, "IOT": syscall.SIGABRT, "BUS": syscall.SIGBUS,
	"FPE": syscall.SIGFPE, "KILL": syscall.SIGKILL, "USR1": syscall.SIGUSR1, "SEGV": syscall.SIGSEGV,
	"USR2": syscall.SIGUSR2, "PIPE": syscall.SIGPIPE, "ALRM": syscall.SIGALRM, "TERM": syscall.SIGTERM,
	"CHLD": syscall.SIGCHLD, "CONT": syscall.SIGCONT, "STOP": syscall.SIGSTOP, "TSTP": syscall.SIGTSTP,
	"TTIN": syscall.SIGTTIN, "TTOU": syscall.SIGTTOU, "URG": syscall.SIGURG, "XCPU": syscall.SIGXCPU,
	"XFSZ": syscall.SIGXFSZ, "VTALRM": syscall.SIGVTALRM, "PROF": syscall.SIGPROF, "WINCH": syscall.SIGWINCH,
	"IO": syscall.SIGIO, "SYS": syscall.SIGSYS,
}

// maxSignal is the highest signal number accepted (real-time signals
// included on Linux).
const maxSignal = 64

// ParseSignal accepts a signal as a number, a digit string, or a name with
// or without the SIG prefix, in any case ("HUP", "sighup", "1", 1).
func ParseSignal(v any) (syscall.Signal, error) {
	switch x := v.(type) {
	case syscall.Signal:
		if x > 0 && x <= maxSignal {
			return x, nil
		}
	case int:
		if x > 0 && x <= maxSignal {
			return syscall.Signal(x), nil
		}
	case float64:
		if x > 0 && x <= maxSignal && x == math.Trunc(x) {
			return syscall.Signal(int(x)), nil
		}
	case json.Number:
		if n, err := strconv.Atoi(string(x)); err == nil && n > 0 && n <= maxSignal {
			return syscall.Signal(n), nil
		}
	case string:
		s := strings.ToUpper(strings.TrimSpace(x))
		if n, err := strconv.Atoi(s); err == nil {
			if n > 0 && n <= maxSignal {
				return syscall.Signal(n), nil
			}
			break
		}
		s = strings.TrimPrefix(s, "SIG")
		if sig, ok := signalNames[s]; ok {
			return sig, nil
		}
	}
	return 0, Errorf(CodeBadSignal, 400, "invalid signal %v: use a number (1-%d) or a name such as HUP or SIGTERM", v, maxSignal)
}

// SignalName returns "SIGTERM" for syscall.SIGTERM and so on.
func SignalName(sig syscall.Signal) string {
	for name, s := range signalNames {
		if s == sig && name != "IOT" {
			return "SIG" + name
		}
	}
	return "SIG" + strconv.Itoa(int(sig))
}
