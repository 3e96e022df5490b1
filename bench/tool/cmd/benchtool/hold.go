package main

// benchtool hold: the measuring half of stream.sh's budget scenario
// ([gaffer] max_subscriber_memory holding). gafferd runs a fast writer;
// this opens N clients that subscribe to its output and never read, keeps
// them for -secs while one client reads the eventsource feed as fast as it
// can and /ping is asked every 100 ms, then closes them and waits for
// gafferd's RSS to come back.
//
//	benchtool hold -sock SOCK -pid GAFFERD_PID -stream 1 -clients N [-proto eventsource|channel] [-secs S]
//
// One JSON line on stdout: RSS before (the writer running, no client),
// peak while the clients are held, after they left and how long that took
// to come within 10 MB of the start, /ping latency (median, max), and what
// the reading client got (MB/s, gap events).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

func cmdHold(args []string) {
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	sock := fs.String("sock", "", "gafferd's unix socket")
	pid := fs.Int("pid", 0, "gafferd's pid (RSS is read from /proc)")
	stream := fs.String("stream", "1", "internal pid of the writer")
	clients := fs.Int("clients", 200, "clients that never read")
	proto := fs.String("proto", "eventsource", "how they subscribe: eventsource or channel (control channel websocket, STREAM topic)")
	secs := fs.Duration("secs", 5*time.Second, "how long they are held")
	label := fs.String("label", "", "name of the measurement (copied to the JSON)")
	fs.Parse(args)
	res := map[string]any{"scenario": "hold", "label": *label, "clients": *clients, "proto": *proto,
		"hold_s": secs.Seconds(), "time": time.Now().UTC().Format(time.RFC3339)}
	fail := func(err error) {
		res["ok"] = false
		res["error"] = err.Error()
		json.NewEncoder(os.Stdout).Encode(res)
		os.Exit(1)
	}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", *sock)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: dial}, Timeout: 10 * time.Second}

	// The writer has been running a moment: its ring is full.
	time.Sleep(time.Second)
	base := procRSS(*pid)

	// The reading client: every byte it gets, every gap event.
	ctx, cancel := context.WithCancel(context.Background())
	var readBytes, gaps atomic.Int64
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://localhost/streams/"+*stream+"/stdout?feed=eventsource&heartbeat=0", nil)
		resp, err := (&http.Client{Transport: hc.Transport}).Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		rd := bufio.NewReaderSize(resp.Body, 256<<10)
		for {
			line, err := rd.ReadSlice('\n')
			readBytes.Add(int64(len(line)))
			if bytes.HasPrefix(line, []byte("event: gap")) {
				gaps.Add(1)
			}
			if err != nil && err != bufio.ErrBufferFull {
				return
			}
		}
	}()

	conns := make([]net.Conn, 0, *clients)
	for range *clients {
		c, err := nonReader(*sock, *proto, *stream)
		if err != nil {
			fail(err)
		}
		conns = append(conns, c)
	}
	t0 := time.Now()
	peak := base
	var pings []float64
	pingErrors := 0
	for time.Since(t0) < *secs {
		peak = max(peak, procRSS(*pid))
		p0 := time.Now()
		resp, err := hc.Get("http://localhost/ping")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if err != nil || resp.StatusCode != 200 {
			pingErrors++
		} else {
			pings = append(pings, float64(time.Since(p0).Microseconds())/1000)
		}
		time.Sleep(100 * time.Millisecond)
	}
	held := time.Since(t0)
	peak = max(peak, procRSS(*pid))
	cancel()
	<-readDone
	for _, c := range conns {
		c.Close()
	}
	left := time.Now()
	after := procRSS(*pid)
	for after > base+10<<20 && time.Since(left) < 30*time.Second {
		time.Sleep(100 * time.Millisecond)
		after = procRSS(*pid)
	}
	slices.Sort(pings)
	mb := func(n int64) float64 { return round(float64(n)/(1<<20), 1) }
	res["rss_base_mb"] = mb(base)
	res["rss_peak_mb"] = mb(peak)
	res["rss_growth_mb"] = mb(peak - base)
	res["rss_after_mb"] = mb(after)
	res["recovered_s"] = round(time.Since(left).Seconds(), 1)
	res["recovered"] = after <= base+10<<20
	res["pings"] = len(pings)
	res["ping_errors"] = pingErrors
	if len(pings) > 0 {
		res["ping_ms_median"] = round(pings[len(pings)/2], 2)
		res["ping_ms_max"] = round(pings[len(pings)-1], 2)
	}
	res["reader_mb_s"] = round(float64(readBytes.Load())/1e6/held.Seconds(), 1)
	res["reader_gaps"] = gaps.Load()
	res["ok"] = pingErrors == 0 && res["recovered"] == true && readBytes.Load() > 0
	json.NewEncoder(os.Stdout).Encode(res)
}

// nonReader opens a connection that subscribes to the writer's output and
// then never reads: an eventsource request, or a control channel websocket
// that sends SUB STREAM:<pid> (the 101 answer is read byte by byte so that
// no frame is consumed).
func nonReader(sock, proto, stream string) (net.Conn, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err
	}
	var req string
	switch proto {
	case "eventsource":
		req = "GET /streams/" + stream + "/stdout?feed=eventsource&heartbeat=0 HTTP/1.1\r\nHost: localhost\r\n\r\n"
	case "channel":
		req = "GET /channel/websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	default:
		c.Close()
		return nil, fmt.Errorf("unknown -proto %q", proto)
	}
	if _, err := c.Write([]byte(req)); err != nil {
		c.Close()
		return nil, err
	}
	if proto == "channel" {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var head []byte
		b := make([]byte, 1)
		for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
			if _, err := c.Read(b); err != nil {
				c.Close()
				return nil, fmt.Errorf("websocket handshake: %v (%q)", err, head)
			}
			head = append(head, b[0])
		}
		if !bytes.HasPrefix(head, []byte("HTTP/1.1 101")) {
			c.Close()
			return nil, fmt.Errorf("websocket handshake: %q", head)
		}
		msg := `{"event": "SUB", "data": {"topic": "STREAM:` + stream + `"}}`
		// One masked text frame (clients must mask; the key is zero).
		f := append([]byte{0x81, 0x80 | byte(len(msg)), 0, 0, 0, 0}, msg...)
		if _, err := c.Write(f); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// procRSS returns a process's resident set size in bytes (0 when gone).
func procRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
