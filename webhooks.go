package gaffer

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"sync"
	"time"
)

// Webhook delivery defaults.
const (
	// WebhookQueueSize bounds the events waiting for one URL; when it is
	// full the oldest waiting event is dropped (and counted).
	WebhookQueueSize = 1000
	// WebhookTimeout bounds one delivery attempt (connect, send, response).
	WebhookTimeout = 10 * time.Second
	// WebhookAttempts is the number of tries of one delivery.
	WebhookAttempts = 5
)

// whDefaultBackoff is the wait before the 2nd, 3rd… attempt.
var whDefaultBackoff = []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}

// whDrainTimeout bounds how long a stopping gafferd waits for the
// webhook queues to be delivered (the shutdown's own stop and exit
// events among them).
const whDrainTimeout = 5 * time.Second

// whBusQueue is the size of the webhooks' bus subscription; the dispatcher
// only copies events into the per-URL queues, so it never falls that far
// behind.
const whBusQueue = 16384

// Webhooks POSTs manager events to HTTP receivers ([webhooks] event = url).
//
// A hook's event is matched as on the bus (reference §7.2), which extends
// 0.5.2: "." receives every event, an exact name receives that event, and a
// name also receives the events below it ("job.default.web" receives
// "job.default.web.exit"). Every name of an event counts, its aliases
// included ("proc.dummy.spawn" receives the spawns of default.dummy). A URL
// receives each event once, however many of its hooks match, under the
// name its most specific matching hook matched, as a bus subscription
// with those hooks as patterns would see it (Bus): that name is the
// payload's "event" and the X-Gaffer-Event header.
//
// Each URL has its own worker and a bounded queue (WebhookQueueSize, the
// oldest waiting event is dropped on overflow): deliveries to one URL are
// made in event order, one at a time, and a slow or dead receiver never
// blocks the manager, the other URLs, or grows memory past its queue.
//
// A delivery is an HTTP POST of the event payload as JSON with the headers
// Content-Type: application/json, X-Gaffer-Event (the event name),
// X-Gaffer-Delivery (an id that stays the same across the retries of one
// delivery) and, when a secret is set, X-Gaffer-Signature:
// sha256=<hex HMAC-SHA256 of the body keyed by the secret>. A 2xx answer is
// a success. Connection errors, timeouts (WebhookTimeout per attempt), 5xx,
// 408 and 429 are retried up to WebhookAttempts tries in all, waiting 0.5 s,
// 1 s, 2 s, then 4 s; other answers (3xx, 4xx) are failures that are not
// retried. Redirects are not followed. Failures are logged; the secret and
// the URL's path, query and credentials never are.
//
// Webhooks is a daemon App (its zero value reads [webhooks] from the
// daemon's configuration and follows reloads) or, built with NewWebhooks,
// works on any Bus.
type Webhooks struct {
	// Set before Start; tests shorten them.
	whBackoff   []time.Duration
	whQueueSize int
	whTimeout   time.Duration
	whTransport http.RoundTripper // nil: a clone of http.DefaultTransport

	mu       sync.Mutex
	bus      *Bus
	hooks    []WebhookConfig
	secret   []byte
	log      *slog.Logger
	client   *http.Client
	targets  map[string]*whTarget
	sub      *Subscription
	ctx      context.Context
	cancel   context.CancelFunc
	started  bool
	stopped  bool
	draining bool          // stopDrained: no new subscription after an overflow
	routed   chan struct{} // closed when the dispatcher has ended
	progress chan struct{} // a delivery ended (for stopDrained)
	wg       sync.WaitGroup
	d        *Daemon
	restarts sync.Mutex // serialises Restart's re-reads of the daemon config
}

// whTarget is one receiver URL: its patterns, its queue and its worker.
type whTarget struct {
	url      string
	safeURL  string // for logs: scheme://host only
	patterns evPatterns
	cancel   context.CancelFunc

	mu        sync.Mutex
	queue     []whItem // waiting events, oldest first
	wake      chan struct{}
	busy      bool // a delivery is in progress
	delivered int64
	failed    int64
	dropped   int64
}

type whItem struct {
	name string
	body []byte
	id   string
}

// WebhookStats counts the deliveries of one receiver URL (shown without
// its path, query and credentials).
type WebhookStats struct {
	URL       string `json:"url"`
	Queued    int    `json:"queued"`    // waiting in the queue
	InFlight  bool   `json:"in_flight"` // a delivery is being attempted
	Delivered int64  `json:"delivered"` // answered 2xx
	Failed    int64  `json:"failed"`    // given up after the attempts, or refused
	Dropped   int64  `json:"dropped"`   // pushed out of a full queue
}

// NewWebhooks returns webhooks delivering the events of bus to hooks,
// signed with secret when it is not empty. Call Start(ctx, nil) to begin.
// logger nil means slog.Default().
func NewWebhooks(bus *Bus, hooks []WebhookConfig, secret string, logger *slog.Logger) *Webhooks {
	return &Webhooks{bus: bus, hooks: append([]WebhookConfig(nil), hooks...), secret: []byte(secret), log: logger}
}

// Start begins delivering. With a Daemon, the bus, the hooks and the
// secret come from it (d.Manager, [webhooks]); with d nil, from
// NewWebhooks. Start may be called once.
func (w *Webhooks) Start(ctx context.Context, d *Daemon) error {
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return errors.New("webhooks: already started")
	}
	if d != nil {
		w.d = d
		if d.Manager == nil {
			w.mu.Unlock()
			return errors.New("webhooks: the daemon has no manager")
		}
		w.bus = d.Manager.Events()
		if cfg := d.Config(); cfg != nil {
			w.hooks = append([]WebhookConfig(nil), cfg.Webhooks...)
			w.secret = []byte(cfg.WebhookSecret)
		}
		if w.log == nil {
			w.log = d.log
		}
	}
	if w.bus == nil {
		w.mu.Unlock()
		return errors.New("webhooks: no event bus")
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	if w.whBackoff == nil {
		w.whBackoff = whDefaultBackoff
	}
	if w.whQueueSize <= 0 {
		w.whQueueSize = WebhookQueueSize
	}
	if w.whTimeout <= 0 {
		w.whTimeout = WebhookTimeout
	}
	if ctx == nil {
		ctx = context.Background()
	}
	// The webhooks live until Stop, not until the start context ends.
	w.ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	transport := w.whTransport
	if transport == nil {
		transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	w.client = &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	w.targets = map[string]*whTarget{}
	w.routed = make(chan struct{})
	w.progress = make(chan struct{}, 1)
	w.started = true
	w.applyLocked()
	w.sub = w.bus.Subscribe(whBusQueue)
	sub := w.sub
	w.wg.Add(1)
	w.mu.Unlock()
	go w.dispatch(sub)
	return nil
}

// Configure replaces the hooks and the secret. Receivers that stay keep
// their queue and their order; receivers that go lose what waits for them.
func (w *Webhooks) Configure(hooks []WebhookConfig, secret string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hooks = append([]WebhookConfig(nil), hooks...)
	w.secret = []byte(secret)
	if w.started && !w.stopped {
		w.applyLocked()
	}
}

// Restart re-reads [webhooks] from the daemon's configuration (after a
// reload). The daemon calls it while it holds its own lock, so the
// re-read happens on another goroutine once that lock is released.
func (w *Webhooks) Restart() error {
	w.mu.Lock()
	d := w.d
	ok := w.started && !w.stopped
	if ok && d != nil {
		w.wg.Add(1)
	}
	w.mu.Unlock()
	if !ok || d == nil {
		return nil
	}
	go func() {
		defer w.wg.Done()
		w.restarts.Lock()
		defer w.restarts.Unlock()
		cfg := d.Config()
		if cfg != nil {
			w.Configure(cfg.Webhooks, cfg.WebhookSecret)
		}
	}()
	return nil
}

// Stop ends the deliveries: attempts in progress are cancelled and
// waiting events are dropped. It waits for the workers to end.
func (w *Webhooks) Stop() error {
	w.mu.Lock()
	if !w.started || w.stopped {
		w.mu.Unlock()
		return nil
	}
	w.stopped = true
	w.cancel()
	sub := w.sub
	pending := 0
	for _, t := range w.targets {
		t.mu.Lock()
		pending += len(t.queue)
		t.mu.Unlock()
	}
	w.mu.Unlock()
	sub.Unsubscribe()
	w.wg.Wait()
	if pending > 0 {
		w.log.Warn("webhooks stopped with undelivered events", "events", pending)
	}
	return nil
}

// stopDrained stops like Stop, after delivering what is queued: it stops
// taking events from the bus, routes those the subscription still holds,
// and waits until no event waits and no delivery is in progress, or until
// timeout has passed.
func (w *Webhooks) stopDrained(timeout time.Duration) {
	w.mu.Lock()
	if !w.started || w.stopped || w.draining {
		w.mu.Unlock()
		w.Stop()
		return
	}
	w.draining = true
	sub := w.sub
	w.mu.Unlock()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	// Events published until now are in the subscription's queue: closing
	// it keeps them for the dispatcher, which routes them and ends.
	sub.Unsubscribe()
	select {
	case <-w.routed:
	case <-deadline.C:
		w.Stop()
		return
	}
	for !w.idle() {
		select {
		case <-w.progress:
		case <-deadline.C:
			w.Stop()
			return
		}
	}
	w.Stop()
}

// idle reports whether no event waits and no delivery is in progress.
func (w *Webhooks) idle() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range w.targets {
		t.mu.Lock()
		busy := len(t.queue) > 0 || t.busy
		t.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}

// Stats returns the counters of every receiver URL, in no given order.
func (w *Webhooks) Stats() []WebhookStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]WebhookStats, 0, len(w.targets))
	for _, t := range w.targets {
		t.mu.Lock()
		out = append(out, WebhookStats{URL: t.safeURL, Queued: len(t.queue), InFlight: t.busy,
			Delivered: t.delivered, Failed: t.failed, Dropped: t.dropped})
		t.mu.Unlock()
	}
	return out
}

// applyLocked turns w.hooks into targets: one per URL, with every pattern
// that names it.
func (w *Webhooks) applyLocked() {
	want := map[string][]string{}
	var order []string
	for _, h := range w.hooks {
		if h.URL == "" {
			continue
		}
		if _, ok := want[h.URL]; !ok {
			order = append(order, h.URL)
		}
		want[h.URL] = append(want[h.URL], NormalizePattern(h.Event))
	}
	for u, t := range w.targets {
		if _, ok := want[u]; !ok {
			t.cancel()
			delete(w.targets, u)
		}
	}
	for _, u := range order {
		if t, ok := w.targets[u]; ok {
			t.patterns = newEvPatterns(want[u])
			continue
		}
		ctx, cancel := context.WithCancel(w.ctx)
		t := &whTarget{url: u, safeURL: whSafeURL(u), patterns: newEvPatterns(want[u]), cancel: cancel, wake: make(chan struct{}, 1)}
		w.targets[u] = t
		w.wg.Add(1)
		go w.worker(ctx, t)
	}
}

// whSafeURL is what the logs show of a URL: scheme and host, since paths
// and queries often carry tokens.
func whSafeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid url)"
	}
	return u.Scheme + "://" + u.Host
}

// dispatch copies each event into the queues of the URLs it matches. It
// never waits on the network. When the bus cuts the subscription off it
// subscribes again and logs the loss.
func (w *Webhooks) dispatch(sub *Subscription) {
	defer w.wg.Done()
	defer close(w.routed)
	for {
		ev, ok := <-sub.C
		if !ok {
			if !sub.Overflowed() {
				return
			}
			w.mu.Lock()
			if w.stopped || w.draining {
				w.mu.Unlock()
				return
			}
			w.log.Error("webhooks fell behind the event bus; some events were not delivered")
			sub = w.bus.Subscribe(whBusQueue)
			w.sub = sub
			w.mu.Unlock()
			continue
		}
		w.routeSafe(ev)
	}
}

// routeSafe routes one event; a panic (an event payload that cannot be
// encoded, say) is logged with its stack and the event skipped.
func (w *Webhooks) routeSafe(ev Event) {
	defer func() {
		if v := recover(); v != nil {
			logRecovered(w.log, "webhooks: routing an event", v, "event", ev.Name)
		}
	}()
	w.route(ev)
}

// logRecovered logs a recovered panic with the stack of the goroutine
// that panicked (call it from the deferred function that recovered).
func logRecovered(log *slog.Logger, what string, v any, args ...any) {
	log.Error(what+" panicked; recovered", append([]any{"panic", fmt.Sprint(v), "stack", string(debug.Stack())}, args...)...)
}

func (w *Webhooks) route(ev Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	names := ev.names
	if len(names) == 0 {
		names = []string{ev.Name}
		ev.names = names
	}
	// The body as seen under each name, encoded once per name used.
	bodies := make([][]byte, len(names))
	for _, t := range w.targets {
		k := t.patterns.pick(names)
		if k < 0 {
			continue
		}
		if bodies[k] == nil {
			b, err := json.Marshal(ev.as(k).Data)
			if err != nil {
				w.log.Error("webhooks: cannot encode event", "event", names[k], "err", err)
				return
			}
			bodies[k] = b
		}
		w.enqueue(t, whItem{name: names[k], body: bodies[k], id: whDeliveryID()})
	}
}

func (w *Webhooks) enqueue(t *whTarget, it whItem) {
	t.mu.Lock()
	if len(t.queue) >= w.whQueueSize {
		n := len(t.queue) - w.whQueueSize + 1
		// Copy down so that the backing array does not grow.
		copy(t.queue, t.queue[n:])
		t.queue = t.queue[:len(t.queue)-n]
		t.dropped += int64(n)
		if t.dropped == int64(n) || t.dropped%1000 == 0 {
			w.log.Warn("webhook receiver is behind; oldest events dropped", "url", t.safeURL, "dropped", t.dropped)
		}
	}
	t.queue = append(t.queue, it)
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// worker delivers the queue of one URL in order.
func (w *Webhooks) worker(ctx context.Context, t *whTarget) {
	defer w.wg.Done()
	for {
		t.mu.Lock()
		if len(t.queue) == 0 {
			t.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.wake:
				continue
			}
		}
		it := t.queue[0]
		copy(t.queue, t.queue[1:])
		t.queue[len(t.queue)-1] = whItem{}
		t.queue = t.queue[:len(t.queue)-1]
		t.busy = true
		t.mu.Unlock()

		ok := w.deliverSafe(ctx, t, it)

		t.mu.Lock()
		t.busy = false
		if ok {
			t.delivered++
		} else {
			t.failed++
		}
		t.mu.Unlock()
		select {
		case w.progress <- struct{}{}:
		default:
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// deliverSafe is deliver; a panic is logged with its stack and counted as
// a failed delivery, and the worker goes on with the next event.
func (w *Webhooks) deliverSafe(ctx context.Context, t *whTarget, it whItem) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			logRecovered(w.log, "webhook delivery", v, "url", t.safeURL, "event", it.name)
			ok = false
		}
	}()
	return w.deliver(ctx, t, it)
}

// deliver makes up to WebhookAttempts attempts; it reports success.
func (w *Webhooks) deliver(ctx context.Context, t *whTarget, it whItem) bool {
	w.mu.Lock()
	secret := w.secret
	backoff := w.whBackoff
	w.mu.Unlock()
	var sig string
	if len(secret) > 0 {
		sig = WebhookSignature(secret, it.body)
	}
	var last string
	for attempt := 1; attempt <= WebhookAttempts; attempt++ {
		if attempt > 1 {
			d := backoff[len(backoff)-1]
			if attempt-2 < len(backoff) {
				d = backoff[attempt-2]
			}
			timer := time.NewTimer(d)
			select {
			case <-ctx.Done():
				timer.Stop()
				return false
			case <-timer.C:
			}
		}
		status, err := w.post(ctx, t.url, it, sig)
		var bad *whBadRequest
		if errors.As(err, &bad) {
			w.log.Error("webhook URL unusable", "url", t.safeURL, "event", it.name, "err", bad.err)
			return false
		}
		switch {
		case err == nil && status >= 200 && status < 300:
			return true
		case ctx.Err() != nil:
			return false
		case err != nil:
			last = err.Error()
		case status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests:
			last = fmt.Sprintf("HTTP status %d", status)
		default:
			w.log.Error("webhook refused", "url", t.safeURL, "event", it.name, "status", status)
			return false
		}
	}
	w.log.Error("webhook delivery failed", "url", t.safeURL, "event", it.name, "attempts", WebhookAttempts, "err", last)
	return false
}

// post makes one attempt and returns the HTTP status.
func (w *Webhooks) post(ctx context.Context, u string, it whItem, sig string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, w.whTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(it.body))
	if err != nil {
		return 0, &whBadRequest{whCleanErr(err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gaffer/"+Version)
	req.Header.Set("X-Gaffer-Event", it.name)
	req.Header.Set("X-Gaffer-Delivery", it.id)
	if sig != "" {
		req.Header.Set("X-Gaffer-Signature", sig)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, whCleanErr(err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// whBadRequest is a request that cannot be made at all: not retried.
type whBadRequest struct{ err error }

func (e *whBadRequest) Error() string { return e.err.Error() }

// whCleanErr drops the URL from a client error (it may hold a token).
func whCleanErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// WebhookSignature returns the X-Gaffer-Signature value of body:
// "sha256=" and the hex HMAC-SHA256 of body keyed by secret. A receiver
// recomputes it over the raw body and compares with hmac.Equal.
func WebhookSignature(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func whDeliveryID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var _ App = (*Webhooks)(nil)
