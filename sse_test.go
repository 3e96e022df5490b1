package gaffer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// loadLines loads a job printing n numbered lines ("%08d line") then
// sleeping, and returns its internal pid.
func loadLines(t *testing.T, a *apiT, name string, n int, ring int) string {
	t.Helper()
	extra := fmt.Sprintf(`, "redirect_output": ["stdout"], "ring_size": %d`, ring)
	body := strings.Replace(childJSON(t, name, "lines", extra), `"GAFFER_TEST_CHILD": "lines"`,
		fmt.Sprintf(`"GAFFER_TEST_CHILD": "lines", "LINES": "%d", "THEN_SLEEP": "1"`, n), 1)
	// Loaded stopped, so that a reader can attach before the first line.
	body = strings.TrimSuffix(body, "}") + `, "start": false}`
	a.json("POST", "/jobs/default", body, 200)
	return name
}

func startAndPid(t *testing.T, a *apiT, name string) string {
	a.json("POST", "/jobs/default/"+name+"/state", "1", 202)
	pids := a.json("GET", "/jobs/default/"+name+"/pids", "", 200)["pids"].([]any)
	return strconv.Itoa(int(pids[0].(float64)))
}

// checkLines verifies that text holds lines 1..n exactly once, in order.
func checkLines(t *testing.T, text string, n int) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("got %d lines, want %d", len(lines), n)
	}
	for i, l := range lines {
		if l != fmt.Sprintf("%08d line", i+1) {
			t.Fatalf("line %d is %q", i+1, l)
		}
	}
}

func TestContinuousFeedDeliversEveryLine(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	loadLines(t, a, "c", 10000, 4<<20)
	// The process is started only once the reader waits: no line can be
	// missed between the two.
	done := make(chan string)
	pidc := make(chan string)
	go func() {
		pid := <-pidc
		resp, err := http.Get(a.srv.URL + "/streams/" + pid + "/stdout?feed=continuous&since=0")
		if err != nil {
			done <- err.Error()
			return
		}
		defer resp.Body.Close()
		var b strings.Builder
		rd := bufio.NewReader(resp.Body)
		for strings.Count(b.String(), "\n") < 10000 {
			line, err := rd.ReadString('\n')
			b.WriteString(line)
			if err != nil {
				break
			}
		}
		done <- b.String()
	}()
	pidc <- startAndPid(t, a, "c")
	select {
	case text := <-done:
		checkLines(t, text, 10000)
	case <-time.After(20 * time.Second):
		t.Fatal("continuous feed too slow")
	}
}

// sseEvent is one parsed server-sent event.
type sseEvent struct {
	event, id, data string
}

// readSSE parses events from r until stop returns true or the stream ends.
func readSSE(r io.Reader, stop func(sseEvent) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ev sseEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.event != "" || len(data) > 0 {
				ev.data = strings.Join(data, "\n")
				if stop(ev) {
					return nil
				}
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[6:])
		case line == "data:":
			data = append(data, "")
		}
	}
	return sc.Err()
}

func TestEventSourceResumesWithLastEventID(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	loadLines(t, a, "e", 10000, 4<<20)
	pid := startAndPid(t, a, "e")
	p, _ := a.m.Process(mustAtoi(t, pid))
	st, _ := p.Stream("stdout")
	waitFor(t, 10*time.Second, "all output produced", func() bool {
		chunks, _ := st.Backlog(0)
		n := 0
		for _, c := range chunks {
			n += strings.Count(string(c.Data), "\n")
		}
		return n == 10000
	})
	// First connection: read about half, remember the last id.
	var got strings.Builder
	var lastID string
	resp, err := http.Get(a.srv.URL + "/streams/" + pid + "/stdout?feed=eventsource&since=0")
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	readSSE(resp.Body, func(ev sseEvent) bool {
		if ev.event != "stdout" || ev.id == "" {
			t.Errorf("event without label or id: %+v", ev)
			return true
		}
		got.WriteString(ev.data)
		lastID = ev.id
		return strings.Count(got.String(), "\n") >= 5000
	})
	resp.Body.Close()
	// Reconnect with Last-Event-ID: exactly the rest arrives.
	req, _ := http.NewRequest("GET", a.srv.URL+"/streams/"+pid+"/stdout?feed=eventsource", nil)
	req.Header.Set("Last-Event-ID", lastID)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	readSSE(resp.Body, func(ev sseEvent) bool {
		if ev.event == "gap" {
			t.Fatalf("unexpected gap %s", ev.data)
		}
		got.WriteString(ev.data)
		return strings.Count(got.String(), "\n") >= 10000
	})
	checkLines(t, got.String(), 10000)
}

func TestEventSourceGapMarker(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	loadLines(t, a, "g", 20000, 4096)
	pid := startAndPid(t, a, "g")
	p, _ := a.m.Process(mustAtoi(t, pid))
	st, _ := p.Stream("stdout")
	waitFor(t, 10*time.Second, "output", func() bool { return st.LastSeq() >= 3 })
	resp, err := http.Get(a.srv.URL + "/streams/" + pid + "/stdout?feed=eventsource&since=0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var first sseEvent
	readSSE(resp.Body, func(ev sseEvent) bool { first = ev; return true })
	if first.event != "gap" || !strings.Contains(first.data, `"from":1`) {
		t.Fatalf("want a gap event first, got %+v", first)
	}
}

func TestLongpollFeed(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	loadLines(t, a, "l", 3, 4096)
	pid := startAndPid(t, a, "l")
	code, h, body := a.do("GET", "/streams/"+pid+"/stdout?feed=longpoll&since=0", "")
	if code != 200 || h.Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(string(body), "00000001 line\n") {
		t.Fatalf("longpoll: %d %v %q", code, h, body)
	}
	a.json("GET", "/streams/"+pid+"/nope", "", 404)
	a.json("GET", "/streams/"+pid+"/stdout?feed=bogus", "", 400)
	a.json("GET", "/streams/abc/stdout", "", 400)
}

func TestSlowSSEClientDoesNotSlowOthers(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	// 50 MB of output: ~500,000 lines of 100 bytes.
	const n = 500000
	extra := `, "redirect_output": ["stdout"], "start": false`
	body := strings.Replace(childJSON(t, "big", "lines", extra), `"GAFFER_TEST_CHILD": "lines"`,
		fmt.Sprintf(`"GAFFER_TEST_CHILD": "lines", "LINES": "%d", "WIDTH": "100", "THEN_SLEEP": "1"`, n), 1)
	a.json("POST", "/jobs/default", body, 200)
	pid := startAndPid(t, a, "big")
	// A client that never reads: a raw connection that sends the request
	// and then does nothing.
	addr := strings.TrimPrefix(a.srv.URL, "http://")
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "GET /streams/%s/stdout?feed=eventsource HTTP/1.1\r\nHost: localhost\r\n\r\n", pid)
	// A second client reads everything from the start of the ring.
	resp, err := http.Get(a.srv.URL + "/streams/" + pid + "/stdout?feed=continuous")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p, _ := a.m.Process(mustAtoi(t, pid))
	st, _ := p.Stream("stdout")
	// The child finishes writing whatever the slow client does.
	waitFor(t, 30*time.Second, "the child to write 50 MB", func() bool {
		chunks, _ := st.Backlog(st.LastSeq() - 1)
		return len(chunks) == 1 && strings.Contains(string(chunks[0].Data), fmt.Sprintf("%08d line", n))
	})
	rd := bufio.NewReaderSize(resp.Body, 1<<16)
	deadline := time.Now().Add(30 * time.Second)
	last := 0
	for last < n && time.Now().Before(deadline) {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if v, err := strconv.Atoi(strings.Fields(line)[0]); err == nil {
			last = v
		}
	}
	if last != n {
		t.Fatalf("the reading client stopped at line %d", last)
	}
}

func mustAtoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWStreamsEcho(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	body := strings.TrimSuffix(childJSON(t, "echo", "echo", `, "redirect_output": ["stdout"], "redirect_input": true`), "}") + "}"
	a.json("POST", "/jobs/default", body, 200)
	pids := a.json("GET", "/jobs/default/echo/pids", "", 200)["pids"].([]any)
	pid := strconv.Itoa(int(pids[0].(float64)))
	ws, _, err := WSDial(t.Context(), "ws"+strings.TrimPrefix(a.srv.URL, "http")+"/wstreams/"+pid, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if err := ws.WriteText("hello\n"); err != nil {
		t.Fatal(err)
	}
	var got string
	for !strings.Contains(got, "hello\n") {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		got += string(msg)
	}
	// POST /streams/<pid>/stdin reaches the same process.
	a.json("POST", "/streams/"+pid+"/stdin", "again\n", 200)
	for !strings.Contains(got, "again\n") {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		got += string(msg)
	}
	// Unknown pid: an error message, then the socket closes.
	ws2, _, err := WSDial(t.Context(), "ws"+strings.TrimPrefix(a.srv.URL, "http")+"/wstreams/999", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, msg, err := ws2.ReadMessage()
	if err != nil || !strings.Contains(string(msg), "not_found") {
		t.Fatalf("unknown pid: %q %v", msg, err)
	}
	if _, _, err := ws2.ReadMessage(); err == nil {
		t.Fatal("socket left open after the error")
	}
}

func TestHeartbeatBounds(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want time.Duration
		bad  bool
	}{
		{"", time.Minute, false}, {"true", time.Minute, false}, {"false", 0, false}, {"0", 0, false},
		{"0.0", 0, false}, {"2.5", 2500 * time.Millisecond, false}, {"0.000001", time.Second, false},
		{"1e9", time.Hour, false}, {"-1", 0, true}, {"NaN", 0, true}, {"inf", 0, true}, {"abc", 0, true},
	} {
		r, _ := http.NewRequest("GET", "/streams/1/out?heartbeat="+tc.v, nil)
		got, err := heartbeatInterval(r)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("heartbeat=%s: %v, %v; want %v (error: %v)", tc.v, got, err, tc.want, tc.bad)
		}
	}
}

// TestHeartbeatMinimumOnAFeed: heartbeat=0.000001 used to stream
// megabytes of newlines; it is raised to one per second.
func TestHeartbeatMinimumOnAFeed(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	a.json("POST", "/jobs/default", childJSON(t, "quiet", "sleep", `, "redirect_output": ["stdout"]`), 200)
	pids := a.json("GET", "/jobs/default/quiet/pids", "", 200)["pids"].([]any)
	pid := strconv.Itoa(int(pids[0].(float64)))
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", a.srv.URL+"/streams/"+pid+"/stdout?feed=continuous&heartbeat=0.000001", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body) // until the client gives up
	if n > 2 {
		t.Fatalf("%d bytes of heartbeats in 1.5 s, want at most 2", n)
	}
}

// TestLongpollAnswerIsExactlyTheData: heartbeats are not prepended to a
// longpoll answer.
func TestLongpollAnswerIsExactlyTheData(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	a.json("POST", "/jobs/default", `{"name": "late", "cmd": "sh -c 'sleep 3; echo hello; exec sleep 300'", "redirect_output": ["stdout"]}`, 200)
	pids := a.json("GET", "/jobs/default/late/pids", "", 200)["pids"].([]any)
	pid := strconv.Itoa(int(pids[0].(float64)))
	code, _, body := a.do("GET", "/streams/"+pid+"/stdout?feed=longpoll&since=0&heartbeat=1", "")
	if code != 200 || string(body) != "hello\n" {
		t.Fatalf("longpoll: %d %q, want exactly %q", code, body, "hello\n")
	}
}
