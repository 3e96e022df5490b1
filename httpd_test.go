package gaffer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveT is a Server on a real listener (Listen + Serve), as gafferd runs
// it.
type serveT struct {
	s    *Server
	m    *Manager
	addr string
	done chan error // Serve's result
}

func newServeT(t *testing.T, opts ServerOptions, edits ...func(*Server)) *serveT {
	t.Helper()
	if opts.Manager == nil {
		opts.Manager = newTestManager(t)
	}
	s := NewServer(opts)
	for _, edit := range edits {
		edit(s)
	}
	l, h, err := s.Listen(EndpointConfig{Name: "test", Bind: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	st := &serveT{s: s, m: opts.Manager, addr: l.Addr().String(), done: make(chan error, 1)}
	go func() { st.done <- s.Serve(l, h) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return st
}

// rawRequest opens a connection and writes a request head (and the start
// of a body); the caller writes the rest.
func (st *serveT) rawRequest(t *testing.T, head string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", st.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	return c
}

// expectContinue reads the "100 Continue" interim response, which the
// server sends when the handler starts reading the body.
func expectContinue(t *testing.T, c net.Conn, r *bufio.Reader) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	line, err := r.ReadString('\n')
	if err != nil || !strings.Contains(line, "100") {
		t.Fatalf("want 100 Continue, got %q %v", line, err)
	}
	if blank, err := r.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("after 100 Continue: %q %v", blank, err)
	}
}

// TestServerShutdownHonoursContext: a request in flight when Shutdown is
// called may finish (Shutdown used to close every connection at once,
// whatever its context said); streams are ended without waiting for the
// deadline; a request that does not finish is cut when the context ends,
// and Shutdown says so.
func TestServerShutdownHonoursContext(t *testing.T) {
	st := newServeT(t, ServerOptions{})
	body := `{"name": "late", "cmd": "sleep 30", "start": false}`
	c := st.rawRequest(t, fmt.Sprintf("POST /jobs/default HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", len(body)))
	cr := bufio.NewReader(c)
	expectContinue(t, c, cr) // the handler is reading the body
	// A feed that never ends by itself.
	feed := st.rawRequest(t, "GET /watch?feed=continuous HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	feedR := bufio.NewReader(feed)
	if line, err := feedR.ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("feed: %q %v", line, err)
	}
	// Shut down with a generous deadline while the body is incomplete.
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		shut <- st.s.Shutdown(ctx)
	}()
	// The listener closes: a new connection is refused.
	waitFor(t, 10*time.Second, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", st.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	// The request in flight still completes.
	if _, err := io.WriteString(c, body); err != nil {
		t.Fatalf("sending the body after Shutdown: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	status, err := cr.ReadString('\n')
	if err != nil || !strings.Contains(status, "200") {
		t.Fatalf("the request in flight was cut by Shutdown: %q %v", status, err)
	}
	if _, err := st.m.JobConfig("default.late"); err != nil {
		t.Fatalf("the request in flight did not run: %v", err)
	}
	// Shutdown returns without forcing: the feed ended by itself.
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v (a stream kept it waiting until the deadline)", err)
		}
	case <-time.After(50 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	feed.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(feedR); err != nil {
		t.Fatalf("the feed was not ended cleanly: %v", err)
	}
	if err := <-st.done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// TestServerShutdownDeadline: a request that never finishes is cut when
// the context ends, and Shutdown returns the context's error.
func TestServerShutdownDeadline(t *testing.T) {
	st := newServeT(t, ServerOptions{})
	c := st.rawRequest(t, "POST /jobs/default HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n")
	expectContinue(t, c, bufio.NewReader(c))
	io.WriteString(c, "{")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := st.s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a request that never ends: %v, want the deadline", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("the connection was not closed: %v", err)
	}
}

// TestServeAfterShutdown: a Serve started after Shutdown used to serve
// forever; it closes its listener and returns.
func TestServeAfterShutdown(t *testing.T) {
	m := newTestManager(t)
	s := NewServer(ServerOptions{Manager: m})
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	l, h, err := s.Listen(EndpointConfig{Name: "late", Bind: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l, h) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after Shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		l.Close()
		t.Fatal("Serve after Shutdown kept serving")
	}
	if c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("the listener of a Serve after Shutdown still accepts")
	}
}

// TestServerShutdownClosesControlChannel: the control channel's websocket
// is hijacked, so http.Server.Shutdown does not see it; Shutdown still
// closes it (1001).
func TestServerShutdownClosesControlChannel(t *testing.T) {
	st := newServeT(t, ServerOptions{})
	ws, _, err := WSDial(t.Context(), "ws://"+st.addr+"/channel/websocket", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.WriteText(`{"event": "CMD", "data": {"name": "sessions", "identity": 1}}`)
	if _, msg, err := ws.ReadMessage(); err != nil || !strings.Contains(string(msg), "command_success") {
		t.Fatalf("channel: %q %v", msg, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := st.s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *WSCloseError
		if !errors.As(err, &ce) || ce.Code != WSCloseGoingAway {
			t.Fatalf("control channel after Shutdown: %v, want a 1001 close", err)
		}
		break
	}
}

// TestBodyReadTimeout is the slow-body attack of issue 13: connections
// sending part of a body to POST /jobs/default used to stay open forever.
// Each is now answered 400 and closed once the body timeout passes.
func TestBodyReadTimeout(t *testing.T) {
	st := newServeT(t, ServerOptions{}, func(s *Server) { s.bodyTimeout = 300 * time.Millisecond })
	var conns []net.Conn
	for range 50 {
		conns = append(conns, st.rawRequest(t, "POST /jobs/default HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\": "))
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		data, err := io.ReadAll(c) // the server answers, then closes
		if err != nil {
			t.Fatalf("connection %d was not cut: %v (%q)", i, err, data)
		}
		if !strings.HasPrefix(string(data), "HTTP/1.1 400") || !strings.Contains(string(data), "did not arrive within") {
			t.Fatalf("connection %d: %q", i, data)
		}
	}
	// A body that arrives in time is served, on a connection that then
	// stays usable.
	body := `{"name": "ok", "cmd": "sleep 30", "start": false}`
	c := st.rawRequest(t, fmt.Sprintf("POST /jobs/default HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("a body in time: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// TestBodyReadTimeoutSparesStreams: the body timeout does not cut what
// streams: an event feed (no body) open well past the timeout, a stdin
// upload that takes longer than it.
func TestBodyReadTimeoutSparesStreams(t *testing.T) {
	st := newServeT(t, ServerOptions{}, func(s *Server) { s.bodyTimeout = 200 * time.Millisecond })
	cfg := childConfig(t, "cat", "echo", nil)
	cfg.RedirectInput = true
	if err := st.m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	pids, _ := st.m.Pids("default.cat")
	if len(pids) != 1 {
		t.Fatalf("pids %v", pids)
	}
	// The feed: two heartbeats (1 s apart, so past the timeout several
	// times over), then an event.
	feed := st.rawRequest(t, "GET /watch?feed=continuous&heartbeat=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	fr := bufio.NewReader(feed)
	resp, err := http.ReadResponse(fr, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("feed: %v %v", resp, err)
	}
	feed.SetReadDeadline(time.Now().Add(30 * time.Second))
	beats := 0
	for beats < 2 {
		line, err := readLine(resp.Body)
		if err != nil {
			t.Fatalf("the feed was cut after %d heartbeats: %v", beats, err)
		}
		if strings.TrimSpace(line) == "" {
			beats++
		}
	}
	if _, err := st.m.Scale("default.cat", ScaleOp{Value: 0}); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := readLine(resp.Body)
		if err != nil {
			t.Fatalf("the feed was cut before the event: %v", err)
		}
		if strings.Contains(line, "default.cat") {
			break
		}
	}
	// stdin: a chunked upload whose second half comes after the timeout.
	c := st.rawRequest(t, fmt.Sprintf("POST /streams/%d/stdin HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n", pids[0]))
	// Wait past the timeout by reading one more heartbeat of the feed.
	for {
		line, err := readLine(resp.Body)
		if err != nil {
			t.Fatalf("feed: %v", err)
		}
		if strings.TrimSpace(line) == "" {
			break
		}
	}
	io.WriteString(c, "6\r\nworld\n\r\n0\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	sresp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || sresp.StatusCode != 200 {
		t.Fatalf("a slow stdin upload was cut: %v %v", sresp, err)
	}
}

// readLine reads one line of a response body.
func readLine(r io.Reader) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for {
		n, err := r.Read(one)
		if n == 1 {
			b = append(b, one[0])
			if one[0] == '\n' {
				return string(b), nil
			}
		}
		if err != nil {
			return string(b), err
		}
	}
}

// TestOpenNetworkBindWarns: a non-loopback TCP bind with keys off logs a
// WARN naming the risk; loopback binds, unix sockets and require_key do
// not.
func TestOpenNetworkBindWarns(t *testing.T) {
	store, err := OpenAuthStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := newTestManager(t)
	for _, c := range []struct {
		bind       string
		requireKey bool
		warn       bool
	}{
		{"0.0.0.0:0", false, true},
		{"0.0.0.0:0", true, false},
		{"127.0.0.1:0", false, false},
		{"localhost:0", false, false},
		{"unix:" + filepath.Join(t.TempDir(), "g.sock"), false, false},
	} {
		var buf authLogBuffer
		s := NewServer(ServerOptions{Manager: m, Auth: store, RequireKey: c.requireKey,
			Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		l, _, err := s.Listen(EndpointConfig{Name: "ep", Bind: c.bind})
		if err != nil {
			t.Fatal(err)
		}
		l.Close() // never served
		got := strings.Contains(buf.String(), "level=WARN") && strings.Contains(buf.String(), "open to the network without keys")
		if got != c.warn {
			t.Errorf("bind %s require_key=%v: warned=%v, want %v (log: %s)", c.bind, c.requireKey, got, c.warn, buf.String())
		}
	}
}
