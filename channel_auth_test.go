package gaffer

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestChannelCommandKeyMatrix runs every control channel command with a
// read key, a write key, a manage key scoped to another session, a manage
// key on the session and an admin key, and checks who is refused (403,
// and nothing changed) and who gets through.
func TestChannelCommandKeyMatrix(t *testing.T) {
	e := chNewEnv(t, true)
	pid := e.load(t, "web", "sleep", func(c *JobConfig) { c.RedirectInput = true })
	keys := map[string]string{
		"read":   e.key(t, Permissions{Read: []string{"default"}}),
		"write":  e.key(t, Permissions{Write: []string{"default"}}),
		"other":  e.key(t, Permissions{Manage: []string{"other"}}),
		"manage": e.key(t, Permissions{Manage: []string{"default"}}),
		"admin":  e.key(t, Permissions{Admin: true}),
	}
	// allowed lists the keys that may run each command (reference §3.6,
	// where every check is enforced).
	type row struct {
		name    string
		args    func() []any
		allowed []string
	}
	job := func() []any { return []any{"web"} }
	proc := func() []any { return []any{pid} }
	rows := []row{
		{"sessions", nil, []string{"admin"}},
		{"jobs", nil, []string{"admin"}},
		{"pids", nil, []string{"admin"}},
		{"info", job, []string{"manage", "admin"}},
		{"stats", job, []string{"manage", "admin"}},
		{"process_info", proc, []string{"manage", "admin"}},
		{"process_stats", proc, []string{"manage", "admin"}},
		{"send", func() []any { return []any{pid, "x"} }, []string{"write", "manage", "admin"}},
		{"scale", func() []any { return []any{"web", 0} }, []string{"manage", "admin"}},
		{"killall", func() []any { return []any{"web", "CONT"} }, []string{"manage", "admin"}},
		{"kill", func() []any { return []any{pid, "CONT"} }, []string{"manage", "admin"}},
		{"start_job", job, []string{"manage", "admin"}},
		{"load", func() []any { return []any{map[string]any{"name": "x", "cmd": "sleep 30", "start": false}} }, []string{"admin"}},
		{"update", func() []any { return []any{map[string]any{"name": "x", "cmd": "sleep 31", "start": false}} }, []string{"admin"}},
		{"reload", func() []any { return []any{"x"} }, []string{"admin"}},
		{"unload", func() []any { return []any{"x"} }, []string{"admin"}},
		{"commit", job, []string{"manage", "admin"}},
		{"stop_process", func() []any { return []any{pid} }, []string{"manage", "admin"}},
		{"stopall", job, []string{"manage", "admin"}},
		{"stop_job", job, []string{"manage", "admin"}},
		{"restart", job, []string{"manage", "admin"}},
	}
	clients := map[string]*chClient{}
	for who, k := range keys {
		clients[who] = chDial(t, e.url, http.Header{"X-Api-Key": {k}})
	}
	for _, r := range rows {
		allowed := map[string]bool{}
		for _, w := range r.allowed {
			allowed[w] = true
		}
		// Refused keys first: the state must not change.
		for _, who := range []string{"read", "write", "other", "manage", "admin"} {
			if allowed[who] {
				continue
			}
			before, _ := e.m.JobInfo("default.web", true)
			var args []any
			if r.args != nil {
				args = r.args()
			}
			errno, reason := clients[who].fails(r.name, args...)
			if errno != 403 || reason != CodeForbidden {
				t.Errorf("%s with a %s key: %v %s, want 403 forbidden", r.name, who, errno, reason)
			}
			after, _ := e.m.JobInfo("default.web", true)
			if after.MaxProcesses != before.MaxProcesses || after.State != before.State || after.Running != before.Running {
				t.Errorf("%s refused for a %s key but the job changed: %+v -> %+v", r.name, who, before, after)
			}
		}
		// One allowed key runs it (the state-changing ones only once).
		who := r.allowed[0]
		var args []any
		if r.args != nil {
			args = r.args()
		}
		m := clients[who].cmd(r.name, args...)
		if m["event"] != "gaffer:command_success" {
			t.Errorf("%s with a %s key: %v", r.name, who, m)
		}
		// Let what the command started (a restart, a stop) finish before
		// the next refusals compare the job's state.
		waitFor(t, 10*time.Second, "the job to settle after "+r.name, func() bool {
			e.m.mu.Lock()
			defer e.m.mu.Unlock()
			for _, p := range e.m.procs {
				if p.stopping {
					return false
				}
			}
			j, err := e.m.jobLocked("default.web")
			return err == nil && (j.state != JobRunning || len(j.procs) == j.target)
		})
		if r.name == "load" || r.name == "update" || r.name == "reload" || r.name == "unload" {
			continue
		}
		if p, ok := e.m.Process(pid); (!ok || p.exited) && r.name != "stop_process" && r.name != "stopall" && r.name != "stop_job" && r.name != "restart" {
			t.Fatalf("process %d gone after %s", pid, r.name)
		}
	}
}

// TestChannelTopicCap: each distinct topic costs a goroutine and a bus
// subscription; a connection may hold chMaxTopics of them, and a SUB past
// that is refused with too_many_subscriptions (it used to be unbounded).
func TestChannelTopicCap(t *testing.T) {
	e := chNewEnv(t, false)
	c := chDial(t, e.url, nil)
	base := chBusSubs(e.m)
	for i := range chMaxTopics {
		if m := c.sub(fmt.Sprintf("EVENTS:t%d", i)); m["event"] != "gaffer:subscription_success" {
			t.Fatalf("SUB %d: %v", i, m)
		}
	}
	// The same topic again is only a reference count: allowed.
	if m := c.sub("EVENTS:t0"); m["event"] != "gaffer:subscription_success" {
		t.Fatalf("SUB of a topic already held: %v", m)
	}
	for i := range 50 {
		m := c.sub(fmt.Sprintf("EVENTS:more%d", i))
		if r := chSubReason(t, m); r != "too_many_subscriptions" {
			t.Fatalf("SUB past the cap: %s", r)
		}
	}
	if n := chBusSubs(e.m) - base; n != chMaxTopics {
		t.Fatalf("%d bus subscriptions for one connection, want %d", n, chMaxTopics)
	}
	// Releasing one makes room for one.
	c.unsub("EVENTS:t1")
	if m := c.sub("EVENTS:again"); m["event"] != "gaffer:subscription_success" {
		t.Fatalf("SUB after an UNSUB: %v", m)
	}
}

// TestChannelAndSockJSAudit: the README promises an audit line per
// state-changing request, but control channel and SockJS commands left
// none. Every state-changing command is now audited on both transports,
// with who, what, the target and the result, refused ones included; a
// failed AUTH too; read-only commands are not.
func TestChannelAndSockJSAudit(t *testing.T) {
	store, err := OpenAuthStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys := newKeyMatrix(t, store)
	var logBuf authLogBuffer
	a := newAPI(t, ServerOptions{Auth: store, RequireKey: true, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	if err := a.m.Load("app", childConfig(t, "web", "sleep", nil), nil, true); err != nil {
		t.Fatal(err)
	}
	wsURL := "ws" + strings.TrimPrefix(a.srv.URL, "http")
	manager := chDial(t, wsURL, http.Header{"X-Api-Key": {keys.manage}})
	manager.ok("scale", "app.web", 2)
	manager.ok("info", "app.web") // read-only: no audit line
	reader := chDial(t, wsURL, http.Header{"X-Api-Key": {keys.read}})
	if errno, _ := reader.fails("scale", "app.web", 0); errno != 403 {
		t.Fatalf("scale with a read key: %v", errno)
	}
	manager.fails("scale", "app.web") // missing argument: refused with 400
	bad, _, err := WSDial(t.Context(), wsURL+"/channel/websocket", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad.WriteText("AUTH:0123456789abcdef0123456789abcdef")
	bad.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := bad.ReadMessage(); err != nil {
			break
		}
	}
	// SockJS (xhr polling).
	p := &sjPoller{t: t, base: a.srv.URL + "/channel/000/audit1"}
	sjDo(t, "POST", p.base+"/xhr", "", nil)
	p.send("AUTH:" + keys.manage)
	p.until("auth_success", func(m map[string]any) bool { return m["event"] == "gaffer:auth_success" })
	p.send(map[string]any{"event": "CMD", "data": map[string]any{"identity": "k1", "name": "stop_job", "args": []any{"app.web"}}})
	p.until("stop_job", func(m map[string]any) bool { return m["event"] == "gaffer:command_success" })

	want := []string{
		`who=manager key_id=` + authFingerprint(keys.manage) + ` action="CMD scale" target=app.web transport=websocket remote=127.0.0.1:`,
		`who=reader key_id=` + authFingerprint(keys.read) + ` action="CMD scale" target=app.web transport=websocket remote=127.0.0.1:`,
		`who=manager key_id=` + authFingerprint(keys.manage) + ` action="CMD stop_job" target=app.web transport=sockjs remote=127.0.0.1:`,
		`action=AUTH target="" transport=websocket`,
	}
	results := []string{"result=200", "result=403 error=forbidden", "result=200", "result=403 error=forbidden"}
	waitFor(t, 10*time.Second, "the audit lines", func() bool {
		return strings.Count(logBuf.String(), "msg=audit") >= 5
	})
	lines := strings.Split(logBuf.String(), "\n")
	for i, w := range want {
		found := false
		for _, l := range lines {
			if strings.Contains(l, "msg=audit") && strings.Contains(l, w) && strings.Contains(l, results[i]) {
				found = true
			}
		}
		if !found {
			t.Errorf("no audit line with %q and %q in:\n%s", w, results[i], logBuf.String())
		}
	}
	if !strings.Contains(logBuf.String(), `action="CMD scale" target=app.web transport=websocket`) || !strings.Contains(logBuf.String(), "result=400 error=bad_command") {
		t.Errorf("the refused scale without its argument is not audited:\n%s", logBuf.String())
	}
	if strings.Contains(logBuf.String(), `action="CMD info"`) {
		t.Errorf("a read-only command was audited:\n%s", logBuf.String())
	}
	for _, k := range []string{keys.manage, keys.read} {
		if strings.Contains(logBuf.String(), k) {
			t.Fatal("an API key appears in the log")
		}
	}
}
