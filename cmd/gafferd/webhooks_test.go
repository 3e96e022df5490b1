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
	"testing"
	"time"
)

// NEEDS the daemon wiring of webhooks.go (a Webhooks app started by
// Daemon.Run): fails until daemon.go starts it.
func TestWebhookFromConfigRetriedAndSigned(t *testing.T) {
	type hit struct {
		delivery, sig string
		body          []byte
	}
	var mu sync.Mutex
	var hits []hit
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
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
