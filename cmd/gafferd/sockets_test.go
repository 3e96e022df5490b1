package main

import (
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer/cmd/internal/testenv"
)

// pyListenServer is a program written for systemd's socket activation,
// run unchanged: it checks LISTEN_PID and LISTEN_FDNAMES, serves HTTP on
// fd 3 (socket.socket(fileno=3)) and on SIGTERM ends the request it is
// answering, then exits.
const pyListenServer = `
import http.server, os, signal, socket, sys, threading
if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1" or os.environ.get("LISTEN_FDNAMES") != "web":
    sys.exit("bad socket activation environment: %r" % {k: v for k, v in os.environ.items() if k.startswith("LISTEN_")})
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        body = str(os.getpid()).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("", 0), H, bind_and_activate=False)
srv.socket = socket.socket(fileno=3)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: done.set())
threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
print("serving", flush=True)
done.wait()
srv.shutdown()
`

// A Python program written for systemd's socket activation serves a
// [socket:web] of 4 processes; POST …/state 2 restarts them three times
// while clients loop: no connection is refused, no request fails.
func TestSocketActivationThroughRestarts(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "server.py"), []byte(pyListenServer), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	d := startDaemon(t, dir, baseConfig+`
[socket:web]
bind = tcp://`+addr+`
backlog = 512

[process:web]
cmd = `+py+` server.py
numprocesses = 4
sockets = @web
graceful_timeout = 10
`)
	d.waitFor(20*time.Second, "4 processes", func() bool { return d.job("default.web").Running == 4 })
	var ok, refused, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("http://" + addr + "/")
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode == 200 {
						ok.Add(1)
						continue
					}
				}
				if errors.Is(err, syscall.ECONNREFUSED) {
					refused.Add(1)
				} else {
					failed.Add(1)
				}
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	more := func(n int64) {
		target := ok.Load() + n
		d.waitFor(30*time.Second, "more answers", func() bool { return ok.Load() >= target })
	}
	more(50)
	for i := 0; i < 3; i++ {
		old := d.osPids("default.web")
		resp, err := d.client.Post("http://localhost/jobs/default/web/state", "application/json", strings.NewReader("2"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST state 2: %s", resp.Status)
		}
		d.waitFor(20*time.Second, "4 new processes", func() bool {
			now := d.osPids("default.web")
			if len(now) != 4 {
				return false
			}
			for _, p := range now {
				for _, o := range old {
					if p == o {
						return false
					}
				}
			}
			return true
		})
		more(50)
	}
	close(stop)
	wg.Wait()
	t.Logf("3 restarts (POST state 2) of 4 Python processes on a passed socket: %d answered, %d refused, %d failed (%v)",
		ok.Load(), refused.Load(), failed.Load(), firstErr.Load())
	if refused.Load() != 0 || failed.Load() != 0 {
		t.Errorf("%d refused, %d failed: %v", refused.Load(), failed.Load(), firstErr.Load())
	}
	d.stop()
}
