package gaffer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// edWatch opens GET path on a and returns the SSE events read until stop
// says so (the request is ended then).
func edWatch(t *testing.T, a *apiT, path, lastID string, stop func(sseEvent) bool) []sseEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.srv.URL+path, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := a.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	var out []sseEvent
	readSSE(resp.Body, func(e sseEvent) bool {
		out = append(out, e)
		return stop(e)
	})
	if ctx.Err() != nil {
		t.Fatalf("GET %s: timed out after %v", path, out)
	}
	return out
}

// /watch events carry id: (the bus's sequence number) and a client that
// comes back with Last-Event-ID gets what it missed, once, then the live
// events; a resume point the ring no longer holds gets event: gap.
func TestWatchResumesWithLastEventID(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	bus := a.m.Events()
	// Subscribed once the headers are in: publish from another goroutine
	// when the first request is open.
	before := chBusSubs(a.m)
	go func() {
		for deadline := time.Now().Add(20 * time.Second); chBusSubs(a.m) == before && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		for i := 1; i <= 5; i++ {
			bus.Publish("spawn", map[string]any{"i": i}, "proc.web.spawn")
		}
	}()
	first := edWatch(t, a, "/watch/proc/web?feed=eventsource&heartbeat=0", "", func(e sseEvent) bool {
		return strings.Contains(e.data, `"i":2`)
	})
	if len(first) != 2 || first[0].event != "proc.web.spawn" || first[0].id == "" {
		t.Fatalf("first connection: %+v", first)
	}
	// 3, 4, 5 were published meanwhile; then more, while disconnected.
	waitFor(t, 10*time.Second, "the five events", func() bool { return bus.Published() == 5 })
	bus.Publish("exit", map[string]any{"i": 6}) // does not match proc.web
	bus.Publish("spawn", map[string]any{"i": 7}, "proc.web.spawn")
	again := edWatch(t, a, "/watch/proc/web?feed=eventsource&heartbeat=0", first[1].id, func(e sseEvent) bool {
		return strings.Contains(e.data, `"i":7`)
	})
	var got []string
	for _, e := range again {
		var d map[string]any
		json.Unmarshal([]byte(e.data), &d)
		got = append(got, fmt.Sprintf("%s:%s:%v", e.id, e.event, d["i"]))
	}
	id2, _ := strconv.Atoi(first[1].id)
	want := []string{
		fmt.Sprintf("%d:proc.web.spawn:3", id2+1), fmt.Sprintf("%d:proc.web.spawn:4", id2+2),
		fmt.Sprintf("%d:proc.web.spawn:5", id2+3), fmt.Sprintf("%d:proc.web.spawn:7", id2+5),
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("resumed: %v, want %v", got, want)
	}

	// Longpoll with since= answers the first event after it at once.
	code, h, body := a.do("GET", "/watch/proc/web?feed=longpoll&since="+first[1].id, "")
	if code != 200 || h.Get("X-Gaffer-Seq") != strconv.Itoa(id2+1) || !strings.Contains(string(body), `"i":3`) {
		t.Fatalf("longpoll since: %d %v %s", code, h, body)
	}
	if code, _, body := a.do("GET", "/watch?feed=eventsource", "", "Last-Event-ID", "x"); code != 400 {
		t.Fatalf("bad Last-Event-ID: %d %s", code, body)
	}

	// The ring holds busRingSize events: an older resume point gets a gap.
	for i := 0; i < busRingSize+10; i++ {
		bus.Publish("tick", nil)
	}
	last := bus.Published()
	lost := uint64(last) - busRingSize
	gapped := edWatch(t, a, "/watch?feed=eventsource&heartbeat=0", "1", func(e sseEvent) bool {
		return e.id == strconv.FormatInt(last, 10)
	})
	if gapped[0].event != "gap" || gapped[0].data != fmt.Sprintf(`{"from":2,"to":%d}`, lost) {
		t.Fatalf("gap: %+v", gapped[0])
	}
	if len(gapped) != 1+busRingSize || gapped[1].id != strconv.FormatUint(lost+1, 10) {
		t.Fatalf("after the gap: %d events, first %+v", len(gapped)-1, gapped[1])
	}
}
