package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer"
)

// Clients that subscribe to a fast stream and never read must not grow
// gafferd's memory with their number (issue 13): 200 of them on each
// transport, against the real binary, whose RSS is read from /proc.

// subscribersRSSValve stops a phase early should gafferd's memory run
// away (as it did before the fix: about 8 MB per channel client), so that
// the test cannot take the machine down with it.
const subscribersRSSValve = 3 << 30

// daemonRSS returns gafferd's resident set size in bytes.
func daemonRSS(t *testing.T, d *daemon) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(d.Cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/<pid>/status")
	return 0
}

// rawClient opens a connection to gafferd's socket that sends a request
// (and, for a websocket, a first message) and then never reads.
func rawClient(t *testing.T, sock, path string, websocket bool, first string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n"
	if websocket {
		req += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	if websocket {
		// Read the 101 answer byte by byte, so that no frame is consumed.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var head []byte
		b := make([]byte, 1)
		for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
			if _, err := c.Read(b); err != nil {
				t.Fatalf("websocket handshake on %s: %v (%q)", path, err, head)
			}
			head = append(head, b[0])
		}
		if !bytes.HasPrefix(head, []byte("HTTP/1.1 101")) {
			t.Fatalf("websocket handshake on %s: %q", path, head)
		}
		if first != "" {
			// One masked text frame (a client must mask; the key is zero).
			f := []byte{0x81, 0x80 | byte(len(first)), 0, 0, 0, 0}
			if _, err := c.Write(append(f, first...)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return c
}

// lineChecker verifies that the output of `seq` arrives line after line,
// except across an explicit gap marker.
type lineChecker struct {
	t       *testing.T
	what    string
	partial []byte
	last    int64
	skip    bool // the data resumes mid-line (at the start, after a gap)
	gapped  bool // a gap marker since the last line
	lines   int
	gaps    int
}

func (lc *lineChecker) gap() { lc.gaps++; lc.skip, lc.gapped, lc.partial = true, true, nil }

func (lc *lineChecker) data(p []byte) {
	buf := append(lc.partial, p...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		line := buf[:i]
		buf = buf[i+1:]
		if lc.skip {
			lc.skip = false
			continue
		}
		n, err := strconv.ParseInt(string(line), 10, 64)
		switch {
		case err != nil:
			lc.t.Errorf("%s: bad line %q", lc.what, line)
			continue
		case lc.last != 0 && !lc.gapped && n != lc.last+1:
			lc.t.Errorf("%s: line %d after %d without a gap marker", lc.what, n, lc.last)
		case lc.last != 0 && n <= lc.last:
			lc.t.Errorf("%s: line %d after %d", lc.what, n, lc.last)
		}
		lc.last, lc.gapped = n, false
		lc.lines++
	}
	lc.partial = append(lc.partial[:0], buf...)
}

// seqChecker verifies that chunk sequence numbers follow each other
// except across a gap marker that names exactly the missing ones.
type seqChecker struct {
	t    *testing.T
	what string
	next uint64
}

func (sc *seqChecker) chunk(seq uint64) {
	if sc.next != 0 && seq != sc.next {
		sc.t.Errorf("%s: chunk %d after %d without a gap marker", sc.what, seq, sc.next-1)
	}
	sc.next = seq + 1
}

func (sc *seqChecker) gap(from, to uint64) {
	if sc.next != 0 && from != sc.next || to < from {
		sc.t.Errorf("%s: gap %d-%d after chunk %d", sc.what, from, to, sc.next-1)
	}
	sc.next = to + 1
}

// floodJob loads a job whose process writes numbered lines as fast as it
// can for at most 60 s (then sleeps), and returns its pid.
func floodJob(t *testing.T, d *daemon, name string) int {
	t.Helper()
	body := `{"name": "` + name + `", "cmd": "sh", "args": ["-c", "timeout -s KILL 60 seq 1 999999999999; exec sleep 600"],` +
		` "redirect_output": ["out"], "graceful_timeout": 1}`
	resp, err := d.client.Post("http://localhost/jobs/default", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("loading %s: %d", name, resp.StatusCode)
	}
	var pid int
	d.waitFor(10*time.Second, "the "+name+" job", func() bool {
		if ji := d.job("default." + name); len(ji.Processes) == 1 {
			pid = ji.Processes[0]
		}
		return pid != 0
	})
	return pid
}

func unloadJob(t *testing.T, d *daemon, name string) {
	t.Helper()
	req, _ := http.NewRequest("DELETE", "http://localhost/jobs/default/"+name, nil)
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// subscriberTransport is one way of reading a stream: how a client that
// never reads subscribes, and a fast client that checks what it gets.
type subscriberTransport struct {
	name  string
	open  func(pid string) net.Conn
	watch func(ctx context.Context, pid string, lc *lineChecker)
}

// subscriberTransports returns the transports of the daemon d returns.
func subscriberTransports(t *testing.T, d func() *daemon) []subscriberTransport {
	wsURL := func() string { return "ws+unix://" + d().sock + ":" }
	return []subscriberTransport{
		{"control channel STREAM", func(pid string) net.Conn {
			return rawClient(t, d().sock, "/channel/websocket", true, `{"event": "SUB", "data": {"topic": "STREAM:`+pid+`"}}`)
		}, func(ctx context.Context, pid string, lc *lineChecker) {
			ws, _, err := gaffer.WSDial(ctx, wsURL()+"/channel/websocket", nil, nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer ws.CloseNow()
			ws.WriteJSON(map[string]any{"event": "SUB", "data": map[string]any{"topic": "STREAM:" + pid}})
			stop := context.AfterFunc(ctx, func() { ws.CloseNow() })
			defer stop()
			sc := &seqChecker{t: t, what: lc.what}
			for {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					return
				}
				channelStreamMessage(msg, sc, lc)
			}
		}},
		{"SockJS xhr_streaming STREAM", func(pid string) net.Conn {
			return sockjsNonReader(t, d(), `{"event": "SUB", "data": {"topic": "STREAM:`+pid+`"}}`)
		}, func(ctx context.Context, pid string, lc *lineChecker) {
			sockjsStreamReader(ctx, t, d(), `{"event": "SUB", "data": {"topic": "STREAM:`+pid+`"}}`, lc)
		}},
		{"eventsource", func(pid string) net.Conn {
			return rawClient(t, d().sock, "/streams/"+pid+"/out?feed=eventsource", false, "")
		}, func(ctx context.Context, pid string, lc *lineChecker) {
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://localhost/streams/"+pid+"/out?feed=eventsource", nil)
			client := &http.Client{Transport: d().client.Transport}
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			sc := &seqChecker{t: t, what: lc.what}
			rd := bufio.NewScanner(resp.Body)
			rd.Buffer(make([]byte, 1<<20), 1<<20)
			var event, id string
			var data []string
			for rd.Scan() {
				line := rd.Text()
				switch {
				case line == "":
					if event == "gap" {
						var g struct{ From, To uint64 }
						json.Unmarshal([]byte(strings.Join(data, "\n")), &g)
						sc.gap(g.From, g.To)
						lc.gap()
					} else if len(data) > 0 {
						n, _ := strconv.ParseUint(id, 10, 64)
						sc.chunk(n)
						lc.data([]byte(strings.Join(data, "\n")))
					}
					event, id, data = "", "", nil
				case strings.HasPrefix(line, "event: "):
					event = line[7:]
				case strings.HasPrefix(line, "id: "):
					id = line[4:]
				case strings.HasPrefix(line, "data: "):
					data = append(data, line[6:])
				case line == "data:":
					data = append(data, "")
				}
			}
		}},
		{"I/O websocket", func(pid string) net.Conn {
			return rawClient(t, d().sock, "/"+pid+"/channel?mode=1", true, "")
		}, func(ctx context.Context, pid string, lc *lineChecker) {
			ws, _, err := gaffer.WSDial(ctx, wsURL()+"/"+pid+"/channel?mode=1", nil, nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer ws.CloseNow()
			stop := context.AfterFunc(ctx, func() { ws.CloseNow() })
			defer stop()
			for {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					return
				}
				head, body, _ := bytes.Cut(msg, []byte{0})
				switch {
				case bytes.HasPrefix(head, []byte("V1 error gap")):
					lc.gap()
				case bytes.HasPrefix(head, []byte("V1 message ")):
					lc.data(body)
				}
			}
		}},
	}
}

// channelStreamMessage checks one control channel message of a STREAM
// topic.
func channelStreamMessage(msg []byte, sc *seqChecker, lc *lineChecker) {
	var m struct {
		Event string `json:"event"`
		Data  struct {
			Event    string `json:"event"`
			Data     string `json:"data"`
			Seq      uint64 `json:"seq"`
			From, To uint64
		} `json:"data"`
	}
	json.Unmarshal(msg, &m)
	switch {
	case m.Event != "gaffer:event":
	case m.Data.Event == "gap":
		sc.gap(m.Data.From, m.Data.To)
		lc.gap()
	default:
		sc.chunk(m.Data.Seq)
		lc.data([]byte(m.Data.Data))
	}
}

// sockjsSessions numbers the SockJS sessions of the test.
var sockjsSessions atomic.Int64

// sockjsSend posts msg to a SockJS session with its binding cookie.
func sockjsSend(t *testing.T, d *daemon, base, cookie, msg string) {
	t.Helper()
	body, _ := json.Marshal([]string{msg})
	req, _ := http.NewRequest("POST", "http://localhost"+base+"/xhr_send", bytes.NewReader(body))
	req.Header.Set("Cookie", cookie)
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("xhr_send: %d", resp.StatusCode)
	}
}

// sockjsCookies returns the Cookie header for the Set-Cookie lines of a
// response head.
func sockjsCookies(head string) string {
	var cookies []string
	for _, line := range strings.Split(head, "\r\n") {
		if v, ok := strings.CutPrefix(line, "Set-Cookie: "); ok {
			cookies = append(cookies, strings.TrimSpace(strings.Split(v, ";")[0]))
		}
	}
	return strings.Join(cookies, "; ")
}

// sockjsNonReader opens a SockJS session over xhr_streaming whose
// receiving connection reads the response head and nothing more, and
// sends msg on it (xhr_send, another connection).
func sockjsNonReader(t *testing.T, d *daemon, msg string) net.Conn {
	t.Helper()
	base := "/channel/000/nr" + strconv.FormatInt(sockjsSessions.Add(1), 10)
	c, err := net.Dial("unix", d.sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("POST " + base + "/xhr_streaming HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var head []byte
	b := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := c.Read(b); err != nil {
			t.Fatalf("xhr_streaming on %s: %v (%q)", base, err, head)
		}
		head = append(head, b[0])
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 200")) {
		t.Fatalf("xhr_streaming on %s: %q", base, head)
	}
	sockjsSend(t, d, base, sockjsCookies(string(head)), msg)
	return c
}

// sockjsStreamReader opens a SockJS session over xhr_streaming, sends msg
// and checks the STREAM messages it gets, opening the next streaming
// response each time one ends, until ctx ends or the session closes.
func sockjsStreamReader(ctx context.Context, t *testing.T, d *daemon, msg string, lc *lineChecker) {
	base := "/channel/000/rd" + strconv.FormatInt(sockjsSessions.Add(1), 10)
	client := &http.Client{Transport: d.client.Transport}
	sc := &seqChecker{t: t, what: lc.what}
	cookie := ""
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://localhost"+base+"/xhr_streaming", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				t.Error(err)
			}
			return
		}
		if cookie == "" {
			var cs []string
			for _, c := range resp.Cookies() {
				cs = append(cs, c.Name+"="+c.Value)
			}
			cookie = strings.Join(cs, "; ")
			sockjsSend(t, d, base, cookie, msg)
		}
		rd := bufio.NewScanner(resp.Body)
		rd.Buffer(make([]byte, 1<<20), 4<<20)
		for rd.Scan() {
			line := rd.Bytes()
			switch {
			case bytes.HasPrefix(line, []byte("a[")):
				var msgs []string
				if err := json.Unmarshal(line[1:], &msgs); err != nil && ctx.Err() == nil {
					t.Errorf("SockJS frame: %v", err)
				}
				for _, m := range msgs {
					channelStreamMessage([]byte(m), sc, lc)
				}
			case bytes.HasPrefix(line, []byte("c[")):
				resp.Body.Close()
				return
			}
		}
		resp.Body.Close()
	}
}

func TestNonReadingSubscribersKeepMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("200 clients per transport on a fast writer")
	}
	const clients = 200
	var d *daemon
	for _, tr := range subscriberTransports(t, func() *daemon { return d }) {
		t.Run(tr.name, func(t *testing.T) {
			// A gafferd of its own, so that the figures of one transport
			// are not those of the one before.
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "gaffer.ini"), []byte(strings.ReplaceAll(baseConfig, "%SOCK%", filepath.Join(dir, "g.sock"))), 0o644); err != nil {
				t.Fatal(err)
			}
			d = runDaemon(t, dir)
			pid := strconv.Itoa(floodJob(t, d, "flood"))
			base := daemonRSS(t, d)
			conns := make([]net.Conn, 0, clients)
			for range clients {
				conns = append(conns, tr.open(pid))
			}
			lc := &lineChecker{t: t, what: tr.name, skip: true} // output starts mid-line
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				tr.watch(ctx, pid, lc)
			}()
			peak := base
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && peak < subscribersRSSValve; {
				peak = max(peak, daemonRSS(t, d))
				time.Sleep(100 * time.Millisecond)
			}
			// The API still answers (within the client's 10 s timeout).
			pingStart := time.Now()
			if code := d.getJSON("/ping", nil); code != 200 {
				t.Errorf("/ping answered %d", code)
			}
			pingTime := time.Since(pingStart)
			cancel()
			<-done
			for _, c := range conns {
				c.Close()
			}
			unloadJob(t, d, "flood")
			// The memory comes back, to near what gafferd had before.
			left := time.Now()
			limit := base + 10<<20
			var after int64
			for {
				after = daemonRSS(t, d)
				if after <= limit || time.Since(left) > 30*time.Second {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("%d non-reading clients: gafferd RSS %d MB before, peak %d MB, %d MB %.1f s after they left; /ping in %v; the fast reader got %d lines, %d gap markers",
				clients, base>>20, peak>>20, after>>20, time.Since(left).Seconds(), pingTime.Round(time.Millisecond), lc.lines, lc.gaps)
			if peak-base > 100<<20 {
				t.Errorf("RSS grew by %d MB with %d non-reading clients", (peak-base)>>20, clients)
			}
			if after > limit {
				t.Errorf("RSS still %d MB (%d MB at the start) 30 s after the clients left", after>>20, base>>20)
			}
			if lc.lines == 0 {
				t.Error("the reading client got no line")
			}
		})
	}
}
