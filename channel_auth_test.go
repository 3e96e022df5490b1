package gaffer

import (
	"fmt"
	"net/http"
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
		if p, ok := e.m.Process(pid); (!ok || p.exited) && r.name != "stop_process" && r.name != "stopall" && r.name != "stop_job" {
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
