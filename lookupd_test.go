package gaffer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

func lkTestServer(t *testing.T, opts LookupdOptions) (*Lookupd, *httptest.Server) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	lk := NewLookupd(opts)
	ts := httptest.NewServer(lk)
	t.Cleanup(func() { ts.Close(); lk.Close() })
	return lk, ts
}

func lkTestDial(t *testing.T, ts *httptest.Server, path string, hdr http.Header) *WSConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := WSDial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+path, hdr, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// lkRaw sends one raw text message and returns the decoded reply.
func lkRaw(t *testing.T, c *WSConn, msg string) map[string]any {
	t.Helper()
	if err := c.WriteText(msg); err != nil {
		t.Fatalf("write %s: %v", msg, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("reply to %s: %v", msg, err)
	}
	var rep map[string]any
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("reply to %s is not JSON: %q", msg, data)
	}
	return rep
}

// lkSend sends a message (msgid added) and returns the reply.
func lkSend(t *testing.T, c *WSConn, typ string, kv ...any) map[string]any {
	t.Helper()
	m := map[string]any{"type": typ, "msgid": lkMsgID()}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	rep := lkRaw(t, c, string(b))
	if ok, _ := rep["ok"].(bool); !ok {
		return rep
	}
	if rep["msgid"] != m["msgid"] {
		t.Fatalf("%s: reply msgid %v, want %v", typ, rep["msgid"], m["msgid"])
	}
	return rep
}

func lkWantOK(t *testing.T, rep map[string]any) {
	t.Helper()
	if ok, _ := rep["ok"].(bool); !ok {
		t.Fatalf("want ok, got %v", rep)
	}
}

func lkWantErr(t *testing.T, rep map[string]any, errno int, reason string, msgidNull bool) {
	t.Helper()
	if rep["errno"] != float64(errno) || rep["reason"] != reason {
		t.Fatalf("want errno %d reason %q, got %v", errno, reason, rep)
	}
	if _, has := rep["msgid"]; !has {
		t.Fatalf("error reply without msgid: %v", rep)
	}
	if msgidNull != (rep["msgid"] == nil) {
		t.Fatalf("msgid null = %v, want %v: %v", rep["msgid"] == nil, msgidNull, rep)
	}
}

func lkGet(t *testing.T, ts *httptest.Server, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("GET %s: %d, not JSON: %q", path, resp.StatusCode, data)
	}
	return resp.StatusCode, m
}

func lkJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestLookupdProtocolErrors(t *testing.T) {
	_, ts := lkTestServer(t, LookupdOptions{})
	c := lkTestDial(t, ts, "/ws", nil)

	lkWantErr(t, lkRaw(t, c, `{"type": "PING", `), 400, "invalid_json", true)
	lkWantErr(t, lkRaw(t, c, `[1, 2]`), 400, "invalid_message", true)
	lkWantErr(t, lkRaw(t, c, `{"type": "PING"}`), 400, "invalid_message", true)
	lkWantErr(t, lkRaw(t, c, `{"msgid": "abc"}`), 400, "invalid_message", true)
	lkWantErr(t, lkRaw(t, c, `{"msgid": 12, "type": "PING"}`), 400, "invalid_message", true)
	lkWantErr(t, lkSend(t, c, "HELLO"), 400, "invalid_message_type", true)
	lkWantOK(t, lkSend(t, c, "PING"))
	lkWantErr(t, lkSend(t, c, "REGISTER_JOB", "job_name", "default.web"), 404, "need to send IDENTIFY message first", false)
	lkWantErr(t, lkSend(t, c, "REGISTER_PROCESS", "job_name", "default.web", "pid", 1), 404, "need to send IDENTIFY message first", false)
	lkWantErr(t, lkSend(t, c, "IDENTIFY", "name", "n1", "version", "0.1"), 400, "invalid_message", false)
	lkWantErr(t, lkSend(t, c, "IDENTIFY", "name", "n1", "origin", 5, "version", "0.1"), 400, "invalid_message", false)
	// Clients are pointed at the origin: only http(s) URLs with a host.
	for _, bad := range []string{"unix:/run/gafferd.sock", "file:///etc/passwd", "n1:5000", "http://", "http://u:p@n1:5000", "http://n1:5000/?x=1", "http://n1:5000/#f"} {
		lkWantErr(t, lkSend(t, c, "IDENTIFY", "name", "n1", "origin", bad, "version", "0.1"), 400, "invalid_message", false)
	}
	lkWantOK(t, lkSend(t, c, "IDENTIFY", "name", "n1", "origin", "http://n1:5000", "version", "0.1"))
	lkWantErr(t, lkSend(t, c, "IDENTIFY", "name", "n1", "origin", "http://n1:5000", "version", "0.1"), 409, "already_identified", false)
	lkWantErr(t, lkSend(t, c, "REGISTER_JOB"), 400, "invalid_message", false)
	lkWantErr(t, lkSend(t, c, "REGISTER_JOB", "job_name", "a/b"), 400, "invalid_message", false)
	lkWantOK(t, lkSend(t, c, "REGISTER_JOB", "job_name", "default.web"))
	lkWantErr(t, lkSend(t, c, "REGISTER_JOB", "job_name", "default.web"), 409, "job 'default.web' is already registered", false)
	lkWantErr(t, lkSend(t, c, "REGISTER_PROCESS", "job_name", "default.nope", "pid", 1), 404, "job_not_found", false)
	lkWantErr(t, lkSend(t, c, "UNREGISTER_PROCESS", "job_name", "default.nope", "pid", 1), 404, "job_not_found", false)
	for _, bad := range []any{"1", 1.5, 0, -3, nil} {
		lkWantErr(t, lkSend(t, c, "REGISTER_PROCESS", "job_name", "default.web", "pid", bad), 400, "invalid_message", false)
	}
	lkWantOK(t, lkSend(t, c, "REGISTER_PROCESS", "job_name", "default.web", "pid", 7))
	lkWantOK(t, lkSend(t, c, "UNREGISTER_PROCESS", "job_name", "default.web", "pid", 99))
	lkWantOK(t, lkSend(t, c, "UNREGISTER_JOB", "job_name", "default.never"))
	lkWantOK(t, lkSend(t, c, "PING"))
	if code, m := lkGet(t, ts, "/findJob?name=default.web"); code != 200 ||
		lkJSON(m) != `{"sources":[{"name":"n1","node_info":{"name":"n1","origin":"http://n1:5000","version":"0.1"},"pids":[7]}]}` {
		t.Fatalf("findJob: %d %s", code, lkJSON(m))
	}
	// An error reply carries a human detail next to the machine reason.
	rep := lkSend(t, c, "REGISTER_JOB", "job_name", "default.web")
	if d, _ := rep["detail"].(string); d == "" {
		t.Fatalf("no detail in %v", rep)
	}
}

func TestLookupdRoutes(t *testing.T) {
	_, ts := lkTestServer(t, LookupdOptions{})
	// Nodes are listed in connection order: a PING answered proves that a
	// connection is registered before the next one is opened.
	a := lkTestDial(t, ts, "/ws", nil)
	lkWantOK(t, lkSend(t, a, "PING"))
	b := lkTestDial(t, ts, "/ws", nil)
	lkWantOK(t, lkSend(t, b, "PING"))
	lkTestDial(t, ts, "/ws", nil) // connected, never identified: not listed
	lkWantOK(t, lkSend(t, a, "IDENTIFY", "name", "a", "origin", "http://a:5000", "version", "0.1"))
	lkWantOK(t, lkSend(t, b, "IDENTIFY", "name", "b", "origin", "https://b:5000", "version", "0.1"))
	for _, j := range []string{"web.front", "default.dummy"} {
		lkWantOK(t, lkSend(t, b, "REGISTER_JOB", "job_name", j))
	}
	for _, j := range []string{"default.dummy", "web.api"} {
		lkWantOK(t, lkSend(t, a, "REGISTER_JOB", "job_name", j))
	}
	lkWantOK(t, lkSend(t, a, "REGISTER_PROCESS", "job_name", "default.dummy", "pid", 3))
	lkWantOK(t, lkSend(t, a, "REGISTER_PROCESS", "job_name", "default.dummy", "pid", 1))
	lkWantOK(t, lkSend(t, b, "REGISTER_PROCESS", "job_name", "web.front", "pid", 2))

	srcA := `{"name":"a","node_info":{"name":"a","origin":"http://a:5000","version":"0.1"},"pids":[1,3]}`
	srcB := func(pids string) string {
		return `{"name":"b","node_info":{"name":"b","origin":"https://b:5000","version":"0.1"},"pids":[` + pids + `]}`
	}
	srcA2 := `{"name":"a","node_info":{"name":"a","origin":"http://a:5000","version":"0.1"},"pids":[]}`
	tests := []struct{ path, want string }{
		{"/", `{"version":"` + Version + `","welcome":"gaffer-lookupd"}`},
		{"/nodes", `{"nodes":[{"name":"a","origin":"http://a:5000","version":"0.1"},{"name":"b","origin":"https://b:5000","version":"0.1"}]}`},
		{"/jobs", `{"jobs":[{"name":"default.dummy","sources":[` + srcA + `,` + srcB("") + `]},{"name":"web.api","sources":[` + srcA2 + `]},{"name":"web.front","sources":[` + srcB("2") + `]}],"nb_jobs":3}`},
		{"/findJob?name=default.dummy", `{"sources":[` + srcA + `,` + srcB("") + `]}`},
		{"/findJob?name=default.nothing", `{"sources":[]}`},
		{"/findSession?sessionid=web", `{"jobs":[{"name":"web.api","sources":[` + srcA2 + `]},{"name":"web.front","sources":[` + srcB("2") + `]}],"nb_jobs":2}`},
		{"/findSession?sessionid=none", `{"jobs":[],"nb_jobs":0}`},
	}
	for _, tt := range tests {
		if code, m := lkGet(t, ts, tt.path); code != 200 || lkJSON(m) != tt.want {
			t.Errorf("GET %s: %d\n got %s\nwant %s", tt.path, code, lkJSON(m), tt.want)
		}
	}
	// /sessions keeps the order of first appearance, which a map would lose:
	// check the raw body.
	resp, err := http.Get(ts.URL + "/sessions")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Struct field order in the raw body.
	srcA = `{"name":"a","pids":[1,3],"node_info":{"name":"a","origin":"http://a:5000","version":"0.1"}}`
	srcB = func(pids string) string {
		return `{"name":"b","pids":[` + pids + `],"node_info":{"name":"b","origin":"https://b:5000","version":"0.1"}}`
	}
	srcA2 = `{"name":"a","pids":[],"node_info":{"name":"a","origin":"http://a:5000","version":"0.1"}}`
	want := `{"nb_sessions":2,"sessions":[{"sessionid":"default","jobs":{"default.dummy":[` + srcA + `,` + srcB("") + `]}},` +
		`{"sessionid":"web","jobs":{"web.api":[` + srcA2 + `],"web.front":[` + srcB("2") + `]}}]}`
	if strings.TrimSpace(string(body)) != want {
		t.Errorf("/sessions\n got %s\nwant %s", body, want)
	}
	resp, err = http.Get(ts.URL + "/sessions/b")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	want = `{"nb_sessions":2,"sessions":[{"sessionid":"web","jobs":{"web.front":[` + srcB("2") + `]}},{"sessionid":"default","jobs":{"default.dummy":[` + srcB("") + `]}}]}`
	if strings.TrimSpace(string(body)) != want {
		t.Errorf("/sessions/b\n got %s\nwant %s", body, want)
	}

	// Errors: one JSON shape.
	for _, tt := range []struct {
		method, path string
		code         int
		err          string
	}{
		{"GET", "/findJob", 400, CodeBadRequest},
		{"GET", "/findSession", 400, CodeBadRequest},
		{"GET", "/nope", 404, CodeNotFound},
		{"POST", "/jobs", 405, CodeMethodNotAllow},
	} {
		req, _ := http.NewRequest(tt.method, ts.URL+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var eb ErrorBody
		json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != tt.code || eb.Error != tt.err || eb.Errno != tt.code || eb.Reason == "" {
			t.Errorf("%s %s: %d %+v", tt.method, tt.path, resp.StatusCode, eb)
		}
	}
	resp, err = http.Get(ts.URL + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "OK" {
		t.Errorf("/ping: %q", body)
	}
}

func TestLookupdHostCheck(t *testing.T) {
	_, ts := lkTestServer(t, LookupdOptions{})
	req, _ := http.NewRequest("GET", ts.URL+"/nodes", nil)
	req.Host = "evil.example:5010"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("Host evil.example on a loopback listener: %d, want 403", resp.StatusCode)
	}
	req.Host = "localhost:5010"
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("Host localhost: %d", resp.StatusCode)
	}
}

func TestLookupdEventFeed(t *testing.T) {
	_, ts := lkTestServer(t, LookupdOptions{})
	feed := lkTestDial(t, ts, "/lookup/websocket", nil)
	next := func() string {
		t.Helper()
		feed.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, data, err := feed.ReadMessage()
		if err != nil {
			t.Fatalf("feed: %v", err)
		}
		return string(data)
	}
	n := lkTestDial(t, ts, "/ws", nil)
	if got := next(); got != `{"event":"add_node","name":null,"origin":null,"version":null}` {
		t.Fatalf("add_node: %s", got)
	}
	lkWantOK(t, lkSend(t, n, "IDENTIFY", "name", "n", "origin", "http://n:1", "version", "0.1"))
	lkWantOK(t, lkSend(t, n, "REGISTER_JOB", "job_name", "default.dummy"))
	lkWantOK(t, lkSend(t, n, "REGISTER_PROCESS", "job_name", "default.dummy", "pid", 1))
	lkWantOK(t, lkSend(t, n, "UNREGISTER_PROCESS", "job_name", "default.dummy", "pid", 1))
	lkWantOK(t, lkSend(t, n, "UNREGISTER_JOB", "job_name", "default.dummy"))
	n.Close(WSCloseNormal, "")
	node := `{"name":"n","origin":"http://n:1","version":"0.1"}`
	for _, want := range []string{
		`{"event":"identify","name":"n","origin":"http://n:1","version":"0.1"}`,
		`{"event":"add_job","job_name":"default.dummy","node":` + node + `}`,
		`{"event":"add_process","job_name":"default.dummy","node":` + node + `,"pid":1}`,
		`{"event":"remove_process","job_name":"default.dummy","node":` + node + `,"pid":1}`,
		`{"event":"remove_job","job_name":"default.dummy","node":` + node + `}`,
		`{"event":"remove_node","name":"n","origin":"http://n:1","version":"0.1"}`,
	} {
		if got := next(); got != want {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	}
	// The feed accepts no message: sending one ends it.
	feed.WriteText("hello")
	feed.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := feed.ReadMessage()
	var ce *WSCloseError
	if !errors.As(err, &ce) || ce.Code != WSClosePolicy {
		t.Fatalf("after a client message: %v, want close 1008", err)
	}
}

func TestLookupdSubscribeCancelAndClose(t *testing.T) {
	lk := NewLookupd(LookupdOptions{})
	c1, cancel1 := lk.Subscribe()
	c2, _ := lk.Subscribe()
	cancel1()
	cancel1() // twice is fine
	if _, ok := <-c1; ok {
		t.Fatal("cancelled subscription still open")
	}
	lk.Close()
	if _, ok := <-c2; ok {
		t.Fatal("subscription open after Close")
	}
	c3, cancel3 := lk.Subscribe()
	if _, ok := <-c3; ok {
		t.Fatal("subscription after Close is open")
	}
	cancel3()
}

func TestLookupdSlowSubscriberCutOff(t *testing.T) {
	lk := NewLookupd(LookupdOptions{})
	c, cancel := lk.Subscribe()
	defer cancel()
	n := lk.reg.connect(nil)
	if _, e := lk.reg.identify(n, LookupNode{Name: "n", Origin: "http://n", Version: "0.1"}); e != nil {
		t.Fatal(e)
	}
	lk.reg.registerJob(n, "default.a")
	for i := 1; i <= lkSubQueue+10; i++ {
		lk.reg.registerProcess(n, "default.a", i)
	}
	count := 0
	for range c {
		count++
	}
	if count != lkSubQueue {
		t.Fatalf("got %d events before the cut-off, want %d", count, lkSubQueue)
	}
}

func TestLookupdReplacesStaleNode(t *testing.T) {
	lk, ts := lkTestServer(t, LookupdOptions{})
	old := lkTestDial(t, ts, "/ws", nil)
	lkWantOK(t, lkSend(t, old, "IDENTIFY", "name", "n", "origin", "http://n:5000", "version", "0.1"))
	lkWantOK(t, lkSend(t, old, "REGISTER_JOB", "job_name", "default.old"))
	// Same name, other origin: another node, kept.
	other := lkTestDial(t, ts, "/ws", nil)
	lkWantOK(t, lkSend(t, other, "IDENTIFY", "name", "n", "origin", "http://n:6000", "version", "0.1"))

	fresh := lkTestDial(t, ts, "/ws", nil)
	lkWantOK(t, lkSend(t, fresh, "IDENTIFY", "name", "n", "origin", "http://n:5000", "version", "0.1"))
	lkWantOK(t, lkSend(t, fresh, "REGISTER_JOB", "job_name", "default.new"))
	old.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := old.ReadMessage(); err == nil {
		t.Fatal("the stale connection is still open")
	}
	nodes := lk.Nodes()
	if len(nodes) != 2 || nodes[0].Origin != "http://n:6000" || nodes[1].Origin != "http://n:5000" {
		t.Fatalf("nodes: %+v", nodes)
	}
	if got := lkJSON(lk.Jobs()); !strings.Contains(got, "default.new") || strings.Contains(got, "default.old") {
		t.Fatalf("jobs: %s", got)
	}
}

func TestLookupdPingTimeout(t *testing.T) {
	interval := 100 * time.Millisecond
	lk, ts := lkTestServer(t, LookupdOptions{PingInterval: interval})
	silent := lkTestDial(t, ts, "/ws", nil)
	lkWantOK(t, lkSend(t, silent, "IDENTIFY", "name", "silent", "origin", "http://s:1", "version", "0.1"))
	alive := lkTestDial(t, ts, "/ws", nil)
	lkWantOK(t, lkSend(t, alive, "IDENTIFY", "name", "alive", "origin", "http://a:1", "version", "0.1"))
	events, cancel := lk.Subscribe()
	defer cancel()
	// The pinging node keeps its place while the silent one is dropped.
	deadline := time.Now().Add(10 * time.Second)
	for {
		lkWantOK(t, lkSend(t, alive, "PING"))
		select {
		case ev := <-events:
			if ev.Event != "remove_node" || ev.Node.Name != "silent" {
				t.Fatalf("unexpected event %+v", ev)
			}
			nodes := lk.Nodes()
			if len(nodes) != 1 || nodes[0].Name != "alive" {
				t.Fatalf("nodes: %+v", nodes)
			}
			silent.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := silent.ReadMessage(); err == nil {
				t.Fatal("the silent node's connection is still open")
			}
			return
		case <-time.After(interval / 4):
		}
		if time.Now().After(deadline) {
			t.Fatal("the silent node was never dropped")
		}
	}
}

// TestLookupdNodeKey: with a node key, a node registers only when it
// sends the key in IDENTIFY (or in the upgrade's X-Api-Key header); a node
// without it or with a wrong one gets a clear error reply, is logged and
// disconnected, and is never listed.
func TestLookupdNodeKey(t *testing.T) {
	var logs authLogBuffer
	lk, ts := lkTestServer(t, LookupdOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		RequireKey: func(k string) bool { return k == "s3cret" }})
	url := "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws"

	// A wrong header is refused at the upgrade.
	_, resp, err := WSDial(context.Background(), url, http.Header{"X-Api-Key": {"wrong"}}, nil)
	if !errors.Is(err, ErrWSBadHandshake) || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("wrong header: %v %v, want 403", err, resp)
	}
	resp.Body.Close()

	for _, tt := range []struct {
		key    any
		errno  int
		reason string
		logged string
	}{
		{nil, 401, "node_key_required", "no node key"},
		{"wrong", 403, "node_key_refused", "wrong node key"},
		{"", 401, "node_key_required", "no node key"},
		{42, 401, "node_key_required", "no node key"},
	} {
		c := lkTestDial(t, ts, "/ws", nil)
		kv := []any{"name", "fakenode", "origin", "http://fake.example:5000", "version", "0.1"}
		if tt.key != nil {
			kv = append(kv, "key", tt.key)
		}
		rep := lkSend(t, c, "IDENTIFY", kv...)
		lkWantErr(t, rep, tt.errno, tt.reason, false)
		if d, _ := rep["detail"].(string); !strings.Contains(d, "lookupd_key") {
			t.Errorf("key %v: the detail does not say what to set: %q", tt.key, d)
		}
		// The connection is closed after the refusal…
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := c.ReadMessage(); err == nil {
			t.Fatalf("key %v: the connection is still open after the refusal", tt.key)
		}
		// …the node is not listed, and the refusal is logged with what
		// the node claimed to be.
		if n := lk.Nodes(); len(n) != 0 {
			t.Fatalf("key %v: nodes %+v, want none", tt.key, n)
		}
		if _, nodes := lkGet(t, ts, "/nodes"); len(nodes["nodes"].([]any)) != 0 {
			t.Fatalf("key %v: /nodes lists %v", tt.key, nodes)
		}
		waitFor(t, 5*time.Second, "the refusal in the log", func() bool {
			out := logs.String()
			return strings.Contains(out, tt.logged) && strings.Contains(out, "fake.example")
		})
	}

	// The right key in IDENTIFY registers the node.
	c := lkTestDial(t, ts, "/ws", nil)
	lkWantOK(t, lkSend(t, c, "IDENTIFY", "name", "n", "origin", "http://n:1", "version", "0.1", "key", "s3cret"))
	lkWantOK(t, lkSend(t, c, "REGISTER_JOB", "job_name", "default.web"))
	// So does the right key in the header.
	h := lkTestDial(t, ts, "/ws", http.Header{"X-Api-Key": {"s3cret"}})
	lkWantOK(t, lkSend(t, h, "IDENTIFY", "name", "h", "origin", "http://h:1", "version", "0.1"))
	if n := lk.Nodes(); len(n) != 2 || n[0].Name != "n" || n[1].Name != "h" {
		t.Fatalf("nodes %+v, want n and h", n)
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Fatal("the node key appears in the lookupd's log")
	}
	// Reads stay open.
	if code, _ := lkGet(t, ts, "/nodes"); code != 200 {
		t.Fatalf("/nodes: %d", code)
	}
}

// TestLookupdNoKeyAcceptsAnyNode: without RequireKey, a key sent in
// IDENTIFY is ignored.
func TestLookupdNoKeyAcceptsAnyNode(t *testing.T) {
	lk, ts := lkTestServer(t, LookupdOptions{})
	c := lkTestDial(t, ts, "/ws", nil)
	lkWantOK(t, lkSend(t, c, "IDENTIFY", "name", "n", "origin", "http://n:1", "version", "0.1", "key", "whatever"))
	if len(lk.Nodes()) != 1 {
		t.Fatalf("nodes %+v", lk.Nodes())
	}
}

func TestLookupdWSURL(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{"http://127.0.0.1:5010", "ws://127.0.0.1:5010/ws", ""},
		{"https://Lookup.Example:5010/", "wss://lookup.example:5010/ws", ""},
		{"http://h/base/?x=1#f", "ws://h/base/ws", ""},
		{"httpx://h", "", "expected an http:// or https:// URL"},
		{"ws://h", "", "expected an http:// or https:// URL"},
		{"h:5010", "", "expected an http:// or https:// URL"},
		{"http://", "", "no host"},
	} {
		got, err := LookupdWSURL(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), tt.in) {
				t.Errorf("%q: err %v, want %q naming the address", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: %q %v, want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestLookupEventJSONShapes(t *testing.T) {
	node := LookupNode{Name: "n", Origin: "http://n", Version: "0.1"}
	for _, tt := range []struct {
		ev   LookupdEvent
		want map[string]any
	}{
		{LookupdEvent{Event: "remove_node"}, map[string]any{"event": "remove_node", "name": nil, "origin": nil, "version": nil}},
		{LookupdEvent{Event: "add_job", Node: node, Identified: true, JobName: "a.b"},
			map[string]any{"event": "add_job", "job_name": "a.b", "node": map[string]any{"name": "n", "origin": "http://n", "version": "0.1"}}},
	} {
		var got map[string]any
		json.Unmarshal([]byte(lkJSON(tt.ev)), &got)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%+v: %v", tt.ev, got)
		}
	}
}

// The package's own lookupd client reads what the server writes.
func TestLookupdWithLookupClient(t *testing.T) {
	_, ts := lkTestServer(t, LookupdOptions{})
	lc, err := NewLookupClient([]string{ts.URL}, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := lc.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := lkTestDial(t, ts, "/ws", nil)
	lkWantOK(t, lkSend(t, n, "IDENTIFY", "name", "n", "origin", "http://n:1", "version", "0.1"))
	lkWantOK(t, lkSend(t, n, "REGISTER_JOB", "job_name", "app.web"))
	lkWantOK(t, lkSend(t, n, "REGISTER_PROCESS", "job_name", "app.web", "pid", 4))
	var got []string
	for len(got) < 4 {
		select {
		case ev := <-events:
			got = append(got, fmt.Sprintf("%s %s %s %d", ev.Event, ev.Node.Origin, ev.JobName, ev.Pid))
		case <-time.After(10 * time.Second):
			t.Fatalf("events so far: %q", got)
		}
	}
	want := []string{"add_node   0", "identify http://n:1  0", "add_job http://n:1 app.web 0", "add_process http://n:1 app.web 4"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	found, err := lc.FindJob(ctx, "app.web")
	if err != nil || len(found) != 1 || !reflect.DeepEqual(found[0].Pids, []int{4}) || found[0].NodeInfo.Origin != "http://n:1" {
		t.Fatalf("FindJob: %+v %v", found, err)
	}
	sess, err := lc.Sessions(ctx, "n")
	if err != nil || len(sess) != 1 || sess[0].SessionID != "app" || len(sess[0].Jobs) != 1 || sess[0].Jobs[0].Name != "app.web" {
		t.Fatalf("Sessions: %+v %v", sess, err)
	}
}
