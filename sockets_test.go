package gaffer

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// socketAddr is the address a manager's socket of key is bound to.
func socketAddr(t *testing.T, m *Manager, key string) string {
	t.Helper()
	m.mu.Lock()
	b := m.contain.sockets.bound[key]
	m.mu.Unlock()
	if b == nil {
		t.Fatalf("no socket %s", key)
	}
	sa, err := unix.Getsockname(int(b.f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *unix.SockaddrUnix:
		return a.Name
	}
	t.Fatalf("socket %s: unexpected address %T", key, sa)
	return ""
}

// loadResult counts what a client loop saw.
type loadResult struct {
	ok, refused, failed atomic.Int64
	mu                  sync.Mutex
	pids                map[string]bool
	firstErr            error
}

func (r *loadResult) saw(pid string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pids[pid]
}

// clientLoop sends GET requests from workers goroutines until stop is
// closed; fresh makes every request open a new connection.
func clientLoop(addr string, workers int, fresh bool, stop chan struct{}) (*loadResult, *sync.WaitGroup) {
	r := &loadResult{pids: map[string]bool{}}
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		tr := &http.Transport{DisableKeepAlives: fresh, MaxIdleConnsPerHost: 1}
		c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer tr.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("http://" + addr + "/")
				if err == nil {
					body, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					if rerr == nil && resp.StatusCode == 200 {
						r.ok.Add(1)
						r.mu.Lock()
						r.pids[string(body)] = true
						r.mu.Unlock()
						continue
					}
					err = rerr
					if err == nil {
						err = errors.New(resp.Status)
					}
				}
				if errors.Is(err, syscall.ECONNREFUSED) {
					r.refused.Add(1)
				} else {
					r.failed.Add(1)
				}
				r.mu.Lock()
				if r.firstErr == nil {
					r.firstErr = err
				}
				r.mu.Unlock()
			}
		}()
	}
	return r, &wg
}

// A job of 4 processes serving HTTP on a passed socket is restarted
// (POST …/state 2) and its processes killed with SIGKILL while clients
// keep sending requests: the socket stays open, so no connection is
// refused; clients wait in the kernel's queue until a new process
// accepts.
func TestSocketsSurviveRestarts(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		name := "keepalive"
		if fresh {
			name = "fresh-connections"
		}
		t.Run(name, func(t *testing.T) { socketRestarts(t, fresh) })
	}
}

func socketRestarts(t *testing.T, fresh bool) {
	m := newTestManager(t)
	t.Cleanup(m.closeContainment)
	cfg := childConfig(t, "web", "httpfd", nil)
	cfg.NumProcesses = 4
	cfg.Sockets = []string{"tcp://127.0.0.1:0"}
	cfg.GracefulTimeout = 10 * time.Second
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	addr := socketAddr(t, m, "tcp://127.0.0.1:0")
	stop := make(chan struct{})
	res, wg := clientLoop(addr, 4, fresh, stop)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	servedBy := func(what string, procs []*Process) {
		t.Helper()
		waitFor(t, 30*time.Second, what, func() bool {
			for _, p := range procs {
				if res.saw(strconv.Itoa(p.OSPid)) {
					return true
				}
			}
			return false
		})
	}
	// more waits until the clients got n more answers.
	more := func(n int64) {
		t.Helper()
		target := res.ok.Load() + n
		waitFor(t, 30*time.Second, "more answers", func() bool { return res.ok.Load() >= target })
	}
	type counts struct{ ok, refused, failed int64 }
	snap := func() counts { return counts{res.ok.Load(), res.refused.Load(), res.failed.Load()} }
	procs, _ := m.JobProcesses("default.web")
	servedBy("a first answer", procs)
	more(100)
	before := snap()
	for i := 0; i < 3; i++ {
		if err := m.ReloadJob("default.web"); err != nil {
			t.Fatal(err)
		}
		procs, _ = m.JobProcesses("default.web")
		servedBy("an answer of the restarted processes", procs)
		more(100)
	}
	reload := snap()
	for i := 0; i < 3; i++ {
		old, _ := m.JobProcesses("default.web")
		for _, p := range old {
			syscall.Kill(p.OSPid, syscall.SIGKILL)
		}
		waitFor(t, 30*time.Second, "4 new processes", func() bool {
			ps, _ := m.JobProcesses("default.web")
			if len(ps) != 4 {
				return false
			}
			for _, p := range ps {
				for _, o := range old {
					if p == o {
						return false
					}
				}
			}
			procs = ps
			return true
		})
		servedBy("an answer of the new processes", procs)
		more(100)
	}
	close(stop)
	wg.Wait()
	kill := snap()
	t.Logf("during 3 restarts (POST state 2) of 4 processes: %d answered, %d refused, %d failed",
		reload.ok-before.ok, reload.refused-before.refused, reload.failed-before.failed)
	t.Logf("during 3 kill -9 of the 4 processes: %d answered, %d refused, %d failed (first error: %v)",
		kill.ok-reload.ok, kill.refused-reload.refused, kill.failed-reload.failed, res.firstErr)
	if n := kill.refused; n != 0 {
		t.Errorf("%d connections refused", n)
	}
	if n := reload.failed - before.failed; n != 0 {
		t.Errorf("%d requests failed during the restarts: %v", n, res.firstErr)
	}
	// A request the killed process had accepted fails (connection
	// reset, EOF): the kernel gave it to that process, no supervisor can
	// save it. Only the refused count is asserted for the kill -9.
}

// The passed socket: LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID (the
// child's own pid) are set, the socket is at fd 3 and the custom streams
// follow it.
func TestSocketsListenEnv(t *testing.T) {
	m := newTestManager(t)
	t.Cleanup(m.closeContainment)
	cfg := childConfig(t, "env", "settings", nil)
	cfg.Sockets = []string{"tcp://127.0.0.1:0", "admin=unix:" + t.TempDir() + "/admin.sock?mode=0660"}
	cfg.CustomStreams = []string{"ctl"}
	cfg.RedirectOutput = []string{"out"}
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	procs, _ := m.JobProcesses("default.env")
	p := procs[0]
	out := readUntil(t, p, "out", "end\n")
	for _, want := range []string{"LISTEN_FDS=2 set=true", "LISTEN_PID=" + strconv.Itoa(p.OSPid) + " set=true",
		"LISTEN_FDNAMES=env:admin set=true", shimEnv + "= set=false"} {
		if !containsLine(out, want) {
			t.Errorf("the child's output lacks %q:\n%s", want, out)
		}
	}
	fds := map[string]string{}
	for _, fd := range []string{"3", "4", "5"} {
		l, _ := os.Readlink("/proc/" + strconv.Itoa(p.OSPid) + "/fd/" + fd)
		fds[fd] = l
	}
	if p.Env["LISTEN_PID"] != strconv.Itoa(p.OSPid) {
		t.Errorf("the process's environment says LISTEN_PID=%q", p.Env["LISTEN_PID"])
	}
	t.Logf("fds of the child: %v", fds)
	st, err := os.Stat(cfg.Sockets[1][len("admin=unix:") : len(cfg.Sockets[1])-len("?mode=0660")])
	if err != nil || st.Mode().Perm() != 0o660 {
		t.Errorf("the unix socket file: %v, mode %v", err, st)
	}
	// The custom stream is the fd after the sockets: fd 5.
	if err := p.Write("ctl", []byte("x")); err != nil {
		t.Error(err)
	}
	if fds["5"] == fds["3"] {
		t.Errorf("fd 5 should be the custom stream, not a socket: %v", fds)
	}
	_ = context.Background
}

// readUntil waits until the process's stream label holds end and returns
// all it holds.
func readUntil(t *testing.T, p *Process, label, end string) string {
	t.Helper()
	st, ok := p.Stream(label)
	if !ok {
		t.Fatalf("process %d has no stream %s", p.ID, label)
	}
	var all []byte
	waitFor(t, 20*time.Second, "the child's output", func() bool {
		chunks, _ := st.Backlog(0)
		all = nil
		for _, c := range chunks {
			all = append(all, c.Data...)
		}
		return strings.Contains(string(all), end)
	})
	return string(all)
}

// containsLine tells whether text has the line.
func containsLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}
