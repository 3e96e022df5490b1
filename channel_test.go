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
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// chEnv is a manager served by the two channel handlers over a real
// listener.
type chEnv struct {
	m     *Manager
	s     *Server
	store *AuthStore
	url   string // ws://host:port
}

func chNewEnv(t *testing.T, requireKey bool) *chEnv {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := NewManager(Options{Logger: log})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m.Shutdown(ctx)
	})
	store, err := OpenAuthStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{m: m, requireKey: requireKey, auth: store, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("/channel/websocket", s.serveControlChannel)
	io := func(w http.ResponseWriter, r *http.Request) {
		pid, err := strconv.Atoi(r.PathValue("pid"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		s.serveIOChannel(w, r, pid, r.PathValue("stream"))
	}
	mux.HandleFunc("/{pid}/channel", io)
	mux.HandleFunc("/{pid}/channel/{stream}", io)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return &chEnv{m: m, s: s, store: store, url: "ws" + strings.TrimPrefix(hs.URL, "http")}
}

// key creates an API key with the given permissions.
func (e *chEnv) key(t *testing.T, perms Permissions) string {
	t.Helper()
	k, err := e.store.CreateKey(nil, "test", perms, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k.Key
}

// load loads a job running the test child and returns its first pid.
func (e *chEnv) load(t *testing.T, name, mode string, edit func(*JobConfig)) int {
	t.Helper()
	cfg := childConfig(t, name, mode, nil)
	if edit != nil {
		edit(&cfg)
	}
	if err := e.m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	pids, err := e.m.Pids("default." + name)
	if err != nil || len(pids) == 0 {
		t.Fatalf("pids of %s: %v %v", name, pids, err)
	}
	return pids[0]
}

// chClient is a test client of the control channel.
type chClient struct {
	t    *testing.T
	ws   *WSConn
	msgs chan map[string]any
	err  chan error
	seq  atomic.Int64
}

func chDial(t *testing.T, url string, header http.Header) *chClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := WSDial(ctx, url+"/channel/websocket", header, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	c := &chClient{t: t, ws: ws, msgs: make(chan map[string]any, 100000), err: make(chan error, 1)}
	go func() {
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				c.err <- err
				close(c.msgs)
				return
			}
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				m = map[string]any{"raw": string(data)}
			}
			c.msgs <- m
		}
	}()
	return c
}

func (c *chClient) send(v any) {
	c.t.Helper()
	var err error
	if s, ok := v.(string); ok {
		err = c.ws.WriteText(s)
	} else {
		err = c.ws.WriteJSON(v)
	}
	if err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next message.
func (c *chClient) next() map[string]any {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			c.t.Fatalf("connection closed: %v", <-c.err)
		}
		return m
	case <-time.After(10 * time.Second):
		c.t.Fatal("timed out waiting for a message")
	}
	return nil
}

// until returns the first message for which ok holds, skipping others.
func (c *chClient) until(what string, ok func(map[string]any) bool) map[string]any {
	c.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m, open := <-c.msgs:
			if !open {
				c.t.Fatalf("connection closed waiting for %s: %v", what, <-c.err)
			}
			if ok(m) {
				return m
			}
		case <-deadline:
			c.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// all waits until each predicate has matched a message, in any order
// (forwarders of different topics are not ordered between them), and
// returns the matches.
func (c *chClient) all(what string, preds ...func(map[string]any) bool) []map[string]any {
	c.t.Helper()
	out := make([]map[string]any, len(preds))
	left := len(preds)
	c.until(what, func(m map[string]any) bool {
		for i, p := range preds {
			if out[i] == nil && p(m) {
				out[i] = m
				left--
				break
			}
		}
		return left == 0
	})
	return out
}

// quiet checks that no message matching ok arrives within d.
func (c *chClient) quiet(d time.Duration, ok func(map[string]any) bool) {
	c.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m, open := <-c.msgs:
			if open && ok(m) {
				c.t.Fatalf("unexpected message %v", m)
			}
		case <-deadline:
			return
		}
	}
}

// closed waits for the connection to end and returns the close error.
func (c *chClient) closed() *WSCloseError {
	c.t.Helper()
	for {
		select {
		case _, ok := <-c.msgs:
			if ok {
				continue
			}
			var ce *WSCloseError
			errors.As(<-c.err, &ce)
			return ce
		case <-time.After(10 * time.Second):
			c.t.Fatal("timed out waiting for the close")
		}
	}
}

// cmd runs a command and returns its command_success or command_error
// message.
func (c *chClient) cmd(name string, args ...any) map[string]any {
	c.t.Helper()
	id := "id" + strconv.FormatInt(c.seq.Add(1), 10)
	if args == nil {
		args = []any{}
	}
	c.send(map[string]any{"event": "CMD", "data": map[string]any{"identity": id, "name": name, "args": args}})
	return c.until("reply to "+name, func(m map[string]any) bool {
		d, _ := m["data"].(map[string]any)
		return (m["event"] == "gaffer:command_success" || m["event"] == "gaffer:command_error") && d["id"] == id
	})
}

// ok runs a command that must succeed and returns its result.
func (c *chClient) ok(name string, args ...any) map[string]any {
	c.t.Helper()
	m := c.cmd(name, args...)
	if m["event"] != "gaffer:command_success" {
		c.t.Fatalf("%s %v: %v", name, args, m)
	}
	r, _ := m["data"].(map[string]any)["result"].(map[string]any)
	return r
}

// fails runs a command that must fail and returns errno and reason.
func (c *chClient) fails(name string, args ...any) (float64, string) {
	c.t.Helper()
	m := c.cmd(name, args...)
	if m["event"] != "gaffer:command_error" {
		c.t.Fatalf("%s %v succeeded: %v", name, args, m)
	}
	e := m["data"].(map[string]any)["error"].(map[string]any)
	return e["errno"].(float64), e["reason"].(string)
}

func (c *chClient) sub(topic string) map[string]any {
	c.t.Helper()
	c.send(map[string]any{"event": "SUB", "data": map[string]any{"topic": topic}})
	return c.until("SUB reply", chIsSubReply)
}

func (c *chClient) unsub(topic string) map[string]any {
	c.t.Helper()
	c.send(map[string]any{"event": "UNSUB", "data": map[string]any{"topic": topic}})
	return c.until("UNSUB reply", chIsSubReply)
}

func chIsSubReply(m map[string]any) bool {
	return m["event"] == "gaffer:subscription_success" || m["event"] == "gaffer:subscription_error"
}

// chEventOf matches gaffer:event messages of a topic and event name.
func chEventOf(topic, event string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		d, _ := m["data"].(map[string]any)
		return m["event"] == "gaffer:event" && d["topic"] == topic && (event == "" || d["event"] == event)
	}
}

func chSubReason(t *testing.T, m map[string]any) string {
	t.Helper()
	if m["event"] != "gaffer:subscription_error" {
		t.Fatalf("want a subscription_error, got %v", m)
	}
	return m["data"].(map[string]any)["reason"].(string)
}

func chBusSubs(m *Manager) int {
	b := m.Events()
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

func chStreamSubs(st *Stream) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.push) + len(st.rdrs)
}

func TestChannelInvalidMessages(t *testing.T) {
	e := chNewEnv(t, false)
	c := chDial(t, e.url, nil)
	for _, tc := range []struct {
		msg    any
		reason string
	}{
		{"not json", "invalid_json"},
		{"[1, 2]", "invalid_json"},
		{`"a string"`, "invalid_json"},
		{"42", "invalid_json"},
		{"null", "invalid_json"},
		{`{"a": 1} {"b": 2}`, "invalid_json"},
		{map[string]any{"data": map[string]any{}}, "event_missing"},
		{map[string]any{"event": "SUB"}, "data_missing"},
		{map[string]any{"event": "SUB", "data": map[string]any{}}, "topic_missing"},
		{map[string]any{"event": "UNSUB", "data": map[string]any{"topic": ""}}, "topic_missing"},
		{map[string]any{"event": "CMD", "data": map[string]any{"identity": "x"}}, "cmd_name_mssing"},
		{map[string]any{"event": "CMD", "data": map[string]any{"name": "sessions"}}, "cmd_identity_missing"},
		{map[string]any{"event": "FOO", "data": map[string]any{}}, "unknown_cmd"},
	} {
		c.send(map[string]any{"event": "NOP"}) // ignored, no reply
		c.send(tc.msg)
		m := c.next()
		d, _ := m["data"].(map[string]any)
		if m["event"] != "gaffer:error" || d["error"] != "invalid_msg" || d["reason"] != tc.reason {
			t.Errorf("%v: got %v, want invalid_msg %s", tc.msg, m, tc.reason)
		}
	}
	// The connection survived all of it.
	if r := c.ok("sessions"); r["sessions"] == nil {
		t.Fatalf("sessions: %v", r)
	}
}

func TestChannelCommands(t *testing.T) {
	e := chNewEnv(t, false)
	c := chDial(t, e.url, nil)
	self, _ := os.Executable()
	cfg := map[string]any{"name": "web", "cmd": self, "env": map[string]any{"GAFFER_TEST_CHILD": "echo"},
		"redirect_input": true, "redirect_output": []any{"out", "err"}, "graceful_timeout": 5}

	if errno, reason := c.fails("load"); errno != 400 || reason != "config_missing" {
		t.Errorf("load without config: %v %s", errno, reason)
	}
	if errno, reason := c.fails("load", "nope"); errno != 400 || reason != "invalid_config" {
		t.Errorf("load with a string: %v %s", errno, reason)
	}
	if errno, reason := c.fails("load", map[string]any{"name": "x"}); errno != 400 || reason != "invalid_config" {
		t.Errorf("load without cmd: %v %s", errno, reason)
	}
	c.ok("load", cfg)
	if errno, reason := c.fails("load", cfg); errno != 409 || reason != CodeConflict {
		t.Errorf("load twice: %v %s", errno, reason)
	}
	if errno, reason := c.fails("frobnicate"); errno != 404 || reason != "command_not_found" {
		t.Errorf("unknown command: %v %s", errno, reason)
	}
	if errno, reason := c.fails("scale", "web"); errno != 400 || reason != "bad_command" {
		t.Errorf("scale without n: %v %s", errno, reason)
	}
	if errno, reason := c.fails("info", "default.nope"); errno != 404 || reason != CodeNotFound {
		t.Errorf("info of an unknown job: %v %s", errno, reason)
	}
	if errno, reason := c.fails("process_info", "1"); errno != 400 || reason != "bad_command" {
		t.Errorf("process_info with a string pid: %v %s", errno, reason)
	}

	if r := c.ok("sessions"); fmt.Sprint(r["sessions"]) != "[default]" {
		t.Errorf("sessions: %v", r)
	}
	if r := c.ok("jobs"); fmt.Sprint(r["jobs"]) != "[default.web]" {
		t.Errorf("jobs: %v", r)
	}
	if r := c.ok("jobs", "default"); r["sessionid"] != "default" || fmt.Sprint(r["jobs"]) != "[default.web]" {
		t.Errorf("jobs default: %v", r)
	}
	if r := c.ok("scale", "web", "=2"); r["numprocesses"] != 2.0 {
		t.Errorf("scale: %v", r)
	}
	pids := c.ok("pids", "default.web")["pids"].([]any)
	if len(pids) != 2 {
		t.Fatalf("pids: %v", pids)
	}
	pid := int(pids[0].(float64))
	if info := c.ok("info", "default.web")["info"].(map[string]any); info["max_processes"] != 2.0 {
		t.Errorf("info: %v", info)
	}
	if st := c.ok("stats", "web")["stats"].(map[string]any); st["name"] != "default.web" {
		t.Errorf("stats: %v", st)
	}
	if pi := c.ok("process_info", pid)["info"].(map[string]any); pi["pid"] != float64(pid) || pi["name"] != "default.web" {
		t.Errorf("process_info: %v", pi)
	}
	if ps := c.ok("process_stats", pid)["stats"].(map[string]any); ps["ctime"] == nil {
		t.Errorf("process_stats: %v", ps)
	}

	// send: a list of strings is written as lines, and echoed back.
	p, _ := e.m.Process(pid)
	st, _ := p.Stream("out")
	c.ok("send", pid, []any{"hello", "world"})
	waitFor(t, 10*time.Second, "echo", func() bool {
		chunks, _ := st.Backlog(0)
		var all []byte
		for _, ch := range chunks {
			all = append(all, ch.Data...)
		}
		return string(all) == "hello\nworld\n"
	})
	if errno, reason := c.fails("send", pid, "x", "nope"); errno != 404 || reason != CodeStreamNotFound {
		t.Errorf("send to an unknown stream: %v %s", errno, reason)
	}
	if errno, reason := c.fails("kill", pid, "NOSUCH"); errno != 400 || reason != CodeBadSignal {
		t.Errorf("kill with a bad signal: %v %s", errno, reason)
	}
	c.ok("kill", pid, "CONT")
	c.ok("killall", "web", 18)

	r := c.ok("commit", "web", 1.5, map[string]any{"X": "1"})
	cpid := int(r["pid"].(float64))
	if pi := c.ok("process_info", cpid)["info"].(map[string]any); pi["commited"] != true || pi["env"].(map[string]any)["X"] != "1" {
		t.Errorf("committed process: %v", pi)
	}
	c.ok("stop_process", cpid)
	waitFor(t, 10*time.Second, "committed process gone", func() bool { _, ok := e.m.Process(cpid); return !ok })

	c.ok("stop_job", "web")
	waitFor(t, 10*time.Second, "stopped", func() bool { p, _ := e.m.Pids(""); return len(p) == 0 })
	c.ok("start_job", "web")
	waitFor(t, 10*time.Second, "restarted", func() bool { p, _ := e.m.Pids("default.web"); return len(p) == 2 })
	c.ok("stopall", "web")
	c.ok("reload", "web")
	before, _ := e.m.Pids("default.web")
	if r := c.ok("restart", "web", true); r["replaced"] != 2.0 {
		t.Errorf("rolling restart: %v", r)
	}
	if after, _ := e.m.Pids("default.web"); len(after) != 2 || slices.Contains(after, before[0]) || slices.Contains(after, before[1]) {
		t.Errorf("rolling restart: before %v, after %v", before, after)
	}
	c.ok("restart", "web")
	if errno, _ := c.fails("restart", "web", "yes"); errno != 400 {
		t.Errorf("restart with rolling = \"yes\": %v", errno)
	}

	cfg["numprocesses"] = 0
	c.send(map[string]any{"event": "CMD", "data": map[string]any{"identity": 7, "name": "update",
		"args": []any{cfg}, "kwargs": map[string]any{"sessionid": "default"}}})
	m := c.until("update", func(m map[string]any) bool { return m["data"].(map[string]any)["id"] == 7.0 })
	if m["event"] != "gaffer:command_success" {
		t.Fatalf("update with kwargs: %v", m)
	}
	if info, _ := e.m.JobInfo("default.web", false); info.MaxProcesses != 0 {
		t.Errorf("after update: %+v", info)
	}
	// unload takes the session as a kwarg, or in the name.
	c.send(map[string]any{"event": "CMD", "data": map[string]any{"identity": "u", "name": "unload",
		"args": []any{"web"}, "kwargs": map[string]any{"sessionid": "default"}}})
	if m := c.until("unload", func(m map[string]any) bool { return m["data"].(map[string]any)["id"] == "u" }); m["event"] != "gaffer:command_success" {
		t.Fatalf("unload: %v", m)
	}
	if errno, _ := c.fails("unload", "default.web"); errno != 404 {
		t.Errorf("unload twice: %v", errno)
	}
}

func TestChannelAuth(t *testing.T) {
	e := chNewEnv(t, true)
	admin := e.key(t, Permissions{Admin: true})

	// A first message that is not AUTH: 401, then close 1008.
	c := chDial(t, e.url, nil)
	c.send(map[string]any{"event": "NOP"})
	m := c.next()
	if d := m["data"].(map[string]any); m["event"] != "gaffer:error" || d["error"] != "AUTH_REQUIRED" || d["reason"] != chReasonUnauthorized {
		t.Errorf("no AUTH: %v", m)
	}
	if ce := c.closed(); ce == nil || ce.Code != WSClosePolicy {
		t.Errorf("close after no AUTH: %v", ce)
	}

	// An unknown key: 403, then close 1008.
	c = chDial(t, e.url, nil)
	c.send("AUTH:nope")
	m = c.next()
	if d := m["data"].(map[string]any); d["error"] != "AUTH_REQUIRED" || d["reason"] != chReasonForbidden {
		t.Errorf("bad key: %v", m)
	}
	if ce := c.closed(); ce == nil || ce.Code != WSClosePolicy {
		t.Errorf("close after a bad key: %v", ce)
	}

	// A good key, kept for the life of the connection.
	c = chDial(t, e.url, nil)
	c.send("AUTH:" + admin)
	if m := c.next(); m["event"] != "gaffer:auth_success" {
		t.Fatalf("AUTH: %v", m)
	}
	c.ok("sessions")
	c.ok("sessions")

	// X-Api-Key on the upgrade request: no AUTH message needed.
	c = chDial(t, e.url, http.Header{"X-Api-Key": {admin}})
	c.ok("sessions")
}

func TestChannelPermissions(t *testing.T) {
	e := chNewEnv(t, true)
	pid := e.load(t, "web", "sleep", func(c *JobConfig) { c.RedirectOutput = []string{"out"} })
	reader := e.key(t, Permissions{Read: []string{"default"}})
	c := chDial(t, e.url, http.Header{"X-Api-Key": {reader}})

	// A refused command is not run.
	if errno, reason := c.fails("stop_job", "web"); errno != 403 || reason != CodeForbidden {
		t.Errorf("stop_job with a read-only key: %v %s", errno, reason)
	}
	if errno, _ := c.fails("kill", pid, "KILL"); errno != 403 {
		t.Errorf("kill with a read-only key: %v", errno)
	}
	if errno, _ := c.fails("send", pid, "x"); errno != 403 {
		t.Errorf("send with a read-only key: %v", errno)
	}
	for _, cmd := range []string{"sessions", "jobs", "pids"} {
		if errno, _ := c.fails(cmd); errno != 403 {
			t.Errorf("%s with a read-only key: %v", cmd, errno)
		}
	}
	if p, ok := e.m.Process(pid); !ok || !alive(p.OSPid) {
		t.Fatal("the refused stop_job or kill ran")
	}
	if r := chSubReason(t, c.sub("EVENTS")); r != "forbidden" {
		t.Errorf("EVENTS with a read-only key: %s", r)
	}
	if r := chSubReason(t, c.sub("JOB:default.web")); r != "forbidden" {
		t.Errorf("JOB with a read-only key: %s", r)
	}
	if m := c.sub("STREAM:" + strconv.Itoa(pid)); m["event"] != "gaffer:subscription_success" {
		t.Errorf("STREAM with a read-only key: %v", m)
	}

	// A job-level manage grant, given with or without the session.
	manager := e.key(t, Permissions{Manage: []string{"default.web"}})
	c2 := chDial(t, e.url, nil)
	c2.send("AUTH:" + manager)
	c2.until("auth", func(m map[string]any) bool { return m["event"] == "gaffer:auth_success" })
	if errno, _ := c2.fails("load", map[string]any{"name": "x", "cmd": "true"}); errno != 403 {
		t.Errorf("load with a job key: %v", errno)
	}
	c2.ok("process_info", pid)
	c2.ok("stop_job", "web")
	waitFor(t, 10*time.Second, "stopped", func() bool { _, ok := e.m.Process(pid); return !ok })
}

func TestChannelCleanup(t *testing.T) {
	e := chNewEnv(t, false)
	pid := e.load(t, "web", "sleep", func(c *JobConfig) { c.RedirectOutput = []string{"out"} })
	p, _ := e.m.Process(pid)
	st, _ := p.Stream("")
	baseBus := chBusSubs(e.m)
	baseG := runtime.NumGoroutine()
	for round := 0; round < 3; round++ {
		c := chDial(t, e.url, nil)
		for _, topic := range []string{"EVENTS", "EVENTS:spawn", "JOB:default.web", "PROCESS:" + strconv.Itoa(pid),
			"STATS:" + strconv.Itoa(pid), "STATS:default.web", "STREAM:" + strconv.Itoa(pid)} {
			if m := c.sub(topic); m["event"] != "gaffer:subscription_success" {
				t.Fatalf("SUB %s: %v", topic, m)
			}
		}
		c.sub("EVENTS") // counted twice
		if n := chBusSubs(e.m); n != baseBus+5 {
			t.Errorf("bus subscriptions while subscribed: %d, want %d", n, baseBus+5)
		}
		if n := chStreamSubs(st); n != 1 {
			t.Errorf("stream subscriptions while subscribed: %d", n)
		}
		if round == 0 {
			// UNSUB to zero removes the subscription.
			c.unsub("STREAM:" + strconv.Itoa(pid))
			waitFor(t, 5*time.Second, "stream unsubscribed", func() bool { return chStreamSubs(st) == 0 })
		}
		c.ws.Close(WSCloseNormal, "")
		waitFor(t, 5*time.Second, "bus subscriptions removed", func() bool { return chBusSubs(e.m) == baseBus })
		waitFor(t, 5*time.Second, "stream subscriptions removed", func() bool { return chStreamSubs(st) == 0 })
	}
	waitFor(t, 5*time.Second, "goroutines gone", func() bool { return runtime.NumGoroutine() <= baseG+2 })
}

// TestChannelThroughRouter runs both channels behind the real HTTP layer
// with keys required: in-band AUTH, X-Api-Key on the upgrade, and Node's
// ws client when it is installed (test/node).
func TestChannelThroughRouter(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := NewManager(Options{Logger: log})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m.Shutdown(ctx)
	})
	store, err := OpenAuthStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k, err := store.CreateKey(nil, "admin", Permissions{Admin: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(ServerOptions{Manager: m, Auth: store, RequireKey: true, Logger: log})
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	e := &chEnv{m: m, s: s, store: store, url: url}
	pid := e.load(t, "echo", "echo", iochEchoJob)

	c := chDial(t, url, nil)
	c.send("AUTH:" + k.Key)
	if m := c.next(); m["event"] != "gaffer:auth_success" {
		t.Fatalf("AUTH: %v", m)
	}
	c.ok("pids")
	c = chDial(t, url, http.Header{"X-Api-Key": {k.Key}})
	c.ok("pids")
	ioc := iochDial(t, url+"/"+strconv.Itoa(pid)+"/channel", http.Header{"X-Api-Key": {k.Key}})
	ioc.send(WSText, "x", "y\n")
	for m := ioc.next(); m.typ != "message"; m = ioc.next() {
	}

	node, err := exec.LookPath("node")
	modules, _ := filepath.Abs(filepath.Join("test", "node", "node_modules"))
	if _, serr := os.Stat(filepath.Join(modules, "ws")); err != nil || serr != nil {
		t.Skip("node or test/node/node_modules/ws is missing")
	}
	script := filepath.Join(t.TempDir(), "channel.cjs")
	os.WriteFile(script, []byte(chNodeScript), 0o644)
	cmd := exec.Command(node, script, url, k.Key, strconv.Itoa(pid))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "channel ok") || !strings.Contains(string(out), "io ok") {
		t.Fatalf("node client: %v\n%s", err, out)
	}
}

// chNodeScript drives both channels with Node's ws package.
const chNodeScript = `
const WebSocket = require('ws');
const [url, key, pid] = process.argv.slice(2);
const fail = (m) => { console.log('FAIL', m); process.exit(1); };
setTimeout(() => fail('timeout'), 10000);
const c = new WebSocket(url + '/channel/websocket');
c.on('open', () => c.send('AUTH:' + key));
c.on('message', (data) => {
  const m = JSON.parse(data.toString());
  if (m.event === 'gaffer:auth_success') {
    c.send(JSON.stringify({event: 'SUB', data: {topic: 'STREAM:' + pid}}));
  } else if (m.event === 'gaffer:subscription_success') {
    c.send(JSON.stringify({event: 'CMD', data: {identity: 'n1', name: 'send', args: [Number(pid), 'from node\n']}}));
  } else if (m.event === 'gaffer:event' && m.data.data === 'from node\n') {
    console.log('channel ok');
    c.close(1000);
    io();
  } else if (m.event !== 'gaffer:command_success') {
    fail(JSON.stringify(m));
  }
});
function io() {
  const w = new WebSocket(url + '/' + pid + '/channel', {headers: {'X-Api-Key': key}});
  let ok = 0;
  w.on('open', () => w.send(Buffer.from('V1 message 0123\0io node\n')));
  w.on('message', (data) => {
    const s = data.toString();
    if (s === 'V1 response 0123\0OK') ok |= 1;
    else if (s.startsWith('V1 message ') && s.endsWith('\0io node\n')) ok |= 2;
    else fail(s);
    if (ok === 3) { console.log('io ok'); w.close(1000); process.exit(0); }
  });
};
`
