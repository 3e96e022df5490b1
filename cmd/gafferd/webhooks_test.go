package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestWebhookFromConfigRetriedAndSigned(t *testing.T) {
	type hit struct {
		delivery, sig string
		body          []byte
	}
	var mu sync.Mutex
	var hits []hit
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"default.fjob"`) {
			// The load of the config's own job, at start-up: not this test's.
			w.WriteHeader(http.StatusNoContent)
			return
		}
		mu.Lock()
		hits = append(hits, hit{r.Header.Get("X-Gaffer-Delivery"), r.Header.Get("X-Gaffer-Signature"), body})
		n := len(hits)
		mu.Unlock()
		if n <= 2 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	dir, script := stSetup(t)
	cfg, err := os.ReadFile(filepath.Join(dir, "gaffer.ini"))
	if err != nil {
		t.Fatal(err)
	}
	const secret = "hook-secret-123"
	cfg = append(cfg, []byte("[webhooks]\nsecret = "+secret+"\nload = "+srv.URL+"/in\n")...)
	if err := os.WriteFile(filepath.Join(dir, "gaffer.ini"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	g := stStart(t, dir)
	g.must("POST", "/jobs/hooked", fmt.Sprintf(`{"name": "w", "cmd": %q, "start": false}`, script))
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(hits)
	}
	g.waitFor(30*time.Second, "the third attempt", func() bool { return count() >= 3 })
	mu.Lock()
	got := append([]hit(nil), hits...)
	mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3", len(got))
	}
	if got[0].delivery == "" || got[1].delivery != got[0].delivery || got[2].delivery != got[0].delivery {
		t.Fatalf("delivery ids %q %q %q: want one delivery retried", got[0].delivery, got[1].delivery, got[2].delivery)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(got[2].body)
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(got[2].sig), []byte(want)) {
		t.Fatalf("signature %q, want %q", got[2].sig, want)
	}
	var ev map[string]any
	if err := json.Unmarshal(got[2].body, &ev); err != nil || ev["event"] != "load" || ev["name"] != "hooked.w" {
		t.Fatalf("payload %s (%v)", got[2].body, err)
	}
	// Delivered once: the next event is the next request (deliveries to
	// a URL are in order, so a 4th attempt of the first would come first).
	g.must("POST", "/jobs/hooked", fmt.Sprintf(`{"name": "w2", "cmd": %q, "start": false}`, script))
	g.waitFor(30*time.Second, "the second event", func() bool { return count() >= 4 })
	mu.Lock()
	fourth := hits[3]
	mu.Unlock()
	if fourth.delivery == got[0].delivery || !strings.Contains(string(fourth.body), "hooked.w2") {
		t.Fatalf("4th request is %s (delivery %s): the first event was delivered again", fourth.body, fourth.delivery)
	}
	if strings.Contains(g.output(), secret) {
		t.Fatal("the webhook secret appears in gafferd's output")
	}
}

// whReceiver records the events POSTed to it, in arrival order; block,
// when set, makes it never answer.
type whReceiver struct {
	mu     sync.Mutex
	events []string // "<event> <name>"
	srv    *httptest.Server
}

func newWhReceiver(t *testing.T, block bool) *whReceiver {
	rc := &whReceiver{}
	stop := make(chan struct{})
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev map[string]any
		json.Unmarshal(body, &ev)
		rc.mu.Lock()
		rc.events = append(rc.events, fmt.Sprintf("%v %v", ev["event"], ev["name"]))
		rc.mu.Unlock()
		if block {
			select {
			case <-stop:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(func() { close(stop); rc.srv.Close() })
	return rc
}

func (rc *whReceiver) seen() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.events...)
}

func (rc *whReceiver) has(event string) bool {
	for _, e := range rc.seen() {
		if e == event {
			return true
		}
	}
	return false
}

// whConfig adds a [webhooks] section sending the lifecycle events of the
// config's jobs to url.
func whConfig(t *testing.T, dir, url string) {
	t.Helper()
	path := filepath.Join(dir, "gaffer.ini")
	cfg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, []byte("[webhooks]\nload = "+url+"\nspawn = "+url+"\nstop = "+url+"\nexit = "+url+"\n")...)
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWebhooksSeeStartupAndShutdown: the webhooks are subscribed before
// the configuration's jobs load, so their load and spawn reach the
// receiver; and gafferd delivers the stop and exit events of its own
// shutdown before it exits.
func TestWebhooksSeeStartupAndShutdown(t *testing.T) {
	rc := newWhReceiver(t, false)
	dir, _ := stSetup(t)
	whConfig(t, dir, rc.srv.URL+"/hook")
	g := stStart(t, dir)
	g.waitFor(20*time.Second, "the config job's load and spawn at the receiver", func() bool {
		return rc.has("load default.fjob") && rc.has("spawn default.fjob")
	})
	g.stop(syscall.SIGTERM)
	// gafferd has exited: whatever it delivered is already recorded.
	got := rc.seen()
	for _, want := range []string{"stop default.fjob", "exit default.fjob"} {
		if !rc.has(want) {
			t.Fatalf("gafferd exited without delivering %q; the receiver got %q", want, got)
		}
	}
	if got[0] != "load default.fjob" {
		t.Fatalf("first event %q, want the load of the config's job (all: %q)", got[0], got)
	}
}

// TestWebhooksDrainIsBounded: a receiver that never answers does not keep
// a stopping gafferd alive: the queues are drained for a few seconds, then
// what is left is logged as undelivered.
func TestWebhooksDrainIsBounded(t *testing.T) {
	rc := newWhReceiver(t, true)
	dir, _ := stSetup(t)
	whConfig(t, dir, rc.srv.URL+"/hook")
	g := stStart(t, dir)
	g.waitFor(20*time.Second, "the first delivery attempt", func() bool { return len(rc.seen()) > 0 })
	began := time.Now()
	g.stop(syscall.SIGTERM) // fails the test after 30 s
	t.Logf("gafferd stopped %s after SIGTERM with a receiver that never answers", time.Since(began).Round(time.Millisecond))
	if !strings.Contains(g.output(), "undelivered") {
		t.Fatalf("no log line about the undelivered events:\n%s", g.output())
	}
}
