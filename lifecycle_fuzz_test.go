package gaffer

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseNotify: any datagram parses without a panic, and what it keeps
// is bounded and of its kind.
func FuzzParseNotify(f *testing.F) {
	for _, s := range []string{"READY=1", "READY=1\nSTATUS=up", "WATCHDOG=1", "WATCHDOG=trigger", "WATCHDOG_USEC=5000000",
		"EXTEND_TIMEOUT_USEC=99999999999999999999", "MAINPID=-3\nERRNO=2", "STATUS=" + strings.Repeat("é", 600), "=\n==\nX", "BARRIER=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		n := parseNotify(msg)
		if n.status != nil && len(*n.status) > notifyStatusMax {
			t.Fatalf("status of %d bytes", len(*n.status))
		}
		if n.extendTimeout < 0 || n.watchdogInterval < 0 || n.mainPID == 0 || n.errno < -1 {
			t.Fatalf("%+v", n)
		}
		if n.watchdog != "" && n.watchdog != "1" && n.watchdog != "trigger" {
			t.Fatalf("watchdog %q", n.watchdog)
		}
	})
}

// FuzzParseProbe: a ready or health setting is a probe or a 400 that
// names its key, never a panic; a probe's text reads back the same.
func FuzzParseProbe(f *testing.F) {
	for _, s := range []string{"notify", "tcp:127.0.0.1:80", "tcp:[::1]:$PORT", "http://localhost:8080/health", "exec:pg_isready -q",
		"log:^ready$", "log:(", "tcp:host", "http:/x", "exec:", "notify:x", "TCP:a:1"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, readiness bool) {
		ps, err := parseProbe("ready", s, readiness)
		if err != nil {
			if !strings.HasPrefix(AsError(err).Reason, "ready: ") {
				t.Fatalf("error without its key: %v", err)
			}
			return
		}
		if ps == nil {
			if strings.TrimSpace(s) != "" {
				t.Fatalf("%q: no probe and no error", s)
			}
			return
		}
		if !readiness && (ps.kind == probeNotify || ps.kind == probeLog) {
			t.Fatalf("%q: a readiness-only probe as a health check", s)
		}
		again, err := parseProbe("ready", ps.String(), readiness)
		if err != nil || again.kind != ps.kind || again.target != ps.target {
			t.Fatalf("%q → %q → %+v, %v", s, ps.String(), again, err)
		}
	})
}

// FuzzLifecycleValues: depends_on entries, restart_delay and
// success_exit_codes as written in a file.
func FuzzLifecycleValues(f *testing.F) {
	for _, s := range []string{"db", "db:healthy, cache:started", "a.b:completed", "x:nope", "1, 30", "0.5", "2m, 1h", "0, 3 7", "-1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if refs, err := parseDependsOn(cfgCommaList(s)); err == nil {
			for _, r := range refs {
				if ValidateName(r.name, "x") != nil || r.cond == "" {
					t.Fatalf("%q: bad entry %+v", s, r)
				}
			}
		}
		if r, err := parseDelayRange(s); err == nil && (r[0] < 0 || r[1] < 0 || r[0] > 1e9*time.Second) {
			t.Fatalf("%q: %v", s, r)
		}
		parseIntList(s)
	})
}
