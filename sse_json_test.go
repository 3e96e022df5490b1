package gaffer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Every chunk carries the time gafferd read it from the pipe, whichever
// way it leaves the ring: a reader, the backlog, a subscription.
func TestStreamChunksCarryTheirCaptureTime(t *testing.T) {
	s := NewStream("out", 1<<10)
	old := time.Date(2020, 1, 2, 3, 4, 5, 678000000, time.UTC)
	_, _, sub := s.Subscribe(0, false, 4)
	defer sub.Close()
	before := time.Now()
	s.Write([]byte("now\n"))
	after := time.Now()
	s.write([]byte("then\n"), old)
	rd := s.reader(0, true)
	defer rd.Close()
	b := rd.read()
	chunks, _ := s.Backlog(0)
	pushed := []Chunk{<-sub.C, <-sub.C}
	for what, got := range map[string][]Chunk{"reader": b.chunks, "backlog": chunks, "subscription": pushed} {
		if len(got) != 2 {
			t.Fatalf("%s: %d chunks", what, len(got))
		}
		if c := got[0].Time; c.Before(before.Truncate(0)) || c.After(after) {
			t.Errorf("%s: chunk 1 captured at %v, written between %v and %v", what, c, before, after)
		}
		if !got[1].Time.Equal(old) {
			t.Errorf("%s: chunk 2 captured at %v, want %v", what, got[1].Time, old)
		}
	}
	b.release()
}

// feedJSON is one chunk of a format=json feed.
type feedJSON struct {
	Label string `json:"label"`
	Seq   uint64 `json:"seq"`
	Time  string `json:"time"`
	Data  string `json:"data"`
}

// With ?format=json the feeds send each chunk as {"label", "seq", "time",
// "data"}: "chunk" events whose id is the sequence number (eventsource),
// or NDJSON lines (continuous); X-Gaffer-Last-Seq says which chunks were
// in the ring when the feed opened.
func TestStreamFeedJSONCarriesCaptureTimes(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	loadLines(t, a, "ct", 1, 4096)
	before := time.Now()
	pid := startAndPid(t, a, "ct")
	p, _ := a.m.Process(mustAtoi(t, pid))
	st, _ := p.Stream("stdout")
	waitFor(t, 10*time.Second, "the line", func() bool { return st.LastSeq() == 1 })
	after := time.Now()
	old := time.Date(2020, 1, 2, 3, 4, 5, 678000000, time.UTC)
	st.write([]byte("an \"old\" line\r\n"), old)

	check := func(what string, got []feedJSON) {
		t.Helper()
		if len(got) != 2 {
			t.Fatalf("%s: %d chunks: %+v", what, len(got), got)
		}
		first, err := time.Parse(time.RFC3339Nano, got[0].Time)
		if err != nil || got[0].Label != "stdout" || got[0].Seq != 1 || got[0].Data != "00000001 line\n" ||
			first.Before(before.Truncate(time.Millisecond)) || first.After(after) {
			t.Errorf("%s: first chunk %+v (%v), printed between %v and %v", what, got[0], err, before, after)
		}
		if want := (feedJSON{"stdout", 2, "2020-01-02T03:04:05.678Z", "an \"old\" line\r\n"}); got[1] != want {
			t.Errorf("%s: second chunk %+v, want %+v", what, got[1], want)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", a.srv.URL+"/streams/"+pid+"/stdout?feed=eventsource&since=0&format=json&heartbeat=0", nil)
	resp, err := a.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if h := resp.Header.Get("X-Gaffer-Last-Seq"); h != "2" {
		t.Errorf("X-Gaffer-Last-Seq: %q", h)
	}
	var got []feedJSON
	readSSE(resp.Body, func(ev sseEvent) bool {
		var c feedJSON
		if ev.event != "chunk" || json.Unmarshal([]byte(ev.data), &c) != nil || ev.id != strconv.FormatUint(c.Seq, 10) {
			t.Errorf("event %+v", ev)
		}
		got = append(got, c)
		return len(got) == 2
	})
	resp.Body.Close()
	check("eventsource", got)

	req, _ = http.NewRequestWithContext(ctx, "GET", a.srv.URL+"/streams/"+pid+"/stdout?feed=continuous&since=0&format=json&heartbeat=0", nil)
	resp, err = a.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("continuous JSON content type %q", ct)
	}
	got = nil
	sc := bufio.NewScanner(resp.Body)
	for len(got) < 2 && sc.Scan() {
		var c feedJSON
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("NDJSON line %q: %v", sc.Text(), err)
		}
		got = append(got, c)
	}
	resp.Body.Close()
	check("continuous", got)

	// A gap on a resume point the ring no longer holds.
	for range 100 {
		st.Write([]byte(strings.Repeat("x", 100) + "\n"))
	}
	req, _ = http.NewRequestWithContext(ctx, "GET", a.srv.URL+"/streams/"+pid+"/stdout?feed=continuous&since=0&format=json&heartbeat=0", nil)
	resp, err = a.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc = bufio.NewScanner(resp.Body)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), `{"event":"gap","from":1,"to":`) {
		t.Errorf("first NDJSON line after the ring wrapped: %q", sc.Text())
	}
	resp.Body.Close()

	a.json("GET", "/streams/"+pid+"/stdout?feed=longpoll&format=json", "", 400)
	a.json("GET", "/streams/"+pid+"/stdout?feed=eventsource&format=xml", "", 400)
}

// /watch events carry the time they were published.
func TestWatchEventsCarryTheirTime(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	before := time.Now()
	a.m.Events().Publish("spawn", map[string]any{"name": "default.x", "pid": 7})
	a.m.Events().Publish("spawn", map[string]any{})
	after := time.Now()
	evs := edWatch(t, a, "/watch/spawn?feed=eventsource&heartbeat=0", "0", func(e sseEvent) bool { return e.id == "2" })
	for _, e := range evs {
		var d map[string]any
		if err := json.Unmarshal([]byte(e.data), &d); err != nil {
			t.Fatalf("event %+v: %v", e, err)
		}
		ts, _ := d["time"].(string)
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || at.Before(before.Truncate(time.Millisecond)) || at.After(after) {
			t.Errorf("event %+v: time %q, published between %v and %v", e, ts, before, after)
		}
	}
	if len(evs) != 2 || !strings.HasPrefix(evs[0].data, `{"event":"spawn","name":"default.x","pid":7,"time":"`) || !strings.HasPrefix(evs[1].data, `{"event":"spawn","time":"`) {
		t.Errorf("events %+v", evs)
	}
}

// A chunk sent as JSON is encoded and written out piece by piece: a
// chunk of control bytes, six times its size once escaped, does not grow
// the feed's buffer (what a client that does not read holds) beyond one
// piece, and the pieces are the chunk's JSON object byte for byte.
func TestFeedJSONChunkStaysOnePiece(t *testing.T) {
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(i % 32) // all escaped as \u00XX or \n, \t…
	}
	copy(data[1000:], "caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80 \xff\xc3")
	for _, sse := range []bool{false, true} {
		rec := httptest.NewRecorder()
		o := &feedOut{f: newFeed(rec, "application/x-ndjson")}
		at := time.Date(2026, 12, 2, 19, 0, 0, 0, time.UTC)
		prefix := []byte(`{"label":"out","seq":`)
		o.chunkJSON(prefix, Chunk{Seq: 3, Data: data, Time: at}, sse)
		held := cap(o.buf.b)
		o.flush()
		o.release()
		if held > feedPiece {
			t.Errorf("sse=%v: the buffer grew to %d bytes for one chunk (one piece is %d)", sse, held, feedPiece)
		}
		js, _ := json.Marshal(string(data))
		want := `{"label":"out","seq":3,"time":"2026-12-02T19:00:00.000Z","data":` + string(js) + "}\n"
		if sse {
			want = "event: chunk\nid: 3\ndata: " + want + "\n"
		}
		if got := rec.Body.String(); got != want {
			t.Errorf("sse=%v: %d bytes written, want %d (first difference at %d)", sse, len(got), len(want), firstDiff(got, want))
		}
	}
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// FuzzJSONPieces: a string cut by jsonCut (as chunkJSON does) and encoded
// part by part is what encoding/json writes for the whole.
func FuzzJSONPieces(f *testing.F) {
	for _, s := range []string{"", "y\n", "caf\xc3\xa9", "\xf0\x9f\x98\x80\xf0\x9f\x98\x80", "\xff\xfe\xc3\xa9\xc3",
		"\xe2\x80\xa8\xe2\x80", "\x80\x80\x80\x80\x80", "\xc3\x80\x80\x80\x80\xed\xa0\x80"} {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(5))
	}
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		want, _ := json.Marshal(string(data))
		got := []byte{'"'}
		for rest := data; len(rest) > 0; {
			k := jsonCut(rest, int(n))
			if k <= 0 || k > len(rest) || k > max(int(n), utf8.UTFMax) {
				t.Fatalf("jsonCut(%q, %d) = %d", rest, n, k)
			}
			got = appendJSONChars(got, rest[:k])
			rest = rest[k:]
		}
		got = append(got, '"')
		if !bytes.Equal(got, want) {
			t.Fatalf("%q cut at %d: got %s, want %s", data, n, got, want)
		}
	})
}
