package gaffer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The documentation's event forms (0.4 docs: [webhooks]
// proc.dummy.spawn = URL, GET /watch/proc/dummy, the channel's EVENTS
// topics, the -v console) each fire exactly once per happening, for a job
// dummy in the default session, through the real transports.

// edMarker is published last: every pattern of the test matches one of
// its names, so a consumer that got it has got everything before it.
var edMarkerNames = []string{"zz.marker", "proc.dummy.marker", "proc.dummy.spawn.marker", "spawn.marker",
	"create.marker", "job.default.dummy.marker", "exit.marker"}

// edSeen says under which name a consumer with patterns sees a happening
// whose primary name is primary ("" when it does not see it): the
// documented names written out by hand, the most specific pattern (most
// segments) first.
func edSeen(patterns []string, primary string) string {
	marker := strings.HasSuffix(primary, ".marker")
	procForm := map[string]string{"start": "start", "stop": "stop", "spawn": "spawn", "exit": "exit",
		"reap": "reap", "stop_process": "stop_pid"}
	jobForm := map[string]bool{"start": true, "stop": true, "spawn": true, "exit": true, "reap": true}
	ps := append([]string(nil), patterns...)
	sort.SliceStable(ps, func(i, k int) bool { return strings.Count(ps[i], ".") > strings.Count(ps[k], ".") })
	for _, p := range ps {
		switch {
		case p == ".":
			return primary
		case marker:
			return p + ".marker"
		case p == "proc.dummy" && procForm[primary] != "":
			return "proc.dummy." + procForm[primary]
		case p == "job.default.dummy" && jobForm[primary]:
			return "job.default.dummy." + primary
		case p == "proc.dummy.spawn" && primary == "spawn":
			return p
		case p == "create" && primary == "load":
			return p
		case (p == "spawn" || p == "exit") && primary == p:
			return p
		}
	}
	return ""
}

// edExpect lists the names a consumer with patterns must receive for the
// happenings truth (primary names, in order).
func edExpect(truth []string, patterns ...string) []string {
	var out []string
	for _, primary := range truth {
		if n := edSeen(patterns, primary); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// edScenario runs the happenings of the test on the job dummy of the
// default session, loaded and not started: start (1 process), kill -9 of
// its process, scale up, scale down (a reap), a stop of one process, a
// kill through the API, the load of another job, then the marker. It
// returns the primary names of what happened, in order, from a wildcard
// subscription.
func edScenario(t *testing.T, m *Manager) []string {
	t.Helper()
	truth := m.Events().Subscribe(1<<14, ".")
	defer truth.Unsubscribe()
	if err := m.StartJob("default.dummy"); err != nil {
		t.Fatal(err)
	}
	first := onlyProcess(t, m, "default.dummy")
	syscall.Kill(first.OSPid, syscall.SIGKILL)
	<-first.Exited()
	waitFor(t, 20*time.Second, "the respawn", func() bool {
		ps, _ := m.JobProcesses("default.dummy")
		return len(ps) == 1 && ps[0].ID != first.ID
	})
	if _, err := m.Scale("default.dummy", ScaleOp{Value: 1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "two processes", func() bool {
		ps, _ := m.JobProcesses("default.dummy")
		return len(ps) == 2
	})
	ps, _ := m.JobProcesses("default.dummy")
	if _, err := m.Scale("default.dummy", ScaleOp{Value: -1}); err != nil {
		t.Fatal(err)
	}
	<-ps[0].Exited() // the oldest is reaped
	p := onlyProcess(t, m, "default.dummy")
	if err := m.StopProcess(p.ID); err != nil {
		t.Fatal(err)
	}
	<-p.Exited()
	p = onlyProcess(t, m, "default.dummy")
	if err := m.Kill(p.ID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.Exited()
	waitFor(t, 20*time.Second, "the respawn after the kill", func() bool {
		ps, _ := m.JobProcesses("default.dummy")
		return len(ps) == 1 && ps[0].ID != p.ID
	})
	other := childConfig(t, "other", "sleep", nil)
	other.NumProcesses = 0
	if err := m.Load("default", other, nil, false); err != nil {
		t.Fatal(err)
	}
	m.Events().Publish(edMarkerNames[0], nil, edMarkerNames[1:]...)
	var names []string
	for ev := range truth.C {
		if ev.Data["event"] != ev.Name {
			t.Errorf("wildcard: %s with payload event %v", ev.Name, ev.Data["event"])
		}
		names = append(names, ev.Name)
		if ev.Name == edMarkerNames[0] {
			break
		}
	}
	// The happenings, by kind, pin the documented catalogue: 5 spawns
	// (load, kill -9, scale up, stop, kill), 4 exits, 2 stops of one
	// process (the reap, StopProcess), one of each other (the load is
	// the other job's).
	count := map[string]int{}
	for _, n := range names {
		if strings.HasPrefix(n, "proc.") && strings.HasSuffix(n, ".kill") {
			n = "kill"
		}
		count[n]++
	}
	want := map[string]int{"load": 1, "start": 1, "spawn": 5, "exit": 4, "update": 2, "reap": 1,
		"stop_process": 2, "kill": 1, edMarkerNames[0]: 1}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Fatalf("one event per happening: got %v, want %v (%v)", count, want, names)
	}
	return names
}

// edSyncBuf is a concurrency-safe buffer for the console.
type edSyncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *edSyncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *edSyncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// edFeed reads a /watch feed (eventsource or continuous) into names,
// checking that the payload's event is the name the feed gives.
type edFeed struct {
	path  string
	names chan string
	errs  chan string
}

func edOpenFeed(t *testing.T, a *apiT, path string) *edFeed {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.srv.URL+path, nil)
	resp, err := a.c.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %v %v", path, err, resp)
	}
	f := &edFeed{path: path, names: make(chan string, 1000), errs: make(chan string, 1000)}
	sse := strings.Contains(path, "eventsource")
	go func() {
		defer resp.Body.Close()
		if sse {
			readSSE(resp.Body, func(e sseEvent) bool {
				var d map[string]any
				json.Unmarshal([]byte(e.data), &d)
				if d["event"] != e.event {
					f.errs <- fmt.Sprintf("event: %s, data %s", e.event, e.data)
				}
				f.names <- e.event
				return false
			})
			return
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "" {
				continue
			}
			var d map[string]any
			json.Unmarshal(sc.Bytes(), &d)
			n, _ := d["event"].(string)
			f.names <- n
		}
	}()
	return f
}

// collect reads names until the marker (a name ending in ".marker").
func edCollect(t *testing.T, what string, c <-chan string) []string {
	t.Helper()
	var out []string
	deadline := time.After(30 * time.Second)
	for {
		select {
		case n := <-c:
			out = append(out, n)
			if strings.HasSuffix(n, ".marker") {
				return out
			}
		case <-deadline:
			t.Fatalf("%s: no marker after %v", what, out)
		}
	}
}

func edCompare(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s:\n got  %v\n want %v", what, got, want)
	}
}

func TestDocumentedEventFormsFireOncePerHappening(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	m := a.m
	dummy := childConfig(t, "dummy", "sleep", nil)
	if err := m.Load("default", dummy, nil, false); err != nil {
		t.Fatal(err)
	}

	// Webhooks, as [webhooks] sections write them.
	type hookCase struct {
		hooks []string
		rc    *whReceiver
	}
	hookCases := []*hookCase{
		{hooks: []string{"proc.dummy.spawn"}}, // the docs' example
		{hooks: []string{"create"}},           // the docs' other example
		{hooks: []string{"."}},
		{hooks: []string{"spawn", "proc.dummy", "exit"}}, // overlapping hooks on one URL
	}
	var cfgs []WebhookConfig
	for _, hc := range hookCases {
		hc.rc = whNewReceiver(t, nil)
		for _, h := range hc.hooks {
			cfgs = append(cfgs, WebhookConfig{Event: h, URL: hc.rc.srv.URL})
		}
	}
	wh := whStart(t, m.Events(), cfgs, "")

	// /watch over real HTTP.
	feeds := []*edFeed{
		edOpenFeed(t, a, "/watch/proc/dummy?feed=eventsource&heartbeat=0"),
		edOpenFeed(t, a, "/watch/proc/dummy/spawn?feed=eventsource&heartbeat=0"),
		edOpenFeed(t, a, "/watch?feed=eventsource&heartbeat=0"),
		edOpenFeed(t, a, "/watch/spawn?feed=continuous&heartbeat=0"),
	}
	feedPatterns := [][]string{{"proc.dummy"}, {"proc.dummy.spawn"}, {"."}, {"spawn"}}

	// The control channel over a websocket.
	ch := chDial(t, "ws"+strings.TrimPrefix(a.srv.URL, "http"), nil)
	topics := map[string][]string{
		"EVENTS:proc.dummy":        {"proc.dummy"},
		"EVENTS:proc.dummy.spawn":  {"proc.dummy.spawn"},
		"EVENTS":                   {"."},
		"EVENTS:spawn":             {"spawn"},
		"EVENTS:job.default.dummy": {"job.default.dummy"},
		"JOB:default.dummy":        {"job.default.dummy"},
	}
	for topic := range topics {
		if r := ch.sub(topic); r["event"] != "gaffer:subscription_success" {
			t.Fatalf("SUB %s: %v", topic, r)
		}
	}

	// The console: -vv (every event) and -v (the lifecycle list).
	var vv, v edSyncBuf
	go printConsoleEvents(consoleEvents(m, true), &vv)
	go printConsoleEvents(consoleEvents(m, false), &v)

	truth := edScenario(t, m)

	for i, f := range feeds {
		edCompare(t, "GET "+f.path, edCollect(t, f.path, f.names), edExpect(truth, feedPatterns[i]...))
		select {
		case e := <-f.errs:
			t.Errorf("GET %s: %s", f.path, e)
		default:
		}
	}

	got := map[string][]string{}
	ch.until("the marker on every topic", func(msg map[string]any) bool {
		d, _ := msg["data"].(map[string]any)
		if msg["event"] != "gaffer:event" {
			return false
		}
		topic, _ := d["topic"].(string)
		name, _ := d["event"].(string)
		got[topic] = append(got[topic], name)
		for tp := range topics {
			l := got[tp]
			if len(l) == 0 || !strings.HasSuffix(l[len(l)-1], "marker") {
				return false
			}
		}
		return true
	})
	for topic, pats := range topics {
		want := edExpect(truth, pats...)
		if strings.HasPrefix(topic, "JOB:") {
			for i, n := range want {
				want[i] = strings.TrimPrefix(n, "job.default.dummy.")
			}
		}
		edCompare(t, topic, got[topic], want)
	}

	wh.stopDrained(30 * time.Second)
	for _, hc := range hookCases {
		var names []string
		for _, r := range hc.rc.requests() {
			var d map[string]any
			json.Unmarshal(r.body, &d)
			if d["event"] != r.event {
				t.Errorf("hooks %v: header %s, payload event %v", hc.hooks, r.event, d["event"])
			}
			if r.event == "proc.dummy.exit" && (d["exit_code"] == nil || d["exit_status"] == nil || d["term_signal"] == nil) {
				t.Errorf("exit payload: %s", r.body)
			}
			names = append(names, r.event)
		}
		edCompare(t, fmt.Sprintf("webhook %v", hc.hooks), names, edExpect(truth, hc.hooks...))
	}

	// The console prints one line per happening.
	waitFor(t, 20*time.Second, "the console's marker", func() bool {
		return strings.Contains(vv.String(), "zz.marker") && strings.Contains(v.String(), "spawn.marker")
	})
	lines := func(s string) []string {
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			// "HH:MM:SS name | text": the event name is text's first word.
			_, text, _ := strings.Cut(l, " | ")
			w, _, _ := strings.Cut(text, " ")
			out = append(out, w)
		}
		return out
	}
	edCompare(t, "-vv console", lines(vv.String()), truth)
	var lifecycle []string
	for _, n := range truth {
		switch n {
		case "start", "stop", "spawn", "reap", "exit", "stop_process", "flap":
			lifecycle = append(lifecycle, n)
		}
	}
	edCompare(t, "-v console", lines(v.String()), append(lifecycle, "spawn.marker"))
}
