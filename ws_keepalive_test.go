package gaffer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// wsTestKeepalive is a short keepalive for the tests: a ping after 150 ms
// of silence, a drop 250 ms later.
var wsTestKeepalive = wsKeepalive{idle: 150 * time.Millisecond, wait: 250 * time.Millisecond}

// wsKeepaliveWait bounds the waits for a drop (the machine may be loaded).
const wsKeepaliveWait = 30 * time.Second

// wsRawHandshake completes a websocket handshake for path on a raw TCP
// connection and returns it with its reader: a client that reads nothing
// and answers nothing unless the test does.
func wsRawHandshake(t *testing.T, addr, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, wsTestWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(wsTestWait))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("raw handshake for %s: %v %v", path, resp, err)
	}
	conn.SetDeadline(time.Time{})
	return conn, br
}

// wsRawFrame reads one unmasked frame (the server's) of at most 125 bytes.
func wsRawFrame(t *testing.T, br *bufio.Reader) (op byte, payload []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	if h[1]&0x80 != 0 || h[1]&0x7f > 125 {
		t.Fatalf("unexpected frame header % x", h)
	}
	payload = make([]byte, h[1]&0x7f)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	return h[0] & 0x0f, payload
}

// wsReadUntilErr is a handler that reads until ReadMessage fails.
func wsReadUntilErr(c *WSConn) error {
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			return err
		}
	}
}

// A client that completes the handshake and then neither reads nor
// answers is pinged, then dropped with 1001: the reader gets that error
// and the client finds the ping and the close frame in its socket.
func TestWSKeepaliveDropsSilentClient(t *testing.T) {
	ka := wsTestKeepalive
	s := wsNewTestServer(t, &WSOptions{keepalive: &ka}, wsReadUntilErr)
	_, br := wsRawHandshake(t, s.Listener.Addr().String(), "/")
	var err error
	select {
	case err = <-s.ends:
	case <-time.After(wsKeepaliveWait):
		t.Fatal("the silent client was not dropped")
	}
	ce := wsExpectCloseErr(t, err, WSCloseGoingAway)
	if !strings.Contains(ce.Reason, "no answer to a ping within 0.25s") {
		t.Errorf("reason %q", ce.Reason)
	}
	if op, p := wsRawFrame(t, br); op != wsOpPing || string(p) != "keepalive" {
		t.Errorf("first frame: opcode %d %q, want the ping", op, p)
	}
	op, p := wsRawFrame(t, br)
	if op != wsOpClose || len(p) < 2 || binary.BigEndian.Uint16(p) != WSCloseGoingAway {
		t.Errorf("second frame: opcode %d % x, want a 1001 close", op, p)
	}
}

// A client that answers pings (our WSDial client answers them while it
// reads) stays connected through many keepalive periods.
func TestWSKeepaliveKeepsAnsweringClient(t *testing.T) {
	ka := wsTestKeepalive
	var pongs atomic.Int64
	s := wsNewTestServer(t, &WSOptions{keepalive: &ka}, func(c *WSConn) error {
		c.onPong = func([]byte) { pongs.Add(1) }
		return wsEcho(c)
	})
	c := wsTestDial(t, s.wsURL(), nil)
	c.SetReadDeadline(time.Time{})
	msgs := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				errc <- err
				return
			}
			msgs <- string(data)
		}
	}()
	// Six answered pings span more than four drop deadlines.
	waitFor(t, wsKeepaliveWait, "six answered pings", func() bool {
		select {
		case err := <-errc:
			t.Fatalf("the answering client was dropped: %v", err)
		default:
		}
		return pongs.Load() >= 6
	})
	if err := c.WriteText("still here"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if m != "still here" {
			t.Fatalf("echo %q", m)
		}
	case err := <-errc:
		t.Fatalf("the answering client was dropped: %v", err)
	case <-time.After(wsTestWait):
		t.Fatal("no echo")
	}
}

// An application busy with a message (not reading) cannot see the pong:
// its busy time does not count as the client's silence.
func TestWSKeepaliveBusyApplication(t *testing.T) {
	ka := wsTestKeepalive
	busy := 4 * (ka.idle + ka.wait)
	s := wsNewTestServer(t, &WSOptions{keepalive: &ka}, func(c *WSConn) error {
		if _, _, err := c.ReadMessage(); err != nil {
			return err
		}
		time.Sleep(busy) // the busy application under test, not a wait for a condition
		return wsEcho(c)
	})
	c := wsTestDial(t, s.wsURL(), nil)
	c.SetReadDeadline(time.Time{})
	echo := make(chan error, 1)
	go func() {
		_, data, err := c.ReadMessage() // answers the pings meanwhile
		if err == nil && string(data) != "second" {
			err = fmt.Errorf("echo %q", data)
		}
		echo <- err
	}()
	if err := c.WriteText("first"); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteText("second"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-echo:
		if err != nil {
			t.Fatalf("after the busy spell: %v", err)
		}
	case <-time.After(busy + wsKeepaliveWait):
		t.Fatal("no echo after the busy spell")
	}
}

// A client that stops reading while the server writes to it: the writer
// blocks on the full socket, the ping behind it too; the drop still comes
// and unblocks the writer.
func TestWSKeepaliveStuckWriter(t *testing.T) {
	ka := wsTestKeepalive
	writeErr := make(chan error, 1)
	s := wsNewTestServer(t, &WSOptions{keepalive: &ka}, func(c *WSConn) error {
		go func() {
			msg := make([]byte, 64<<10)
			for {
				if err := c.WriteMessage(WSBinary, msg); err != nil {
					writeErr <- err
					return
				}
			}
		}()
		return wsReadUntilErr(c)
	})
	wsRawHandshake(t, s.Listener.Addr().String(), "/")
	var err error
	select {
	case err = <-s.ends:
	case <-time.After(wsKeepaliveWait):
		t.Fatal("the client that stopped reading was not dropped")
	}
	wsExpectCloseErr(t, err, WSCloseGoingAway)
	select {
	case <-writeErr:
	case <-time.After(wsKeepaliveWait):
		t.Fatal("the writer stayed blocked")
	}
}

// kaEnv is a gafferd API server with a short keepalive, an echo job and
// the counts of what connections hold.
type kaEnv struct {
	m    *Manager
	s    *Server
	hs   *httptest.Server
	url  string // ws://host:port
	pid  int
	st   *Stream
	base kaCounts
}

type kaCounts struct{ busSubs, streamSubs, sessions, goroutines int }

func (e *kaEnv) counts() kaCounts {
	return kaCounts{chBusSubs(e.m), chStreamSubs(e.st), e.s.sockjs.Sessions(), runtime.NumGoroutine()}
}

// released waits until the subscriptions, SockJS sessions and goroutines
// are back to the baseline.
func (e *kaEnv) released(t *testing.T, what string) {
	t.Helper()
	var c kaCounts
	deadline := time.Now().Add(wsKeepaliveWait)
	for {
		c = e.counts()
		if c.busSubs <= e.base.busSubs && c.streamSubs <= e.base.streamSubs && c.sessions <= e.base.sessions && c.goroutines <= e.base.goroutines {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%s: still %+v after %v, baseline %+v\n%s", what, c, wsKeepaliveWait, e.base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func kaNewEnv(t *testing.T) *kaEnv {
	t.Helper()
	m := newTestManager(t)
	ka := wsTestKeepalive
	s := NewServer(ServerOptions{Manager: m, wsKeepalive: &ka})
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	cfg := childConfig(t, "echo", "echo", nil)
	iochEchoJob(&cfg)
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	pids, _ := m.Pids("default.echo")
	p, ok := m.Process(pids[0])
	if !ok {
		t.Fatal("no echo process")
	}
	st, _ := p.Stream("")
	return &kaEnv{m: m, s: s, hs: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http"), pid: pids[0], st: st}
}

// Every websocket gafferd serves drops a client gone silent, and with it
// the subscriptions and goroutines the client held; a client that answers
// pings, connected all along, is not dropped.
func TestKeepaliveReleasesGafferdWebsockets(t *testing.T) {
	e := kaNewEnv(t)
	good := chDial(t, e.url, nil)
	good.sub("EVENTS")
	// The baseline: the well-behaved client's subscription and goroutines
	// included, settled.
	waitFor(t, wsTestWait, "the good client's forwarder", func() bool {
		buf := make([]byte, 1<<20)
		return strings.Count(string(buf[:runtime.Stack(buf, true)]), "(*chConn).forwardEvents") == 1
	})
	e.base = e.counts()
	e.base.goroutines++ // each subtest runs in a goroutine of its own
	pid := strconv.Itoa(e.pid)
	addr := e.hs.Listener.Addr().String()

	t.Run("control channel, silent after subscribing", func(t *testing.T) {
		conn, br := wsRawHandshake(t, addr, "/channel/websocket")
		for _, topic := range []string{"EVENTS", "STREAM:" + pid} {
			sub := `{"event": "SUB", "data": {"topic": "` + topic + `"}}`
			if _, err := conn.Write(wsTestFrame(true, wsOpText, true, []byte(sub))); err != nil {
				t.Fatal(err)
			}
			if m := wsRawText(t, br); !strings.Contains(m, "subscription_success") {
				t.Fatalf("SUB %s: %s", topic, m)
			}
		}
		if n := e.counts(); n.busSubs != e.base.busSubs+1 || n.streamSubs != e.base.streamSubs+1 {
			t.Fatalf("subscribed: %+v, baseline %+v", n, e.base)
		}
		// From here on the client reads nothing and answers nothing.
		e.released(t, "silent control channel client")
	})
	t.Run("control channel, silent from the handshake on", func(t *testing.T) {
		wsRawHandshake(t, addr, "/channel/websocket")
		e.released(t, "silent raw client")
	})
	for _, path := range []string{"/" + pid + "/channel?mode=3", "/wstreams/" + pid} {
		t.Run(path, func(t *testing.T) {
			wsRawHandshake(t, addr, path)
			waitFor(t, wsTestWait, "the stream subscription", func() bool { return chStreamSubs(e.st) == e.base.streamSubs+1 })
			e.released(t, "silent "+path+" client")
		})
	}
	t.Run("SockJS websocket transport", func(t *testing.T) {
		_, br := wsRawHandshake(t, addr, "/channel/000/kasession/websocket")
		if op, p := wsRawFrame(t, br); op != wsOpText || string(p) != "o" {
			t.Fatalf("SockJS open frame: %d %q", op, p)
		}
		waitFor(t, wsTestWait, "the SockJS session", func() bool { return e.s.sockjs.Sessions() == e.base.sessions+1 })
		e.released(t, "silent SockJS websocket client")
	})

	// The well-behaved client lived through it all and still works.
	if r := good.ok("sessions"); r == nil {
		t.Fatal("no answer to sessions")
	}
	select {
	case err := <-good.err:
		t.Fatalf("the answering client was dropped: %v", err)
	default:
	}
}

// wsRawText reads the next text message of at most 125 bytes, skipping
// pings.
func wsRawText(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	for {
		op, p := wsRawFrame(t, br)
		if op == wsOpText {
			return string(p)
		}
		if op != wsOpPing {
			t.Fatalf("unexpected frame %d %q", op, p)
		}
	}
}

// A SockJS HTTP session whose client is gone is closed, with its
// subscriptions: a polling client that stops polling, and a streaming
// client that vanished without a FIN (its response stays open, the tiny
// heartbeats never fail), whose response now ends after the keepalive
// period, so that the session expires DisconnectDelay later.
func TestKeepaliveReleasesSockJSHTTPSessions(t *testing.T) {
	e := kaNewEnv(t)
	e.base = e.counts()
	e.base.goroutines++ // each subtest runs in a goroutine of its own
	sub, _ := json.Marshal([]string{`{"event": "SUB", "data": {"topic": "EVENTS"}}`})

	t.Run("xhr polling, no more polls", func(t *testing.T) {
		p := &sjPoller{t: t, base: e.hs.URL + "/channel/000/kapoll"}
		resp, body := sjDo(t, "POST", p.base+"/xhr", "", nil)
		sjExpect(t, resp, body, 200, "o\n")
		p.send(map[string]any{"event": "SUB", "data": map[string]any{"topic": "EVENTS"}})
		p.until("subscription", func(m map[string]any) bool { return m["event"] == "gaffer:subscription_success" })
		if n := e.counts(); n.busSubs != e.base.busSubs+1 || n.sessions != e.base.sessions+1 {
			t.Fatalf("subscribed: %+v, baseline %+v", n, e.base)
		}
		waitFor(t, wsKeepaliveWait, "the session closed", func() bool {
			n := e.counts()
			return n.busSubs == e.base.busSubs && n.sessions == e.base.sessions
		})
		// The client's idle keep-alive connections are not the session's.
		sjClient.CloseIdleConnections()
		e.released(t, "SockJS session without polls")
	})
	t.Run("xhr streaming, client gone without a FIN", func(t *testing.T) {
		addr := e.hs.Listener.Addr().String()
		conn, err := net.DialTimeout("tcp", addr, wsTestWait)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		base := "/channel/000/kastream"
		fmt.Fprintf(conn, "POST %s/xhr_streaming HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n", base, addr)
		conn.SetReadDeadline(time.Now().Add(wsTestWait))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("xhr_streaming: %v %v", resp, err)
		}
		// From here on the streaming client reads nothing; only its
		// xhr_send (another connection) subscribes.
		req, _ := http.NewRequest("POST", e.hs.URL+base+"/xhr_send", bytes.NewReader(sub))
		for _, c := range resp.Cookies() {
			req.AddCookie(c)
		}
		sresp, err := http.DefaultClient.Do(req)
		if err != nil || sresp.StatusCode != http.StatusNoContent {
			t.Fatalf("xhr_send: %v %v", sresp, err)
		}
		sresp.Body.Close()
		waitFor(t, wsTestWait, "the subscription", func() bool { return chBusSubs(e.m) == e.base.busSubs+1 })
		waitFor(t, wsKeepaliveWait, "the session closed", func() bool {
			n := e.counts()
			return n.busSubs == e.base.busSubs && n.sessions == e.base.sessions
		})
		// What is left is the HTTP server's idle keep-alive connection
		// (gafferd's IdleTimeout ends it) and the xhr_send client's.
		conn.Close()
		http.DefaultClient.CloseIdleConnections()
		e.released(t, "SockJS streaming session of a vanished client")
	})
}

// lookupd's node socket and event feed drop silent clients too.
func TestKeepaliveLookupd(t *testing.T) {
	ka := wsTestKeepalive
	lk, ts := lkTestServer(t, LookupdOptions{wsKeepalive: &ka})
	counts := func() (nodes, subs int) {
		lk.reg.mu.Lock()
		defer lk.reg.mu.Unlock()
		return len(lk.reg.nodes), len(lk.reg.subs)
	}
	addr := ts.Listener.Addr().String()
	wsRawHandshake(t, addr, "/lookup/websocket")
	conn, br := wsRawHandshake(t, addr, "/ws")
	identify := `{"type": "IDENTIFY", "msgid": "1", "name": "silent", "origin": "http://127.0.0.1:1", "version": "0.5.2"}`
	if _, err := conn.Write(wsTestFrame(true, wsOpText, true, []byte(identify))); err != nil {
		t.Fatal(err)
	}
	if m := wsRawText(t, br); !strings.Contains(m, `"ok":true`) {
		t.Fatalf("IDENTIFY: %s", m)
	}
	if n, s := counts(); n != 1 || s != 1 {
		t.Fatalf("%d nodes and %d feed subscribers, want 1 and 1", n, s)
	}
	waitFor(t, wsKeepaliveWait, "the silent node and feed client dropped", func() bool {
		n, s := counts()
		return n == 0 && s == 0
	})
}

// A real ws client (Node's ws, which answers pings by itself) stays
// connected to the control channel through many keepalive periods of
// silence, while a silent raw client connected over the same period is
// dropped.
func TestKeepaliveNodeClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; install Node.js, then run npm ci in test/node")
	}
	dir := filepath.Join("test", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws", "package.json")); err != nil {
		t.Skip("the ws package is missing: run npm ci in test/node")
	}
	e := kaNewEnv(t)
	silence := 10 * (wsTestKeepalive.idle + wsTestKeepalive.wait)
	ctx, cancel := context.WithTimeout(context.Background(), silence+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "ws_keepalive_client.mjs"), e.url+"/channel/websocket",
		strconv.Itoa(int(silence/time.Millisecond)))
	out := make(chan []byte, 1)
	go func() {
		b, err := cmd.CombinedOutput()
		if err != nil {
			b = append(b, []byte("\n"+err.Error())...)
		}
		out <- b
	}()
	// The silent client, over the same period.
	waitFor(t, wsTestWait, "the node client's subscription", func() bool { return chBusSubs(e.m) == 1 })
	e.base = e.counts()
	wsRawHandshake(t, e.hs.Listener.Addr().String(), "/channel/websocket")
	e.released(t, "the silent raw client")

	b := <-out
	m := regexp.MustCompile(`ok: pings=(\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("node client: %s", b)
	}
	if n, _ := strconv.Atoi(string(m[1])); n < 5 {
		t.Fatalf("node client got %d pings over %v of silence, want at least 5", n, silence)
	}
}
