package gaffer

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// whReceiver is a real HTTP receiver recording what it gets; answer
// decides the status of each request (n counts from 1).
type whReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []whReq
	answer func(n int, r whReq) int
}

type whReq struct {
	event, delivery, sig, ctype string
	body                        []byte
	status                      int
}

func whNewReceiver(t *testing.T, answer func(n int, r whReq) int) *whReceiver {
	rc := &whReceiver{answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q := whReq{event: r.Header.Get("X-Gaffer-Event"), delivery: r.Header.Get("X-Gaffer-Delivery"),
			sig: r.Header.Get("X-Gaffer-Signature"), ctype: r.Header.Get("Content-Type"), body: body}
		if r.Method != http.MethodPost {
			w.WriteHeader(405)
			return
		}
		rc.mu.Lock()
		n := len(rc.reqs) + 1
		q.status = 200
		if rc.answer != nil {
			q.status = rc.answer(n, q)
		}
		rc.reqs = append(rc.reqs, q)
		rc.mu.Unlock()
		w.WriteHeader(q.status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *whReceiver) requests() []whReq {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]whReq(nil), rc.reqs...)
}

func whStart(t *testing.T, bus *Bus, hooks []WebhookConfig, secret string) *Webhooks {
	t.Helper()
	w := NewWebhooks(bus, hooks, secret, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.whBackoff = []time.Duration{time.Millisecond, 2 * time.Millisecond}
	if err := w.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop() })
	return w
}

func TestWebhookRetriesThenDeliversOnceSigned(t *testing.T) {
	rc := whNewReceiver(t, func(n int, _ whReq) int {
		if n <= 2 {
			return 503
		}
		return 200
	})
	bus := NewBus()
	secret := "s3cret"
	w := whStart(t, bus, []WebhookConfig{{Event: "spawn", URL: rc.srv.URL + "/hook?token=x"}}, secret)
	bus.Publish("spawn", map[string]any{"name": "default.web", "pid": 1, "os_pid": 4242})
	waitFor(t, 10*time.Second, "3 attempts", func() bool { return len(rc.requests()) >= 3 })
	waitFor(t, 10*time.Second, "delivered count", func() bool {
		st := w.Stats()
		return len(st) == 1 && st[0].Delivered == 1 && !st[0].InFlight
	})
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("got %d requests, want 3", len(reqs))
	}
	for i, q := range reqs {
		if q.delivery == "" || q.delivery != reqs[0].delivery {
			t.Errorf("request %d: delivery id %q, want the same on every attempt (%q)", i, q.delivery, reqs[0].delivery)
		}
		if q.event != "spawn" || q.ctype != "application/json" {
			t.Errorf("request %d: event %q content-type %q", i, q.event, q.ctype)
		}
		if !bytes.Equal(q.body, reqs[0].body) {
			t.Errorf("request %d: body changed between attempts", i)
		}
	}
	last := reqs[2]
	want := WebhookSignature([]byte(secret), last.body)
	if !hmac.Equal([]byte(last.sig), []byte(want)) || !strings.HasPrefix(last.sig, "sha256=") {
		t.Fatalf("signature %q, want %q", last.sig, want)
	}
	if WebhookSignature([]byte("other"), last.body) == last.sig {
		t.Fatal("signature does not depend on the secret")
	}
	var payload map[string]any
	if err := json.Unmarshal(last.body, &payload); err != nil {
		t.Fatal(err)
	}
	if payload["event"] != "spawn" || payload["name"] != "default.web" || payload["os_pid"] != float64(4242) {
		t.Fatalf("payload %v", payload)
	}
	st := w.Stats()[0]
	if st.Failed != 0 || st.Dropped != 0 || strings.Contains(st.URL, "token") || strings.Contains(st.URL, "/hook") {
		t.Fatalf("stats %+v", st)
	}
}

func TestWebhookNoSignatureWithoutSecret(t *testing.T) {
	rc := whNewReceiver(t, nil)
	bus := NewBus()
	whStart(t, bus, []WebhookConfig{{Event: ".", URL: rc.srv.URL}}, "")
	bus.Publish("load", map[string]any{"name": "a.b"})
	waitFor(t, 10*time.Second, "delivery", func() bool { return len(rc.requests()) == 1 })
	if s := rc.requests()[0].sig; s != "" {
		t.Fatalf("signature %q without a secret", s)
	}
}

func TestWebhookOrderPerURL(t *testing.T) {
	// A receiver that is slow on some requests: order must hold anyway.
	rc := whNewReceiver(t, func(n int, _ whReq) int {
		if n%7 == 0 {
			return 500 // retried, so it comes again before the next one
		}
		return 204
	})
	bus := NewBus()
	w := whStart(t, bus, []WebhookConfig{{Event: "tick", URL: rc.srv.URL}}, "")
	const n = 200
	for i := 0; i < n; i++ {
		bus.Publish("tick", map[string]any{"i": i})
	}
	waitFor(t, 20*time.Second, "all delivered", func() bool {
		st := w.Stats()
		return len(st) == 1 && st[0].Delivered+st[0].Failed == n
	})
	if st := w.Stats()[0]; st.Delivered != n {
		t.Fatalf("stats %+v", st)
	}
	// The successful requests, in arrival order, carry 0..n-1.
	var got []int
	for _, q := range rc.requests() {
		if q.status >= 300 {
			continue
		}
		var p struct{ I int }
		json.Unmarshal(q.body, &p)
		got = append(got, p.I)
	}
	if len(got) != n {
		t.Fatalf("got %d distinct deliveries, want %d", len(got), n)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("delivery %d carries %d: out of order (%v…)", i, v, got[:i+1])
		}
	}
}

func TestWebhookClientErrorNotRetried(t *testing.T) {
	rc := whNewReceiver(t, func(n int, q whReq) int {
		if q.event == "bad" {
			return 400
		}
		return 200
	})
	bus := NewBus()
	w := whStart(t, bus, []WebhookConfig{{Event: ".", URL: rc.srv.URL}}, "")
	bus.Publish("bad", nil)
	bus.Publish("good", nil)
	// Deliveries to one URL are in order: when "good" arrives, "bad" is done.
	waitFor(t, 10*time.Second, "good delivered", func() bool {
		for _, q := range rc.requests() {
			if q.event == "good" {
				return true
			}
		}
		return false
	})
	bad := 0
	for _, q := range rc.requests() {
		if q.event == "bad" {
			bad++
		}
	}
	if bad != 1 {
		t.Fatalf("a 400 was tried %d times, want 1", bad)
	}
	waitFor(t, 10*time.Second, "stats", func() bool {
		st := w.Stats()
		return len(st) == 1 && st[0].Failed == 1 && st[0].Delivered == 1
	})
}

func TestWebhookConnectionErrorRetriedThenGivenUp(t *testing.T) {
	// A port nothing listens on: close a server and reuse its address.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	bus := NewBus()
	w := whStart(t, bus, []WebhookConfig{{Event: "x", URL: deadURL}}, "k")
	bus.Publish("x", nil)
	waitFor(t, 20*time.Second, "given up", func() bool {
		st := w.Stats()
		return len(st) == 1 && st[0].Failed == 1
	})
}

func TestWebhookDeadReceiverBoundedQueue(t *testing.T) {
	release := make(chan struct{})
	var hits sync.WaitGroup
	hits.Add(1)
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(hits.Done)
		<-release // hangs like a dead receiver
		w.WriteHeader(500)
	}))
	defer srv.Close()
	defer close(release)
	bus := NewBus()
	w := NewWebhooks(bus, []WebhookConfig{{Event: ".", URL: srv.URL}}, "", slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.whQueueSize = 10
	w.whBackoff = []time.Duration{time.Hour}
	if err := w.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	bus.Publish("first", nil)
	hits.Wait() // the first delivery is stuck in the receiver
	const n = 5000
	for i := 0; i < n; i++ {
		bus.Publish("ev", map[string]any{"i": i}) // never blocks
	}
	waitFor(t, 10*time.Second, "all events routed", func() bool {
		st := w.Stats()
		return len(st) == 1 && int64(st[0].Queued)+st[0].Dropped == n
	})
	st := w.Stats()[0]
	if st.Queued != 10 || st.Dropped != n-10 || !st.InFlight {
		t.Fatalf("stats %+v, want 10 queued and %d dropped", st, n-10)
	}
	// The queue keeps the newest events.
	tg := w.targets[srv.URL]
	tg.mu.Lock()
	var p struct{ I int }
	json.Unmarshal(tg.queue[len(tg.queue)-1].body, &p)
	capacity := cap(tg.queue)
	tg.mu.Unlock()
	if p.I != n-1 {
		t.Fatalf("newest queued event is %d, want %d", p.I, n-1)
	}
	if capacity > 64 {
		t.Fatalf("queue capacity grew to %d", capacity)
	}
	// Stop does not wait for the hung receiver.
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestWebhookMatching(t *testing.T) {
	rcAll := whNewReceiver(t, nil)
	rcJob := whNewReceiver(t, nil)
	rcExit := whNewReceiver(t, nil)
	bus := NewBus()
	w := whStart(t, bus, []WebhookConfig{
		{Event: ".", URL: rcAll.srv.URL},
		{Event: "job.default.web", URL: rcJob.srv.URL},
		{Event: "job.default.web.exit", URL: rcJob.srv.URL}, // same URL twice: once per event
		{Event: "exit", URL: rcExit.srv.URL},
	}, "")
	events := []string{"job.default.web.exit", "job.default.webx.exit", "exit", "job.default.web", "spawn"}
	for _, e := range events {
		bus.Publish(e, nil)
	}
	waitFor(t, 10*time.Second, "deliveries", func() bool {
		var n int64
		for _, s := range w.Stats() {
			n += s.Delivered
		}
		return n == 5+2+1
	})
	names := func(rc *whReceiver) string {
		var s []string
		for _, q := range rc.requests() {
			s = append(s, q.event)
		}
		return strings.Join(s, " ")
	}
	if got := names(rcAll); got != strings.Join(events, " ") {
		t.Errorf("'.' got %q", got)
	}
	if got := names(rcJob); got != "job.default.web.exit job.default.web" {
		t.Errorf("job.default.web got %q", got)
	}
	if got := names(rcExit); got != "exit" {
		t.Errorf("exit got %q", got)
	}
}

func TestWebhookConfigure(t *testing.T) {
	rc1 := whNewReceiver(t, nil)
	rc2 := whNewReceiver(t, nil)
	bus := NewBus()
	w := whStart(t, bus, []WebhookConfig{{Event: "a", URL: rc1.srv.URL}}, "")
	bus.Publish("a", nil)
	waitFor(t, 10*time.Second, "first", func() bool { return len(rc1.requests()) == 1 })
	w.Configure([]WebhookConfig{{Event: "a", URL: rc2.srv.URL}}, "new")
	bus.Publish("a", nil)
	waitFor(t, 10*time.Second, "second", func() bool { return len(rc2.requests()) == 1 })
	if n := len(rc1.requests()); n != 1 {
		t.Fatalf("removed receiver got %d requests", n)
	}
	q := rc2.requests()[0]
	if q.sig != WebhookSignature([]byte("new"), q.body) {
		t.Fatal("new secret not used")
	}
}

func TestWebhookDaemonApp(t *testing.T) {
	rc := whNewReceiver(t, nil)
	m := NewManager(Options{})
	defer m.Shutdown(context.Background())
	d := &Daemon{Manager: m, cfg: &Config{Webhooks: []WebhookConfig{{Event: "load", URL: rc.srv.URL}}, WebhookSecret: "x"}}
	w := &Webhooks{}
	w.whBackoff = []time.Duration{time.Millisecond}
	if err := w.Start(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := m.Load("default", childConfig(t, "w", "sleep", nil), nil, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "load event", func() bool { return len(rc.requests()) == 1 })
	q := rc.requests()[0]
	if q.event != "load" || q.sig != WebhookSignature([]byte("x"), q.body) {
		t.Fatalf("got %+v", q)
	}
	// A reload replaces the config; Restart picks it up.
	rc2 := whNewReceiver(t, nil)
	d.mu.Lock()
	d.cfg = &Config{Webhooks: []WebhookConfig{{Event: "unload", URL: rc2.srv.URL}}}
	w.Restart() // called with the daemon lock held, as Reload does
	d.mu.Unlock()
	waitFor(t, 10*time.Second, "reconfigured", func() bool {
		st := w.Stats()
		return len(st) == 1 && st[0].URL == whSafeURL(rc2.srv.URL)
	})
	if err := m.Unload("default.w"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "unload event", func() bool { return len(rc2.requests()) == 1 })
	if q := rc2.requests()[0]; q.event != "unload" || q.sig != "" {
		t.Fatalf("got %+v", q)
	}
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("old receiver got %d requests", n)
	}
}

func TestWhSafeURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@hooks.example.com/services/T0/B0/XYZ?token=1": "https://hooks.example.com",
		"http://127.0.0.1:8080/x":                                      "http://127.0.0.1:8080",
		"::bad":                                                        "(invalid url)",
	} {
		if got := whSafeURL(in); got != want {
			t.Errorf("whSafeURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWebhookUnusableURLNotRetried(t *testing.T) {
	bus := NewBus()
	w := NewWebhooks(bus, []WebhookConfig{{Event: ".", URL: "http://bad host/"}}, "", slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.whBackoff = []time.Duration{time.Hour} // a retry would hang the test
	if err := w.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	bus.Publish("x", nil)
	waitFor(t, 10*time.Second, "failure", func() bool {
		st := w.Stats()
		return len(st) == 1 && st[0].Failed == 1
	})
}

// TestWebhookStopDrainedDeliversQueued: stopDrained delivers every event
// published before it, in order, then stops; against a receiver that
// keeps failing it gives up at its deadline.
func TestWebhookStopDrainedDeliversQueued(t *testing.T) {
	bus := NewBus()
	rc := whNewReceiver(t, nil)
	w := whStart(t, bus, []WebhookConfig{{Event: ".", URL: rc.srv.URL}}, "")
	const n = 200
	for i := 0; i < n; i++ {
		bus.Publish("spawn", map[string]any{"i": i})
	}
	w.stopDrained(time.Minute)
	reqs := rc.requests()
	if len(reqs) != n {
		t.Fatalf("%d events delivered before stopDrained returned, want %d", len(reqs), n)
	}
	for i, r := range reqs {
		var ev map[string]any
		if json.Unmarshal(r.body, &ev); ev["i"] != float64(i) {
			t.Fatalf("delivery %d carries %s", i, r.body)
		}
	}
	bus.Publish("spawn", map[string]any{"i": n})
	if len(rc.requests()) != n {
		t.Fatal("an event published after stopDrained was delivered")
	}

	failing := whNewReceiver(t, func(int, whReq) int { return 503 })
	w2 := whStart(t, bus, []WebhookConfig{{Event: ".", URL: failing.srv.URL}}, "")
	w2.whBackoff = []time.Duration{time.Hour} // the 2nd attempt never comes
	bus.Publish("spawn", nil)
	waitFor(t, 10*time.Second, "the first attempt", func() bool { return len(failing.requests()) == 1 })
	done := make(chan struct{})
	go func() { w2.stopDrained(100 * time.Millisecond); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("stopDrained did not return at its deadline")
	}
}

// whPanicMarshaler panics when encoded.
type whPanicMarshaler struct{}

func (whPanicMarshaler) MarshalJSON() ([]byte, error) { panic("boom in MarshalJSON") }

// whPanicTransport panics on its first request and then sends as usual.
type whPanicTransport struct {
	mu     sync.Mutex
	panics int
}

func (p *whPanicTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	p.mu.Lock()
	first := p.panics == 0
	p.panics++
	p.mu.Unlock()
	if first {
		panic("boom in RoundTrip")
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestWebhookPanicsAreIsolated: an event whose payload panics when
// encoded, and a delivery that panics, are logged with their stack; the
// webhooks go on delivering the next events.
func TestWebhookPanicsAreIsolated(t *testing.T) {
	bus := NewBus()
	rc := whNewReceiver(t, nil)
	var logs authLogBuffer
	w := NewWebhooks(bus, []WebhookConfig{{Event: ".", URL: rc.srv.URL}}, "", slog.New(slog.NewTextHandler(&logs, nil)))
	w.whTransport = &whPanicTransport{}
	if err := w.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop() })

	bus.Publish("first", nil)                                           // its delivery panics
	bus.Publish("unencodable", map[string]any{"x": whPanicMarshaler{}}) // its routing panics
	bus.Publish("after", nil)
	waitFor(t, 10*time.Second, "the event after the panics", func() bool {
		for _, r := range rc.requests() {
			if r.event == "after" {
				return true
			}
		}
		return false
	})
	out := logs.String()
	for _, want := range []string{"webhook delivery panicked", "boom in RoundTrip", "webhooks: routing an event panicked", "boom in MarshalJSON", "goroutine "} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	var failed int64
	for _, st := range w.Stats() {
		failed += st.Failed
	}
	if failed != 1 || len(rc.requests()) != 1 {
		t.Fatalf("failed %d, requests %d: want the panicked delivery counted failed and only 'after' received", failed, len(rc.requests()))
	}
}
