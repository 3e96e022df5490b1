package gaffer

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// sjTestServer serves an echo service at /echo and a service that closes
// every session at once at /close.
func sjTestServer(t *testing.T, opts SockJSOptions) (*httptest.Server, *SockJS) {
	t.Helper()
	echo := NewSockJS("/echo", opts, func(s SockJSSession) {
		for {
			m, err := s.Recv()
			if err != nil {
				return
			}
			if m == "close-me" {
				s.Close(4000, "asked to")
				return
			}
			s.Send(m)
		}
	})
	closer := NewSockJS("/close", opts, func(s SockJSSession) {})
	mux := http.NewServeMux()
	mux.Handle("/echo", echo)
	mux.Handle("/echo/", echo)
	mux.Handle("/close/", closer)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		echo.Close()
		closer.Close()
	})
	return srv, echo
}

// sjClient keeps cookies, as a browser does: HTTP sessions are bound to
// their client by a cookie (sjCookie).
var sjClient = func() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}()

func sjDo(t *testing.T, method, url, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := sjClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func sjExpect(t *testing.T, resp *http.Response, body string, status int, wantBody string) {
	t.Helper()
	if resp.StatusCode != status || body != wantBody {
		if len(body) > 300 {
			body = body[:300] + "…"
		}
		t.Fatalf("%s %s: got %d %q, want %d %q", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, body, status, wantBody)
	}
}

func TestSockJSGreetingAndInfo(t *testing.T) {
	srv, _ := sjTestServer(t, SockJSOptions{CookieNeeded: true})
	for _, p := range []string{"/echo", "/echo/"} {
		resp, body := sjDo(t, "GET", srv.URL+p, "", nil)
		sjExpect(t, resp, body, 200, "Welcome to SockJS!\n")
		if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
			t.Errorf("greeting content type %q", ct)
		}
		if resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("greeting sets a cookie")
		}
	}
	for _, p := range []string{"/echo/a", "/echo/a.html", "/echo/a/a", "/echo/a/a/", "/echo/a./a/xhr", "/echo/a/a./xhr", "/echo///xhr"} {
		resp, body := sjDo(t, "GET", srv.URL+p, "", nil)
		if resp.StatusCode != 404 || !strings.Contains(body, `"not_found"`) {
			t.Errorf("GET %s: %d %s, want a JSON 404", p, resp.StatusCode, body)
		}
	}
	var entropies []float64
	for i := 0; i < 2; i++ {
		resp, body := sjDo(t, "GET", srv.URL+"/echo/info", "", nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json; charset=UTF-8" ||
			resp.Header.Get("Cache-Control") != "no-store, no-cache, must-revalidate, max-age=0" ||
			resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Fatalf("info: %d %v", resp.StatusCode, resp.Header)
		}
		var info map[string]any
		if err := json.Unmarshal([]byte(body), &info); err != nil {
			t.Fatalf("info body %q: %v", body, err)
		}
		if info["websocket"] != true || info["cookie_needed"] != true || len(info["origins"].([]any)) != 1 {
			t.Fatalf("info %v", info)
		}
		entropies = append(entropies, info["entropy"].(float64))
	}
	if entropies[0] == entropies[1] {
		t.Errorf("entropy repeats: %v", entropies)
	}
	resp, body := sjDo(t, "OPTIONS", srv.URL+"/echo/info", "", map[string]string{"Origin": srv.URL})
	if resp.StatusCode != 204 || body != "" || resp.Header.Get("Access-Control-Allow-Methods") != "OPTIONS, GET" ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "max-age=31536000") || resp.Header.Get("Expires") == "" ||
		resp.Header.Get("Access-Control-Allow-Origin") != srv.URL {
		t.Fatalf("OPTIONS info: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = sjDo(t, "OPTIONS", srv.URL+"/echo/abc/abc/xhr_send", "", nil)
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Methods") != "OPTIONS, POST" {
		t.Fatalf("OPTIONS xhr_send: %d %v", resp.StatusCode, resp.Header)
	}
	// A foreign origin is refused (CheckOrigin defaults to same-origin).
	resp, body = sjDo(t, "POST", srv.URL+"/echo/000/x/xhr", "", map[string]string{"Origin": "http://evil.example"})
	if resp.StatusCode != 403 || !strings.Contains(body, "forbidden") {
		t.Fatalf("foreign origin: %d %s", resp.StatusCode, body)
	}
}

func TestSockJSXHRPolling(t *testing.T) {
	srv, h := sjTestServer(t, SockJSOptions{CookieNeeded: true})
	base := srv.URL + "/echo/000/s1"
	resp, body := sjDo(t, "POST", base+"/xhr", "", nil)
	sjExpect(t, resp, body, 200, "o\n")
	if ct := resp.Header.Get("Content-Type"); ct != "application/javascript; charset=UTF-8" {
		t.Errorf("xhr content type %q", ct)
	}
	if c := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(c, "JSESSIONID=dummy; Path=/") {
		t.Errorf("xhr cookie %q", c)
	}
	resp, body = sjDo(t, "POST", base+"/xhr_send", `["a"]`, nil)
	sjExpect(t, resp, body, 204, "")
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
		t.Errorf("xhr_send content type %q", ct)
	}
	// The session's cookie is scoped to its path, server id included
	// (sockjs-client keeps the server id of a session): under another
	// server id the client does not prove it owns the session.
	resp, body = sjDo(t, "POST", srv.URL+"/echo/999/s1/xhr", "", nil)
	if resp.StatusCode != 403 {
		t.Fatalf("the session under another server id: %d %s", resp.StatusCode, body)
	}
	resp, body = sjDo(t, "POST", base+"/xhr", "", map[string]string{"Cookie": "JSESSIONID=abc"})
	sjExpect(t, resp, body, 200, "a[\"a\"]\n")
	if c := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(c, "JSESSIONID=abc; Path=/") {
		t.Errorf("cookie not echoed: %q", c)
	}
	// Several messages, several content types, one string alone.
	for _, ct := range []string{"text/plain", "application/json", "", "T"} {
		resp, body = sjDo(t, "POST", base+"/xhr_send", `["x","y"]`, map[string]string{"Content-Type": ct})
		sjExpect(t, resp, body, 204, "")
	}
	resp, body = sjDo(t, "POST", base+"/xhr_send", `"z"`, nil)
	sjExpect(t, resp, body, 204, "")
	// The echo app may not have answered all of them by the time we poll:
	// collect until every message came back.
	var got []string
	waitFor(t, 5*time.Second, "the echoes", func() bool {
		resp, body := sjDo(t, "POST", base+"/xhr", "", nil)
		var msgs []string
		if resp.StatusCode == 200 && strings.HasPrefix(body, "a") {
			json.Unmarshal([]byte(strings.TrimSpace(body)[1:]), &msgs)
			got = append(got, msgs...)
		}
		return len(got) >= 9
	})
	if strings.Join(got, "") != "xyxyxyxyz" {
		t.Fatalf("echoes %q", got)
	}
	// Broken and missing payloads.
	resp, body = sjDo(t, "POST", base+"/xhr_send", `["x`, nil)
	if resp.StatusCode != 500 || !strings.Contains(body, "Broken JSON encoding.") {
		t.Fatalf("broken JSON: %d %s", resp.StatusCode, body)
	}
	resp, body = sjDo(t, "POST", base+"/xhr_send", ``, nil)
	if resp.StatusCode != 500 || !strings.Contains(body, "Payload expected.") {
		t.Fatalf("no payload: %d %s", resp.StatusCode, body)
	}
	resp, body = sjDo(t, "POST", base+"/xhr_send", `[1]`, nil)
	if resp.StatusCode != 500 {
		t.Fatalf("non-string message: %d %s", resp.StatusCode, body)
	}
	// Unknown session.
	resp, _ = sjDo(t, "POST", srv.URL+"/echo/000/nosuch/xhr_send", `["a"]`, nil)
	if resp.StatusCode != 404 {
		t.Fatalf("xhr_send to an unknown session: %d", resp.StatusCode)
	}
	// A second receiver while one waits gets 2010.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/xhr", nil)
	waiting := make(chan error, 1)
	go func() {
		resp, err := sjClient.Do(req)
		if err == nil {
			io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		waiting <- err
	}()
	waitFor(t, 5*time.Second, "the first receiver to attach", func() bool {
		h.mu.Lock()
		s := h.sessions["s1"]
		h.mu.Unlock()
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.attached
	})
	resp, body = sjDo(t, "POST", base+"/xhr", "", nil)
	sjExpect(t, resp, body, 200, "c[2010,\"Another connection still open\"]\n")
	// Aborting the waiting receiver closes the session (1002).
	cancel()
	<-waiting
	waitFor(t, 5*time.Second, "the interrupted session to answer 1002", func() bool {
		resp, body := sjDo(t, "POST", base+"/xhr", "", nil)
		return resp.StatusCode == 200 && body == "c[1002,\"Connection interrupted\"]\n"
	})
}

func TestSockJSCloseAndTimeout(t *testing.T) {
	srv, h := sjTestServer(t, SockJSOptions{DisconnectDelay: 200 * time.Millisecond})
	base := srv.URL + "/close/000/c1"
	resp, body := sjDo(t, "POST", base+"/xhr", "", nil)
	sjExpect(t, resp, body, 200, "o\n")
	for i := 0; i < 2; i++ {
		resp, body = sjDo(t, "POST", base+"/xhr", "", nil)
		sjExpect(t, resp, body, 200, "c[3000,\"Go away!\"]\n")
	}
	// An application close with its own code.
	eb := srv.URL + "/echo/000/c2"
	resp, body = sjDo(t, "POST", eb+"/xhr", "", nil)
	sjExpect(t, resp, body, 200, "o\n")
	sjDo(t, "POST", eb+"/xhr_send", `["close-me"]`, nil)
	resp, body = sjDo(t, "POST", eb+"/xhr", "", nil)
	sjExpect(t, resp, body, 200, "c[4000,\"asked to\"]\n")
	// Without a receiver the sessions time out and are forgotten.
	waitFor(t, 5*time.Second, "the sessions to expire", func() bool { return h.Sessions() == 0 })
	resp, body = sjDo(t, "POST", eb+"/xhr", "", nil)
	sjExpect(t, resp, body, 200, "o\n")
}

// sjStream opens a streaming receiver and returns a reader of its body.
func sjStream(t *testing.T, method, url string) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := sjClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, bufio.NewReader(resp.Body)
}

func sjReadN(t *testing.T, br *bufio.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		t.Fatalf("reading %d bytes: %v (got %q)", n, err, b)
	}
	return string(b)
}

func TestSockJSXHRStreaming(t *testing.T) {
	srv, _ := sjTestServer(t, SockJSOptions{ResponseLimit: 4096})
	base := srv.URL + "/echo/000/st"
	resp, br := sjStream(t, "POST", base+"/xhr_streaming")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/javascript; charset=UTF-8" ||
		resp.Header.Get("Cache-Control") != "no-store, no-cache, must-revalidate, max-age=0" {
		t.Fatalf("xhr_streaming: %d %v", resp.StatusCode, resp.Header)
	}
	if p := sjReadN(t, br, 2049); p != strings.Repeat("h", 2048)+"\n" {
		t.Fatalf("prelude %q", p)
	}
	if o := sjReadN(t, br, 2); o != "o\n" {
		t.Fatalf("open frame %q", o)
	}
	// A second receiver meanwhile: prelude, 2010, end.
	_, br2 := sjStream(t, "POST", base+"/xhr_streaming")
	sjReadN(t, br2, 2049)
	if rest, _ := io.ReadAll(br2); string(rest) != "c[2010,\"Another connection still open\"]\n" {
		t.Fatalf("second receiver: %q", rest)
	}
	msg := `"` + strings.Repeat("x", 128) + `"`
	for i := 0; i < 31; i++ {
		resp, body := sjDo(t, "POST", base+"/xhr_send", "["+msg+"]", nil)
		sjExpect(t, resp, body, 204, "")
		want := "a[" + msg + "]\n"
		if got := sjReadN(t, br, len(want)); got != want {
			t.Fatalf("message %d: %q", i, got)
		}
	}
	// Past the response limit the response ends; the session goes on.
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after the limit: %q %v", rest, err)
	}
	_, br3 := sjStream(t, "POST", base+"/xhr_streaming")
	sjReadN(t, br3, 2049)
	sjDo(t, "POST", base+"/xhr_send", `["again"]`, nil)
	if got := sjReadN(t, br3, len("a[\"again\"]\n")); got != "a[\"again\"]\n" {
		t.Fatalf("next response: %q", got)
	}
}

func TestSockJSEventSource(t *testing.T) {
	srv, _ := sjTestServer(t, SockJSOptions{})
	base := srv.URL + "/echo/000/es"
	resp, br := sjStream(t, "GET", base+"/eventsource")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream; charset=UTF-8" {
		t.Fatalf("eventsource: %d %v", resp.StatusCode, resp.Header)
	}
	if p := sjReadN(t, br, 2); p != "\r\n" {
		t.Fatalf("prelude %q", p)
	}
	want := "data: o\r\n\r\n"
	if got := sjReadN(t, br, len(want)); got != want {
		t.Fatalf("open %q", got)
	}
	// Control characters, quotes and non-ASCII (BMP and beyond) come back
	// escaped as pure ASCII JSON.
	sjDo(t, "POST", base+"/xhr_send", `["  \u0000\n\r \"é\u2028😀"]`, nil)
	want = "data: a[\"  \\u0000\\n\\r \\\"\\u00e9\\u2028\\ud83d\\ude00\"]\r\n\r\n"
	if got := sjReadN(t, br, len(want)); got != want {
		t.Fatalf("escaped message %q, want %q", got, want)
	}
}

func TestSockJSWebSocket(t *testing.T) {
	srv, h := sjTestServer(t, SockJSOptions{})
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http")
	ctx := context.Background()
	dial := func(path string) *WSConn {
		c, _, err := WSDial(ctx, wsURL+path, nil, nil)
		if err != nil {
			t.Fatalf("dial %s: %v", path, err)
		}
		t.Cleanup(func() { c.CloseNow() })
		return c
	}
	read := func(c *WSConn) string {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, m, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return string(m)
	}
	c1 := dial("/echo/000/w/websocket")
	c2 := dial("/echo/000/w/websocket") // the same id: a separate session
	if read(c1) != "o" || read(c2) != "o" {
		t.Fatal("no open frame")
	}
	c1.WriteText("")
	c1.WriteText(`["a","b"]`)
	c2.WriteText(`"c"`)
	got := read(c1)
	if got == `a["a"]` {
		got += read(c1)
	}
	if got != `a["a","b"]` && got != `a["a"]a["b"]` {
		t.Fatalf("echo on c1: %q", got)
	}
	if m := read(c2); m != `a["c"]` {
		t.Fatalf("echo on c2: %q", m)
	}
	// The application closes: the close frame, then the end.
	c1.WriteText(`["close-me"]`)
	if m := read(c1); m != `c[4000,"asked to"]` {
		t.Fatalf("close frame %q", m)
	}
	c1.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c1.ReadMessage(); err == nil {
		t.Fatal("the connection stayed open after the close frame")
	}
	// Broken JSON ends the connection abruptly.
	c2.WriteText(`["a`)
	c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c2.ReadMessage(); err == nil {
		t.Fatal("broken JSON did not end the connection")
	}
	waitFor(t, 5*time.Second, "the websocket sessions to be released", func() bool { return h.Sessions() == 0 })

	// Plain HTTP on the websocket URL.
	resp, body := sjDo(t, "GET", srv.URL+"/echo/0/0/websocket", "", nil)
	if resp.StatusCode != 400 || !strings.Contains(body, `Can \"Upgrade\" only to \"WebSocket\".`) {
		t.Fatalf("GET websocket: %d %s", resp.StatusCode, body)
	}
	resp, body = sjDo(t, "GET", srv.URL+"/echo/0/0/websocket", "", map[string]string{"Upgrade": "WebSocket", "Connection": "close"})
	if resp.StatusCode != 400 || !strings.Contains(body, `\"Connection\" must be \"Upgrade\".`) {
		t.Fatalf("bad Connection: %d %s", resp.StatusCode, body)
	}
	resp, _ = sjDo(t, "POST", srv.URL+"/echo/0/0/websocket", "", nil)
	if resp.StatusCode != 405 || resp.Header.Get("Allow") == "" {
		t.Fatalf("POST websocket: %d", resp.StatusCode)
	}
}

func TestSockJSSessionBelongsToItsAddress(t *testing.T) {
	srv, _ := sjTestServer(t, SockJSOptions{})
	resp, body := sjDo(t, "POST", srv.URL+"/echo/000/mine/xhr", "", nil)
	sjExpect(t, resp, body, 200, "o\n")
	// Another loopback address cannot poll or feed the session.
	other := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	defer other.CloseIdleConnections()
	req, _ := http.NewRequest("POST", srv.URL+"/echo/000/mine/xhr_send", strings.NewReader(`["x"]`))
	r2, err := other.Do(req)
	if err != nil {
		t.Skipf("cannot use 127.0.0.2 here: %v", err)
	}
	r2.Body.Close()
	if r2.StatusCode != 404 {
		t.Fatalf("xhr_send from another address: %d", r2.StatusCode)
	}
	req, _ = http.NewRequest("POST", srv.URL+"/echo/000/mine/xhr", nil)
	r2, err = other.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 403 {
		t.Fatalf("xhr from another address: %d", r2.StatusCode)
	}
}

func TestSockJSSlowClientIsDisconnected(t *testing.T) {
	sent := make(chan error, 1)
	h := NewSockJS("/flood", SockJSOptions{MaxQueuedBytes: 64 << 10}, func(s SockJSSession) {
		chunk := strings.Repeat("x", 1024)
		for i := 0; i < 1000; i++ {
			if err := s.Send(chunk); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
		<-s.Done()
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.Close()
	resp, body := sjDo(t, "POST", srv.URL+"/flood/0/f/xhr", "", nil)
	sjExpect(t, resp, body, 200, "o\n")
	select {
	case err := <-sent:
		if err == nil {
			t.Fatal("1000 KiB were queued for a client that did not read")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Send blocked")
	}
	resp, body = sjDo(t, "POST", srv.URL+"/flood/0/f/xhr", "", nil)
	sjExpect(t, resp, body, 200, "c[1008,\"client too slow\"]\n")
}

func TestSJQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":             `""`,
		"a\"\\\t":      `"a\"\\\t"`,
		"\x7f":         `"\u007f"`,
		"\xff":         `"\ufffd"`,
		"\U0001F600":   `"\ud83d\ude00"`,
		"\u2028\ufeff": `"\u2028\ufeff"`,
	} {
		var b strings.Builder
		sjQuote(&b, in)
		if b.String() != want {
			t.Errorf("sjQuote(%q) = %s, want %s", in, b.String(), want)
		}
		var back string
		if err := json.Unmarshal([]byte(b.String()), &back); err != nil {
			t.Errorf("sjQuote(%q) is not JSON: %v", in, err)
		}
	}
}
