package gaffer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sjPoller is an xhr-polling SockJS client of the control channel.
type sjPoller struct {
	t    *testing.T
	base string
	msgs []map[string]any
}

func (p *sjPoller) send(v any) {
	p.t.Helper()
	s, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(v)
		s = string(b)
	}
	frame, _ := json.Marshal([]string{s})
	resp, body := sjDo(p.t, "POST", p.base+"/xhr_send", string(frame), nil)
	if resp.StatusCode != 204 {
		p.t.Fatalf("xhr_send: %d %s", resp.StatusCode, body)
	}
}

// until polls until a message satisfies ok, and returns it.
func (p *sjPoller) until(what string, ok func(map[string]any) bool) map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for i, m := range p.msgs {
			if ok(m) {
				p.msgs = p.msgs[i+1:]
				return m
			}
		}
		p.msgs = nil
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %s", what)
		}
		resp, body := sjDo(p.t, "POST", p.base+"/xhr", "", nil)
		if resp.StatusCode != 200 {
			p.t.Fatalf("xhr: %d %s", resp.StatusCode, body)
		}
		body = strings.TrimSpace(body)
		switch {
		case strings.HasPrefix(body, "a"):
			var frames []string
			if err := json.Unmarshal([]byte(body[1:]), &frames); err != nil {
				p.t.Fatalf("bad frame %q", body)
			}
			for _, f := range frames {
				var m map[string]any
				if err := json.Unmarshal([]byte(f), &m); err != nil {
					p.t.Fatalf("message %q is not a JSON object", f)
				}
				p.msgs = append(p.msgs, m)
			}
		case strings.HasPrefix(body, "c"):
			p.msgs = append(p.msgs, map[string]any{"close": body})
		}
	}
}

func TestSockJSControlChannel(t *testing.T) {
	e := chNewEnv(t, true)
	mux := http.NewServeMux()
	mux.Handle("/channel/", e.s.SockJSChannel())
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	admin := e.key(t, Permissions{Admin: true})

	p := &sjPoller{t: t, base: hs.URL + "/channel/000/chan1"}
	resp, body := sjDo(t, "POST", p.base+"/xhr", "", nil)
	sjExpect(t, resp, body, 200, "o\n")
	p.send("AUTH:" + admin)
	p.until("auth_success", func(m map[string]any) bool { return m["event"] == "gaffer:auth_success" })
	p.send(map[string]any{"event": "SUB", "data": map[string]any{"topic": "EVENTS"}})
	p.until("subscription", func(m map[string]any) bool { return m["event"] == "gaffer:subscription_success" })
	e.load(t, "web", "sleep", nil)
	p.until("the load event", func(m map[string]any) bool {
		d, _ := m["data"].(map[string]any)
		return m["event"] == "gaffer:event" && d["event"] == "load" && d["name"] == "default.web"
	})
	p.send(map[string]any{"event": "CMD", "data": map[string]any{"identity": "c1", "name": "scale", "args": []any{"default.web", "=3"}}})
	m := p.until("the command result", func(m map[string]any) bool { return m["event"] == "gaffer:command_success" })
	if d := m["data"].(map[string]any); d["id"] != "c1" || d["result"].(map[string]any)["numprocesses"] != float64(3) {
		t.Fatalf("scale result %v", m)
	}
	if n, _ := e.m.Pids("default.web"); len(n) != 3 {
		t.Fatalf("pids after scale: %v", n)
	}

	// A bad key over SockJS: the error, then the close frame.
	q := &sjPoller{t: t, base: hs.URL + "/channel/000/chan2"}
	sjDo(t, "POST", q.base+"/xhr", "", nil)
	q.send("AUTH:0123456789abcdef0123456789abcdef")
	m = q.until("the auth error", func(m map[string]any) bool { return m["event"] == "gaffer:error" })
	if d := m["data"].(map[string]any); d["error"] != "AUTH_REQUIRED" {
		t.Fatalf("auth error %v", m)
	}
	m = q.until("the close frame", func(m map[string]any) bool { return m["close"] != nil })
	if !strings.HasPrefix(m["close"].(string), "c[1008,") {
		t.Fatalf("close %v", m)
	}

	// The websocket transport speaks the same protocol, framed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := WSDial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/channel/000/chan3/websocket", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	read := func() string {
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if o := read(); o != "o" {
		t.Fatalf("open %q", o)
	}
	frame, _ := json.Marshal([]string{"AUTH:" + admin, `{"event":"CMD","data":{"identity":"s","name":"sessions"}}`})
	ws.WriteText(string(frame))
	var all string
	for !strings.Contains(all, "command_success") {
		all += read()
	}
	if !strings.Contains(all, `\"sessions\":[\"default\"]`) {
		t.Fatalf("sessions over the websocket transport: %s", all)
	}
}

func TestLookupdSockJSFeed(t *testing.T) {
	l := NewLookupd(LookupdOptions{})
	defer l.Close()
	h := LookupdSockJS(l)
	defer h.Close()
	l.Handle("/lookup", h)
	l.Handle("/lookup/", h)
	hs := httptest.NewServer(l)
	defer hs.Close()
	resp, body := sjDo(t, "GET", hs.URL+"/lookup/info", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"websocket":true`) {
		t.Fatalf("info: %d %s", resp.StatusCode, body)
	}
	p := &sjPoller{t: t, base: hs.URL + "/lookup/000/feed1"}
	resp, body = sjDo(t, "POST", p.base+"/xhr", "", nil)
	sjExpect(t, resp, body, 200, "o\n")
	// Wait until the session has subscribed, then connect a node.
	waitFor(t, 5*time.Second, "the feed session", func() bool { return h.Sessions() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node, _, err := WSDial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer node.CloseNow()
	node.WriteJSON(map[string]any{"type": "IDENTIFY", "msgid": "m0", "name": "n1", "origin": "http://n1:5000", "version": "0.1"})
	// The feed's subscription starts with the session's goroutine: keep
	// the node producing events (a new job every 20 ms) until one shows
	// up on the feed; each poll answers as soon as there is an event.
	stop := make(chan struct{})
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			node.WriteJSON(map[string]any{"type": "REGISTER_JOB", "msgid": fmt.Sprintf("m%d", i), "job_name": fmt.Sprintf("default.j%d", i)})
		}
	}()
	got := false
	deadline := time.Now().Add(10 * time.Second)
	for !got && time.Now().Before(deadline) {
		resp, body := sjDo(t, "POST", p.base+"/xhr", "", nil)
		got = resp.StatusCode == 200 && (strings.Contains(body, `add_node`) || strings.Contains(body, `add_job`) || strings.Contains(body, `identify`))
	}
	close(stop)
	<-produced
	if !got {
		t.Fatal("no lookupd event on the SockJS feed")
	}
	// A message from the client ends the feed.
	p.send("hello")
	m := p.until("the close frame", func(m map[string]any) bool { return m["close"] != nil })
	if !strings.HasPrefix(m["close"].(string), "c[1008,") {
		t.Fatalf("close %v", m)
	}
}

// TestSockJSSessionBoundToItsClient is the hijack of issue 13: with a
// SockJS session's id alone (it shows in URLs), an unauthenticated
// xhr_send ran commands as the client that had authenticated the session.
// The session is bound to a token cookie its creation set: without it,
// from the same address, nothing gets in or out.
func TestSockJSSessionBoundToItsClient(t *testing.T) {
	store, err := OpenAuthStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys := newKeyMatrix(t, store)
	a := newAPI(t, ServerOptions{Auth: store, RequireKey: true})
	if err := a.m.Load("app", childConfig(t, "web", "sleep", nil), nil, true); err != nil {
		t.Fatal(err)
	}
	// The victim: a browser-like client (cookies kept) that authenticates.
	victim := &sjPoller{t: t, base: a.srv.URL + "/channel/123/victim1"}
	resp, body := sjDo(t, "POST", victim.base+"/xhr", "", nil)
	sjExpect(t, resp, body, 200, "o\n")
	var bind *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == sjCookie {
			bind = c
		}
	}
	val := strings.Repeat("1", 32)
	if bind == nil || len(bind.Value) != 32 || !bind.HttpOnly || bind.Path != "/channel/123/victim1" || bind.SameSite != http.SameSiteLaxMode {
		t.Errorf("binding cookie %+v", bind)
	} else {
		val = bind.Value
	}
	victim.send("AUTH:" + keys.manage)
	victim.until("auth_success", func(m map[string]any) bool { return m["event"] == "gaffer:auth_success" })

	// The attacker knows the session id, not the cookie.
	cmd, _ := json.Marshal([]string{`{"event":"CMD","data":{"identity":"x","name":"scale","args":["app.web","=0"]}}`})
	for _, cookie := range []string{"", sjCookie + "=" + strings.Repeat("0", 32), sjCookie + "=" + val[:31] + "x"} {
		hdr := map[string]string{}
		if cookie != "" {
			hdr["Cookie"] = cookie
		}
		req, _ := http.NewRequest("POST", victim.base+"/xhr_send", strings.NewReader(string(cmd)))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 404 {
			t.Errorf("xhr_send without the session's cookie (%q): %d, want 404", cookie, r.StatusCode)
		}
		req, _ = http.NewRequest("POST", victim.base+"/xhr", nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		r, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 403 {
			t.Errorf("polling without the session's cookie (%q): %d, want 403", cookie, r.StatusCode)
		}
	}
	// Nothing ran: the victim's next command sees the job as it was.
	victim.send(map[string]any{"event": "CMD", "data": map[string]any{"identity": "v1", "name": "info", "args": []any{"app.web"}}})
	leaked := false
	m := victim.until("the victim's own command", func(m map[string]any) bool {
		d, _ := m["data"].(map[string]any)
		leaked = leaked || d["id"] == "x"
		return d["id"] == "v1"
	})
	if leaked {
		t.Error("the attacker's command was answered in the victim's session")
	}
	if info, _ := m["data"].(map[string]any)["result"].(map[string]any)["info"].(map[string]any); info["max_processes"] != float64(1) {
		t.Errorf("the attacker's scale ran: %v", m)
	}
	if pids, _ := a.m.Pids("app.web"); len(pids) != 1 {
		t.Fatalf("the attacker's scale ran: pids %v", pids)
	}
}

// A SockJS client of a STREAM topic that does not come back for its
// messages holds at most the session's window of them (the channel's
// writer waits for room, and the relay reads the ring at the client's
// pace); it is not cut off, and when it polls again it gets the messages
// in order, a gap marker for what the ring lost, and the stream's end.
func TestSockJSChannelStreamWaitsForClient(t *testing.T) {
	e := chNewEnv(t, false)
	h := e.s.SockJSChannel()
	mux := http.NewServeMux()
	mux.Handle("/channel/", h)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	pid := e.load(t, "flood", "sleep", func(c *JobConfig) {
		c.RedirectOutput = []string{"out"}
		c.RingSize = 1 << 10
	})
	p, _ := e.m.Process(pid)
	st, _ := p.Stream("")

	sp := &sjPoller{t: t, base: hs.URL + "/channel/000/slow"}
	resp, body := sjDo(t, "POST", sp.base+"/xhr", "", nil)
	sjExpect(t, resp, body, 200, "o\n")
	sp.send(map[string]any{"event": "SUB", "data": map[string]any{"topic": "STREAM:" + strconv.Itoa(pid)}})
	sp.until("subscription", func(m map[string]any) bool { return m["event"] == "gaffer:subscription_success" })
	h.mu.Lock()
	sess := h.sessions["slow"]
	h.mu.Unlock()
	queued := func() int64 {
		sess.mu.Lock()
		defer sess.mu.Unlock()
		return sess.outBytes + sess.sending
	}

	// 2000 chunks of 32 KiB, and no poll meanwhile (well within the
	// session's DisconnectDelay).
	chunk := []byte(strings.Repeat("x", 32<<10) + "\n")
	const n = 2000
	var peak int64
	for range n {
		st.Write(chunk)
		peak = max(peak, queued())
	}
	waitFor(t, 10*time.Second, "the relay to wait for the client", func() bool {
		peak = max(peak, queued())
		return queued() > 0
	})
	// One message may go past the window (it is let through whole).
	if limit := int64(sjChannelWindow + 2*len(chunk)); peak > limit {
		t.Errorf("the session queued %d bytes for a client that did not poll (window %d)", peak, sjChannelWindow)
	}
	if h.Sessions() != 1 {
		t.Fatal("the slow SockJS client was cut off")
	}
	var next uint64
	gaps := 0
	for deadline := time.Now().Add(30 * time.Second); next <= n; {
		if time.Now().After(deadline) {
			t.Fatalf("timed out at chunk %d", next)
		}
		resp, body := sjDo(t, "POST", sp.base+"/xhr", "", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("xhr: %d %s", resp.StatusCode, body)
		}
		body = strings.TrimSpace(body)
		if strings.HasPrefix(body, "c") {
			t.Fatalf("closed: %s", body)
		}
		if !strings.HasPrefix(body, "a") {
			continue
		}
		var msgs []string
		if err := json.Unmarshal([]byte(body[1:]), &msgs); err != nil {
			t.Fatalf("bad frame %.100q", body)
		}
		for _, msg := range msgs {
			var m struct {
				Event string
				Data  struct {
					Event, Data   string
					Seq, From, To uint64
				}
			}
			if json.Unmarshal([]byte(msg), &m) != nil || m.Event != "gaffer:event" {
				continue
			}
			switch {
			case m.Data.Event == "gap":
				if next != 0 && m.Data.From != next || m.Data.To < m.Data.From {
					t.Fatalf("gap %d-%d after chunk %d", m.Data.From, m.Data.To, next-1)
				}
				gaps++
				next = m.Data.To + 1
			case next != 0 && m.Data.Seq != next:
				t.Fatalf("chunk %d after %d without a gap", m.Data.Seq, next-1)
			case m.Data.Data != string(chunk):
				t.Fatalf("chunk %d: %d bytes", m.Data.Seq, len(m.Data.Data))
			default:
				next = m.Data.Seq + 1
			}
		}
	}
	if gaps == 0 {
		t.Error("64 MB through a 1 KiB ring without a gap marker")
	}
	t.Logf("a SockJS client that did not poll: at most %d bytes queued in its session; then %d gap markers", peak, gaps)
}
