package gaffer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// wsTestWait bounds every wait of these tests.
const wsTestWait = 10 * time.Second

// wsTestServer is an httptest server whose handler upgrades, hands the
// connection to serve (echo by default) and reports how it ended.
type wsTestServer struct {
	*httptest.Server
	conns chan *WSConn
	ends  chan error // the error that ended serve
}

func wsNewTestServer(t *testing.T, opt *WSOptions, serve func(c *WSConn) error) *wsTestServer {
	t.Helper()
	if serve == nil {
		serve = wsEcho
	}
	s := &wsTestServer{conns: make(chan *WSConn, 100), ends: make(chan error, 100)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := WSUpgrade(w, r, opt)
		if err != nil {
			return
		}
		s.conns <- c
		s.ends <- serve(c)
	}))
	t.Cleanup(s.Close)
	return s
}

// wsEcho echoes every message until ReadMessage fails.
func wsEcho(c *WSConn) error {
	for {
		op, data, err := c.ReadMessage()
		if err != nil {
			return err
		}
		if err := c.WriteMessage(op, data); err != nil {
			return err
		}
	}
}

func (s *wsTestServer) wsURL() string { return "ws" + strings.TrimPrefix(s.URL, "http") }

func (s *wsTestServer) conn(t *testing.T) *WSConn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(wsTestWait):
		t.Fatal("the server got no websocket connection")
	}
	return nil
}

func (s *wsTestServer) end(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.ends:
		return err
	case <-time.After(wsTestWait):
		t.Fatal("the server handler did not end")
	}
	return nil
}

func wsTestDial(t *testing.T, url string, header http.Header) *WSConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wsTestWait)
	defer cancel()
	c, resp, err := WSDial(ctx, url, header, nil)
	if err != nil {
		t.Fatalf("WSDial(%s): %v", url, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	t.Cleanup(func() { c.CloseNow() })
	c.SetReadDeadline(time.Now().Add(wsTestWait))
	return c
}

// wsTestFrame encodes one raw frame; mask uses a fixed key.
func wsTestFrame(fin bool, op byte, mask bool, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	var m byte
	if mask {
		m = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		out = append(out, m|byte(n))
	case n <= 0xffff:
		out = append(out, m|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, m|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	p := append([]byte(nil), payload...)
	if mask {
		key := [4]byte{0x12, 0x34, 0x56, 0x78}
		out = append(out, key[:]...)
		for i := range p {
			p[i] ^= key[i&3]
		}
	}
	return append(out, p...)
}

func wsClosePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// wsTestWriteRaw writes raw bytes on c's connection (no other writer may
// be active).
func wsTestWriteRaw(t *testing.T, c *WSConn, frames ...[]byte) {
	t.Helper()
	if _, err := c.conn.Write(bytes.Join(frames, nil)); err != nil {
		t.Fatalf("raw write: %v", err)
	}
}

// wsTestReadRaw reads one raw frame from c (the reader must be idle).
func wsTestReadRaw(t *testing.T, c *WSConn) (op byte, fin bool, payload []byte) {
	t.Helper()
	h, err := c.readFrameHeader()
	if err != nil {
		t.Fatalf("raw read header: %v", err)
	}
	payload, err = c.readPayload(nil, h)
	if err != nil {
		t.Fatalf("raw read payload: %v", err)
	}
	return h.op, h.fin, payload
}

// wsTestExpectClose reads raw frames until a close frame and checks its code.
func wsTestExpectClose(t *testing.T, c *WSConn, code int) {
	t.Helper()
	for {
		op, _, p := wsTestReadRaw(t, c)
		if op != wsOpClose {
			continue
		}
		if len(p) < 2 || int(binary.BigEndian.Uint16(p)) != code {
			t.Fatalf("close frame %q, want code %d", p, code)
		}
		return
	}
}

func wsExpectCloseErr(t *testing.T, err error, code int) *WSCloseError {
	t.Helper()
	var ce *WSCloseError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T), want a *WSCloseError %d", err, err, code)
	}
	if ce.Code != code {
		t.Fatalf("close code %d (%q), want %d", ce.Code, ce.Reason, code)
	}
	return ce
}

func wsExpectDone(t *testing.T, c *WSConn) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(wsTestWait):
		t.Fatal("the connection was not finished")
	}
}

func TestWSHandshakeStatuses(t *testing.T) {
	s := wsNewTestServer(t, nil, nil)
	good := func() http.Header {
		return http.Header{
			"Connection":            {"keep-alive, Upgrade"},
			"Upgrade":               {"WebSocket"},
			"Sec-Websocket-Version": {"13"},
			"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
		}
	}
	cases := []struct {
		name   string
		method string
		edit   func(h http.Header)
		status int
		code   string
	}{
		{"post", "POST", nil, 405, CodeMethodNotAllow},
		{"no connection upgrade", "GET", func(h http.Header) { h.Set("Connection", "keep-alive") }, 400, CodeBadRequest},
		{"no upgrade header", "GET", func(h http.Header) { h.Del("Upgrade") }, 400, CodeBadRequest},
		{"wrong upgrade", "GET", func(h http.Header) { h.Set("Upgrade", "h2c") }, 400, CodeBadRequest},
		{"version 8", "GET", func(h http.Header) { h.Set("Sec-Websocket-Version", "8") }, 426, CodeBadRequest},
		{"no version", "GET", func(h http.Header) { h.Del("Sec-Websocket-Version") }, 426, CodeBadRequest},
		{"no key", "GET", func(h http.Header) { h.Del("Sec-Websocket-Key") }, 400, CodeBadRequest},
		{"short key", "GET", func(h http.Header) { h.Set("Sec-Websocket-Key", "AAAA") }, 400, CodeBadRequest},
		{"non-base64 key", "GET", func(h http.Header) { h.Set("Sec-Websocket-Key", "not base64 at all!!!!!==") }, 400, CodeBadRequest},
		{"foreign origin", "GET", func(h http.Header) { h.Set("Origin", "http://evil.example") }, 403, CodeForbidden},
		{"null origin", "GET", func(h http.Header) { h.Set("Origin", "null") }, 403, CodeForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, s.URL+"/ws", nil)
			req.Header = good()
			if tc.edit != nil {
				tc.edit(req.Header)
			}
			resp, err := s.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			var body ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body: %v", err)
			}
			if body.Error != tc.code || body.Errno != tc.status || body.Reason == "" {
				t.Fatalf("body %+v, want code %s errno %d", body, tc.code, tc.status)
			}
			if tc.status == 426 && resp.Header.Get("Sec-WebSocket-Version") != "13" {
				t.Fatalf("426 without Sec-WebSocket-Version: 13")
			}
		})
	}

	// A same-origin browser request and one accepted by CheckOrigin pass.
	host := strings.TrimPrefix(s.URL, "http://")
	c := wsTestDial(t, s.wsURL(), http.Header{"Origin": {"HTTP://" + strings.ToUpper(host)}})
	c.CloseNow()
	s2 := wsNewTestServer(t, &WSOptions{CheckOrigin: func(r *http.Request) bool {
		return r.Header.Get("Origin") == "https://ui.example"
	}}, nil)
	c = wsTestDial(t, s2.wsURL(), http.Header{"Origin": {"https://ui.example"}})
	c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), wsTestWait)
	defer cancel()
	_, resp, err := WSDial(ctx, s2.wsURL(), http.Header{"Origin": {"http://" + host}}, nil)
	if !errors.Is(err, ErrWSBadHandshake) || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("refused origin: err %v resp %v", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	if !bytes.Contains(body, []byte(`"forbidden"`)) {
		t.Fatalf("refused origin body %q", body)
	}
}

func TestWSSameOrigin(t *testing.T) {
	cases := []struct {
		host, origin string
		ok           bool
	}{
		{"example.com", "", true},
		{"example.com:8080", "http://example.com:8080", true},
		{"Example.COM:8080", "https://example.com:8080", true},
		{"example.com:8080", "http://example.com", false},
		{"example.com", "http://evil.com", false},
		{"example.com", "null", false},
		{"example.com", "::", false},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = tc.host
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if got := WSSameOrigin(r); got != tc.ok {
			t.Errorf("host %q origin %q: %v, want %v", tc.host, tc.origin, got, tc.ok)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	if IsWebSocketUpgrade(r) {
		t.Error("plain GET taken for an upgrade")
	}
	r.Header.Set("Connection", "keep-alive, UPGRADE")
	r.Header.Set("Upgrade", "websocket")
	if !IsWebSocketUpgrade(r) {
		t.Error("upgrade request not recognized")
	}
}

func TestWSEcho(t *testing.T) {
	s := wsNewTestServer(t, &WSOptions{Subprotocols: []string{"gaffer.v2", "gaffer.v1"}}, nil)
	c := wsTestDial(t, s.wsURL()+"/stream?x=1", http.Header{"Sec-Websocket-Protocol": {"other, gaffer.v1", "gaffer.v2"}})
	sc := s.conn(t)
	if c.Subprotocol() != "gaffer.v2" || sc.Subprotocol() != "gaffer.v2" {
		t.Fatalf("subprotocols %q / %q", c.Subprotocol(), sc.Subprotocol())
	}
	if sc.Request() == nil || sc.Request().URL.RawQuery != "x=1" || c.Request() != nil {
		t.Fatalf("Request(): %v / %v", sc.Request(), c.Request())
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640 KB
	msgs := []struct {
		op   WSOpcode
		data []byte
	}{
		{WSText, []byte("hello")},
		{WSBinary, []byte{0, 1, 2, 255}},
		{WSText, []byte{}},
		{WSText, []byte("héllo wörld ✓")},
		{WSBinary, bytes.Repeat([]byte{7}, 126)},
		{WSBinary, bytes.Repeat([]byte{9}, 70000)},
		{WSBinary, big},
	}
	for _, m := range msgs {
		if err := c.WriteMessage(m.op, m.data); err != nil {
			t.Fatal(err)
		}
		op, data, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if op != m.op || !bytes.Equal(data, m.data) {
			t.Fatalf("echo of %v/%d bytes: got %v/%d bytes", m.op, len(m.data), op, len(data))
		}
	}
	if err := c.WriteText("text"); err != nil {
		t.Fatal(err)
	}
	if op, data, err := c.ReadMessage(); err != nil || op != WSText || string(data) != "text" {
		t.Fatalf("WriteText echo: %v %q %v", op, data, err)
	}
	if err := c.WriteJSON(map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	if op, data, err := c.ReadMessage(); err != nil || op != WSText || string(data) != `{"a":1}` {
		t.Fatalf("WriteJSON echo: %v %q %v", op, data, err)
	}
	if err := c.WriteMessage(WSOpcode(9), nil); err == nil {
		t.Fatal("WriteMessage accepted a control opcode")
	}
	if err := c.Close(WSCloseNormal, "done"); err != nil {
		t.Fatal(err)
	}
	ce := wsExpectCloseErr(t, s.end(t), WSCloseNormal)
	if ce.Reason != "done" {
		t.Fatalf("reason %q", ce.Reason)
	}
	wsExpectDone(t, c)
	wsExpectDone(t, sc)
	// The client read the server's answer itself in Close.
	_, _, err := c.ReadMessage()
	wsExpectCloseErr(t, err, WSCloseNormal)
}

func TestWSTLSAndUnix(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := WSUpgrade(w, r, nil)
		if err != nil {
			return
		}
		c.WriteText(r.URL.RequestURI())
		wsEcho(c)
	})
	tlsSrv := httptest.NewTLSServer(handler)
	defer tlsSrv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(tlsSrv.Certificate())

	sock := filepath.Join(t.TempDir(), "ws.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	unixSrv := &http.Server{Handler: handler}
	go unixSrv.Serve(ln)
	defer unixSrv.Close()

	for _, tc := range []struct{ url, path string }{
		{"wss" + strings.TrimPrefix(tlsSrv.URL, "https") + "/tls?a=b", "/tls?a=b"},
		{"ws+unix://" + sock + ":/over/unix?q=1", "/over/unix?q=1"},
		{"ws+unix://" + sock, "/"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), wsTestWait)
		c, _, err := WSDial(ctx, tc.url, nil, &tls.Config{RootCAs: pool})
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		c.SetReadDeadline(time.Now().Add(wsTestWait))
		if _, data, err := c.ReadMessage(); err != nil || string(data) != tc.path {
			t.Fatalf("%s: path %q, %v", tc.url, data, err)
		}
		c.WriteText("ping?")
		if _, data, err := c.ReadMessage(); err != nil || string(data) != "ping?" {
			t.Fatalf("%s: echo %q, %v", tc.url, data, err)
		}
		c.Close(WSCloseNormal, "")
		wsExpectDone(t, c)
	}
}

func TestWSBufferedAfterHandshake(t *testing.T) {
	s := wsNewTestServer(t, nil, nil)
	conn, err := net.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	// The request and two frames in one write: the frames sit in the
	// server's buffer when it hijacks.
	all := append([]byte(req), wsTestFrame(true, wsOpText, true, []byte("early"))...)
	all = append(all, wsTestFrame(true, wsOpBinary, true, []byte("bird"))...)
	if _, err := conn.Write(all); err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(wsTestWait))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	c := wsNewConn(conn, br, bufio.NewWriter(conn), false, 0)
	for _, want := range []string{"early", "bird"} {
		_, data, err := c.ReadMessage()
		if err != nil || string(data) != want {
			t.Fatalf("got %q %v, want %q", data, err, want)
		}
	}
}

func TestWSFragmentation(t *testing.T) {
	s := wsNewTestServer(t, nil, nil)
	c := wsTestDial(t, s.wsURL(), nil)
	var pongs []string
	c.onPong = func(p []byte) { pongs = append(pongs, string(p)) }
	// "é" is split across fragments: UTF-8 is checked on the whole message.
	wsTestWriteRaw(t, c,
		wsTestFrame(false, wsOpText, true, []byte("frag-\xc3")),
		wsTestFrame(true, wsOpPing, true, []byte("in-between")),
		wsTestFrame(false, wsOpContinuation, true, []byte("\xa9-")),
		wsTestFrame(false, wsOpContinuation, true, nil),
		wsTestFrame(true, wsOpContinuation, true, []byte("end")),
		wsTestFrame(false, wsOpBinary, true, []byte{1}),
		wsTestFrame(true, wsOpContinuation, true, []byte{2, 3}),
	)
	op, data, err := c.ReadMessage()
	if err != nil || op != WSText || string(data) != "frag-é-end" {
		t.Fatalf("got %v %q %v", op, data, err)
	}
	if len(pongs) != 1 || pongs[0] != "in-between" {
		t.Fatalf("pongs %q", pongs)
	}
	op, data, err = c.ReadMessage()
	if err != nil || op != WSBinary || !bytes.Equal(data, []byte{1, 2, 3}) {
		t.Fatalf("got %v %v %v", op, data, err)
	}

	// The client reassembles the server's fragments too.
	s2 := wsNewTestServer(t, nil, func(sc *WSConn) error {
		sc.conn.Write(bytes.Join([][]byte{
			wsTestFrame(false, wsOpBinary, false, []byte("ab")),
			wsTestFrame(true, wsOpPing, false, []byte("p")),
			wsTestFrame(true, wsOpContinuation, false, []byte("cd")),
		}, nil))
		return wsEcho(sc)
	})
	c2 := wsTestDial(t, s2.wsURL(), nil)
	op, data, err = c2.ReadMessage()
	if err != nil || op != WSBinary || string(data) != "abcd" {
		t.Fatalf("client reassembly: %v %q %v", op, data, err)
	}
}

func TestWSPingPong(t *testing.T) {
	got := make(chan string, 1)
	s := wsNewTestServer(t, nil, func(sc *WSConn) error {
		sc.onPong = func(p []byte) { got <- string(p) } // before reading starts
		return wsEcho(sc)
	})
	c := wsTestDial(t, s.wsURL(), nil)
	sc := s.conn(t)
	if err := c.Ping([]byte("are you there")); err != nil {
		t.Fatal(err)
	}
	op, _, p := wsTestReadRaw(t, c)
	if op != wsOpPong || string(p) != "are you there" {
		t.Fatalf("got op %d %q, want the pong", op, p)
	}
	if err := c.Ping(make([]byte, 126)); err == nil {
		t.Fatal("126-byte ping accepted")
	}
	// The server pings; the client's ReadMessage answers while it waits
	// for a data message.
	if err := sc.Ping([]byte("hb")); err != nil {
		t.Fatal(err)
	}
	readDone := make(chan error, 1)
	go func() {
		_, data, err := c.ReadMessage()
		if err == nil && string(data) != "after" {
			err = fmt.Errorf("got %q", data)
		}
		readDone <- err
	}()
	select {
	case p := <-got:
		if p != "hb" {
			t.Fatalf("pong %q", p)
		}
	case <-time.After(wsTestWait):
		t.Fatal("no pong from the client")
	}
	if err := c.WriteText("after"); err != nil {
		t.Fatal(err)
	}
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
}
