package gaffer

// Probes: what the ready and health settings name, and how one probe
// runs. tcp:HOST:PORT connects, http://HOST:PORT/PATH wants a 2xx answer,
// exec:COMMAND runs a command with the job's environment, working
// directory and user and wants exit status 0. notify (sd_notify, notify.go)
// and log:REGEX (a line of output, logwatch.go) are readiness only, and
// are not run: they are told. HOST, PORT and PATH may name variables of
// the process's environment ($PORT).
//
// A probe runs on a goroutine of its own only while it runs; between two
// probes a process costs a timer (probeRun), so that a
// thousand idle processes cost no thread and no CPU. At most probeSlots
// probes run at once in the whole program.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type probeKind int

const (
	probeNotify probeKind = iota + 1
	probeTCP
	probeHTTP
	probeExec
	probeLog
)

// probeSpec is a parsed ready or health setting.
type probeSpec struct {
	kind   probeKind
	target string         // tcp: HOST:PORT; http: the URL; exec: the command line; log: the regex
	re     *regexp.Regexp // log
}

// parseProbe reads a ready (readiness true) or health setting; "" is none
// (nil). Errors name the key.
func parseProbe(key, s string, readiness bool) (*probeSpec, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	want := "tcp:HOST:PORT, http://HOST:PORT/PATH or exec:COMMAND"
	if readiness {
		want = "notify, " + want + " or log:REGEX"
	}
	bad := func(format string, args ...any) (*probeSpec, error) {
		return nil, errBadRequest("%s: %s", key, fmt.Sprintf(format, args...))
	}
	kind, rest, _ := strings.Cut(s, ":")
	switch strings.ToLower(kind) {
	case "notify":
		if !readiness || rest != "" {
			break
		}
		return &probeSpec{kind: probeNotify}, nil
	case "tcp":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return bad("%q: expected tcp:HOST:PORT (%v)", s, err)
		}
		if !strings.Contains(port, "$") {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return bad("%q: invalid port %q", s, port)
			}
		}
		if strings.ContainsAny(host, " /") {
			return bad("%q: invalid host %q", s, host)
		}
		return &probeSpec{kind: probeTCP, target: rest}, nil
	case "http":
		// Variables ($PORT) are checked with a stand-in value.
		check, err := ExpandVars(s, func(string) (string, bool) { return "1", true })
		if err != nil {
			return bad("%q: %v", s, err)
		}
		u, err := url.Parse(check)
		if err != nil || u.Host == "" || !strings.HasPrefix(rest, "//") {
			return bad("%q: expected http://HOST:PORT/PATH", s)
		}
		return &probeSpec{kind: probeHTTP, target: s}, nil
	case "exec":
		words, err := SplitCommandLine(rest)
		if err != nil || len(words) == 0 {
			return bad("%q: exec needs a command line", s)
		}
		return &probeSpec{kind: probeExec, target: rest}, nil
	case "log":
		if !readiness {
			break
		}
		re, err := regexp.Compile(rest)
		if err != nil || rest == "" {
			return bad("%q: log needs a regular expression (%v)", s, err)
		}
		return &probeSpec{kind: probeLog, target: rest, re: re}, nil
	}
	return bad("%q: expected %s", s, want)
}

// String is the setting as written.
func (ps *probeSpec) String() string {
	switch ps.kind {
	case probeNotify:
		return "notify"
	case probeTCP:
		return "tcp:" + ps.target
	case probeExec:
		return "exec:" + ps.target
	case probeLog:
		return "log:" + ps.target
	}
	return ps.target
}

// probeSlots bounds the probes that run at once.
var probeSlots = make(chan struct{}, 64)

// probeHTTPClient keeps no connection between probes (an idle process
// costs nothing) and follows no redirect (the answer must be a 2xx).
var probeHTTPClient = &http.Client{
	Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// run runs one tcp, http or exec probe of process p (of a job of config
// cfg) until ctx ends; nil is a success.
func (ps *probeSpec) run(ctx context.Context, p *Process, cfg *JobConfig) error {
	select {
	case probeSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-probeSlots }()
	lookup := func(k string) (string, bool) { v, ok := p.Env[k]; return v, ok }
	switch ps.kind {
	case probeTCP:
		addr, err := ExpandVars(ps.target, lookup)
		if err != nil {
			return err
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	case probeHTTP:
		u, err := ExpandVars(ps.target, lookup)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "gaffer-probe/"+Version)
		resp, err := probeHTTPClient.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("GET %s: %s", u, resp.Status)
		}
		return nil
	case probeExec:
		return runExecProbe(ctx, p, cfg, ps.target)
	}
	return fmt.Errorf("a %s probe is not run", ps)
}

// probeOutputMax bounds the output of an exec probe kept for its error.
const probeOutputMax = 512

// runExecProbe runs the command line as the job's processes run: the
// process's environment (without its LISTEN_* and NOTIFY_SOCKET/WATCHDOG_*
// variables), the job's working directory and user (not its cgroup nor
// its limits: a probe is gafferd's, and short), its own
// process group, forked on the spawner's thread and reaped by the
// reaper (so that it never competes with os/exec for an exit status).
// At the end of ctx the group is killed.
func runExecProbe(ctx context.Context, p *Process, cfg *JobConfig, line string) error {
	pc := *cfg
	pc.Cmd, pc.Args = line, nil
	path, argv, err := buildCommand(&pc, p.Env)
	if err != nil {
		return err
	}
	env := make([]string, 0, len(p.Env))
	for k, v := range p.Env {
		// Not the process's own descriptors nor its notify socket: the
		// probe holds neither and does not speak for the process.
		if !isListenVar(k) && !isNotifyVar(k) {
			env = append(env, k+"="+v)
		}
	}
	sort.Strings(env)
	null, err := openDevNull()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	sys := sysProcAttr(false, p.UID, p.GID)
	pidfd := -1
	setDeathSignal(sys, false, &pidfd)
	attr := &syscall.ProcAttr{Dir: cfg.Cwd, Env: env, Files: []uintptr{null.Fd(), w.Fd(), w.Fd()}, Sys: sys}
	exited := make(chan syscall.WaitStatus, 1)
	var pid int
	theSpawner.do(func() {
		pid, err = theReaper.spawn(func() (int, error) { return syscall.ForkExec(path, argv, attr) },
			func(ws syscall.WaitStatus) { exited <- ws })
	})
	w.Close()
	if err != nil {
		return fmt.Errorf("cannot run %q: %v", path, err)
	}
	if pidfd >= 0 {
		defer closeFD(pidfd)
	}
	out := make(chan string, 1)
	go func() {
		var buf [probeOutputMax]byte
		n, _ := io.ReadFull(r, buf[:])
		io.Copy(io.Discard, r) // until every holder of the pipe is gone
		out <- strings.TrimSpace(string(buf[:n]))
	}()
	var ws syscall.WaitStatus
	select {
	case ws = <-exited:
	case <-ctx.Done():
		theReaper.ifUnreaped(pid, func() { signalPid(-pid, syscall.SIGKILL) })
		<-exited
		r.Close()
		return fmt.Errorf("%s: no answer within the timeout", line)
	}
	// A descendant left running may hold the pipe open: read until the
	// timeout at most.
	var text string
	select {
	case text = <-out:
	case <-ctx.Done():
		r.Close()
	}
	switch {
	case ws.Signaled():
		return fmt.Errorf("%s: killed by %s%s", line, SignalName(ws.Signal()), outputSuffix(text))
	case ws.ExitStatus() != 0:
		return fmt.Errorf("%s: exit status %d%s", line, ws.ExitStatus(), outputSuffix(text))
	}
	return nil
}

func outputSuffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// probeRun is the schedule of one probe of one process: a timer between
// two runs, the timer's goroutine while one runs, never two at once (the
// next run is armed by the answer of the previous one).
type probeRun struct {
	spec    *probeSpec
	timer   *time.Timer
	cancel  context.CancelFunc
	stopped bool
	last    time.Duration // the delay before the current run
}

// stop ends the schedule and cancels a run under way (its answer is
// dropped). The Manager's lock is held.
func (pr *probeRun) stop() {
	if pr == nil {
		return
	}
	pr.stopped = true
	if pr.timer != nil {
		pr.timer.Stop()
	}
	if pr.cancel != nil {
		pr.cancel()
	}
}

// scheduleProbeLocked runs pr once after delay, for at most timeout, and
// hands its answer to done, under the lock, unless pr was stopped
// meanwhile.
func (m *Manager) scheduleProbeLocked(p *Process, pr *probeRun, delay, timeout time.Duration, done func(*Process, *probeRun, error)) {
	if pr.stopped {
		return
	}
	pr.last = delay
	cfg := p.lc.cfg
	pr.timer = time.AfterFunc(delay, func() {
		m.mu.Lock()
		if pr.stopped {
			m.mu.Unlock()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		pr.cancel = cancel
		m.mu.Unlock()
		err := pr.spec.run(ctx, p, cfg)
		cancel()
		m.mu.Lock()
		defer m.mu.Unlock()
		pr.cancel = nil
		if !pr.stopped {
			done(p, pr, err)
		}
	})
}
