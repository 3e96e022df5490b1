package gaffer

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestChannelStreamAndStats(t *testing.T) {
	e := chNewEnv(t, false)
	pid := e.load(t, "Echo", "echo", func(c *JobConfig) {
		c.RedirectInput = true
		c.RedirectOutput = []string{"out", "err"}
	})
	c := chDial(t, e.url, nil)
	topic := "STREAM:" + strconv.Itoa(pid)
	c.sub(topic)
	c.sub(topic + ".err") // a named stream: nothing comes on it
	before := time.Now()
	e.m.Send(pid, []byte("hi there\n"), "")
	d := c.until("output", chEventOf(topic, ""))["data"].(map[string]any)
	after := time.Now()
	if d["event"] != "out" || d["data"] != "hi there\n" || d["pid"] != float64(pid) || d["name"] != "default.Echo" {
		t.Errorf("stream event: %v", d)
	}
	// With its capture time (RFC 3339, milliseconds).
	ts, _ := d["time"].(string)
	if at, err := time.Parse(time.RFC3339Nano, ts); err != nil || at.Before(before.Truncate(time.Millisecond)) || at.After(after) || len(ts) != len("2006-01-02T15:04:05.000Z") {
		t.Errorf("stream event time %q (%v), output sent between %v and %v", ts, err, before, after)
	}

	// Stats for a pid, and for a job (job names keep their case), which
	// follows processes spawned later.
	st := "STATS:" + strconv.Itoa(pid)
	c.sub(st)
	s := c.until("stat", chEventOf(st, "stat"))["data"].(map[string]any)
	for _, k := range []string{"mem_info1", "mem_info2", "cpu", "mem", "ctime", "pid", "os_pid"} {
		if _, ok := s[k]; !ok {
			t.Errorf("stat without %s: %v", k, s)
		}
	}
	c.unsub(st)
	if m := c.sub("STATS:default.Echo?interval=0.1"); m["event"] != "gaffer:subscription_success" {
		t.Fatalf("SUB job stats: %v", m)
	}
	e.m.Scale("default.Echo", ScaleOp{Value: 1})
	pids, _ := e.m.Pids("default.Echo")
	c.until("stat of the new process", func(m map[string]any) bool {
		d, _ := m["data"].(map[string]any)
		return chEventOf("STATS:default.Echo?interval=0.1", "stat")(m) && d["pid"] == float64(pids[1])
	})
	if m := c.sub("STATS:default.Echo?interval=x"); chSubReason(t, m) != "invalid_topic" {
		t.Errorf("bad interval: %v", m)
	}
}

// TestChannelSlowClient: a STREAM subscriber that stops reading is not
// queued for (its connection holds at most two batches; what is kept for
// it beyond the ring stays within the budget and goes once it counts as
// stalled) nor cut off: when it reads again it gets a gap marker for what
// the ring lost, then every chunk to the last, in order.
func TestChannelSlowClient(t *testing.T) {
	defer func(n int, b int64) { chQueueLen, chQueueBytes = n, b }(chQueueLen, chQueueBytes)
	chQueueLen, chQueueBytes = 64, 256<<10
	defer readerStall.Store(readerStall.Load())
	readerStall.Store(int64(200 * time.Millisecond))
	e := chNewEnv(t, false)
	pid := e.load(t, "flood", "sleep", func(c *JobConfig) {
		c.RedirectOutput = []string{"out"}
		c.RingSize = 1 << 10
	})
	p, _ := e.m.Process(pid)
	st, _ := p.Stream("")

	// A client that subscribes and then does not read.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ws, _, err := WSDial(ctx, e.url+"/channel/websocket", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.WriteJSON(map[string]any{"event": "SUB", "data": map[string]any{"topic": "STREAM:" + strconv.Itoa(pid)}})
	waitFor(t, 5*time.Second, "subscribed", func() bool { return chStreamSubs(st) == 1 })

	// Flood the stream the way the pipe reader does (64 MB): it never
	// waits for the client.
	chunk := []byte(strings.Repeat("x", 32<<10) + "\n")
	const n = 2000
	base := subscriberMemory.used.Load()
	var peak int64
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for i := 0; i < n; i++ {
			st.Write(chunk)
		}
	}()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for done := false; !done; {
		select {
		case <-wrote:
			done = true
		case <-tick.C:
		case <-deadline:
			t.Fatal("writing to the stream blocked")
		}
		peak = max(peak, subscriberMemory.used.Load()-base)
	}
	// What is kept for it (until it counts as stalled) stays within the
	// budget, and is let go once it is.
	if limit := subscriberMemory.limit.Load(); peak > limit {
		t.Errorf("the relay of a client that does not read held %d bytes (budget %d)", peak, limit)
	}
	waitFor(t, 30*time.Second, "the memory kept for the stalled client to go", func() bool {
		return subscriberMemory.used.Load()-base < 1<<20
	})
	if chStreamSubs(st) != 1 {
		t.Fatal("the slow client was cut off")
	}
	// It reads again: the oldest chunks it gets are those in flight, then
	// a gap, then the ring's tail, up to the last chunk.
	var next uint64
	gaps := 0
	for next <= n {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("after chunk %d: %v", next-1, err)
		}
		var m struct {
			Event string
			Data  struct {
				Event, Data   string
				Seq, From, To uint64
			}
		}
		if json.Unmarshal(msg, &m) != nil || m.Event != "gaffer:event" {
			continue
		}
		switch {
		case m.Data.Event == "gap":
			if next != 0 && m.Data.From != next || m.Data.To < m.Data.From {
				t.Fatalf("gap %d-%d after chunk %d", m.Data.From, m.Data.To, next-1)
			}
			gaps++
			next = m.Data.To + 1
		case next != 0 && m.Data.Seq != next:
			t.Fatalf("chunk %d after %d without a gap", m.Data.Seq, next-1)
		case m.Data.Data != string(chunk):
			t.Fatalf("chunk %d: %d bytes", m.Data.Seq, len(m.Data.Data))
		default:
			next = m.Data.Seq + 1
		}
	}
	if gaps == 0 {
		t.Error("64 MB through a 1 KiB ring without a gap marker")
	}
	// The manager is not affected.
	if _, err := e.m.Pids(""); err != nil {
		t.Fatal(err)
	}
}

// The STREAM events written by hand are byte for byte what encoding/json
// writes for chStreamData.
func TestChannelStreamEncoderMatchesJSON(t *testing.T) {
	head, _ := json.Marshal(chStreamData{Event: "out", Topic: `STREAM:1"<x>`, Name: "default.a&b", Pid: 1})
	prefix := append([]byte(`{"data":`), head[:bytes.LastIndex(head, []byte(`"data":`))+len(`"data":`)]...)
	enc := &chStreamEncoder{prefix: prefix}
	at := time.Date(2026, 12, 2, 18, 0, 1, 2345678, time.FixedZone("x", 3600))
	for _, data := range []string{"", "hi\n", "\x00\xff<&>\u2028", strings.Repeat("y", 70000)} {
		got, op := enc.chunk(nil, Chunk{Seq: 42, Data: []byte(data), Time: at})
		want, _ := json.Marshal(map[string]any{"event": "gaffer:event", "data": chStreamData{Event: "out", Topic: `STREAM:1"<x>`,
			Name: "default.a&b", Pid: 1, Data: data, Seq: 42, Time: "2026-12-02T17:00:01.002Z"}})
		if op != WSText || !bytes.Equal(got, want) {
			t.Errorf("chunk %.40q:\n got %.300s\nwant %.300s", data, got, want)
		}
	}
}
