package main

// benchtool fanout: many eventsource clients of one output stream, in one
// process (bench/fanout.sh; issue 19: "1,000 eventsource subscribers on
// one stream of 10 MB: every subscriber gets every line (or an explicit
// gap marker, never a silent loss), gafferd's RSS stays under 150 MB, and
// a slow subscriber never slows the process").
//
//	benchtool fanout -sock SOCK -path /streams/1/stdout?feed=eventsource&since=0&heartbeat=0
//	                 -clients N [-slow K -slow-rate BYTES/S] [-stall J -stall-after BYTES -stall-for D]
//	                 -lines L -size S -stamp STAMPFILE -go GOFILE -pid GAFFERD_PID
//
// It connects the N+K clients, waits for every response header, creates
// GOFILE (the emitter waits for it), and checks each client's stream as it
// arrives, without keeping it: the data of the stdout events, joined back
// (data lines with "\n", events end to end), must be the emitter's lines
// ("<10-digit seq> x…x") in order. A line missing right after an "event:
// gap" is explained (lines_gap); one missing without a gap marker is a
// silent loss (lines_silent, must be 0). The N clients read as fast as
// they can. The K slow clients read -slow-rate bytes per second; they are
// not expected to finish (they are cut off once the others are done) but
// must not lose a line silently either. The J stalling clients read
// -stall-after bytes, stop reading for -stall-for (longer than gafferd's
// reader stall, 5 s: it then keeps nothing for them), then read as fast as
// they can: they must end with every line or a gap marker for what they
// missed. A client is done when it has the last line, or when nothing came
// for 5 s after the emitter finished. gafferd's VmRSS is sampled every 50 ms (rss_max_mb)
// and its VmHWM read at the end. One JSON line on stdout.

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
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fanClient is one client's tally.
type fanClient struct {
	slow      bool // reads at a limited rate
	stall     bool // stops reading for a while
	lines     int  // lines received in order
	gapLost   int  // lines skipped right after a gap marker
	silent    int  // lines skipped without a gap marker
	dup, bad  int
	gaps      int
	bytes     int64
	done      time.Time    // when it got the last line (zero: never); read once every reader ended
	doneAt    atomic.Int64 // mono ns of done, for the watchdog
	err       string
	next      int  // the sequence number expected next
	afterGap  bool // a gap marker came and no good line since
	partial   []byte
	lastWrite atomic.Int64 // mono ns of the last read
	cutAt     int64        // mono ns when the watchdog closed it (0: never)
}

// feed takes the joined output of one event.
func (c *fanClient) feed(data []byte, size int) {
	nx := size - 12
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			c.partial = append(c.partial, data...)
			return
		}
		l := data[:i]
		data = data[i+1:]
		if len(c.partial) > 0 {
			l = append(c.partial, l...)
			c.partial = c.partial[:0]
		}
		c.line(l, nx)
	}
}

func (c *fanClient) line(l []byte, nx int) {
	if len(l) == 0 {
		return
	}
	seq := -1
	if len(l) == 11+nx && l[10] == ' ' && bytes.Count(l[11:], []byte{'x'}) == nx {
		if v, err := strconv.Atoi(string(l[:10])); err == nil {
			seq = v
		}
	}
	switch {
	case seq < 0:
		if !c.afterGap { // a line cut by a gap is expected to be bad
			c.bad++
		}
	case seq == c.next:
		c.lines++
		c.next++
		c.afterGap = false
	case seq > c.next:
		if c.afterGap {
			c.gapLost += seq - c.next
		} else {
			c.silent += seq - c.next
		}
		c.lines++
		c.next = seq + 1
		c.afterGap = false
	default:
		c.dup++
	}
}

// gap marks a gap event: what is missing next is explained, and the
// partial line before it will not be completed.
func (c *fanClient) gap() {
	c.gaps++
	c.afterGap = true
	c.partial = c.partial[:0]
}

// read parses the client's SSE stream until it has the last line or ctx
// ends.
func (c *fanClient) read(ctx context.Context, body io.Reader, rate int, stallAfter int64, stallFor time.Duration, lines, size int) {
	if rate > 0 {
		body = &slowReader{r: body, rate: rate}
	}
	if stallFor > 0 {
		body = &stallReader{r: body, after: stallAfter, pause: stallFor, c: c}
	}
	br := bufio.NewReaderSize(body, 64<<10)
	var ev []byte
	typ, dataLines := "", 0
	for c.next < lines {
		l, err := br.ReadSlice('\n')
		c.bytes += int64(len(l))
		c.lastWrite.Store(mono())
		if err != nil {
			if err == bufio.ErrBufferFull {
				// a data line longer than the buffer: keep its head
				ev = append(ev, l...)
				continue
			}
			if ctx.Err() == nil {
				c.err = err.Error()
			}
			return
		}
		l = l[:len(l)-1]
		switch {
		case len(l) == 0: // end of event
			switch typ {
			case "gap":
				c.gap()
			case "eof", "":
			default:
				if dataLines > 0 {
					c.feed(ev, size)
				}
			}
			ev, typ, dataLines = ev[:0], "", 0
		case bytes.HasPrefix(l, []byte("data: ")):
			if dataLines > 0 {
				ev = append(ev, '\n')
			}
			ev = append(ev, l[6:]...)
			dataLines++
		case bytes.HasPrefix(l, []byte("event: ")):
			typ = string(l[7:])
		}
	}
	c.done = time.Now()
	c.doneAt.Store(mono())
}

// slowReader reads at most rate bytes per second, in pieces of 4 KiB.
type slowReader struct {
	r    io.Reader
	rate int
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > 4096 {
		p = p[:4096]
	}
	n, err := s.r.Read(p)
	time.Sleep(time.Duration(n) * time.Second / time.Duration(s.rate))
	return n, err
}

// stallReader stops reading for pause once after bytes.
type stallReader struct {
	r      io.Reader
	after  int64
	pause  time.Duration
	read   int64
	paused bool
	c      *fanClient
}

func (s *stallReader) Read(p []byte) (int, error) {
	if !s.paused && s.read >= s.after {
		s.paused = true
		s.c.lastWrite.Store(mono() + s.pause.Nanoseconds()) // not silent: paused
		time.Sleep(s.pause)
	}
	n, err := s.r.Read(p)
	s.read += int64(n)
	return n, err
}

func vmKB(pid int, key string) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == key+":" {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}

func cmdFanout(args []string) {
	fs := flag.NewFlagSet("fanout", flag.ExitOnError)
	sock := fs.String("sock", "", "gafferd's unix socket")
	path := fs.String("path", "/streams/1/stdout?feed=eventsource&since=0&heartbeat=0", "the feed")
	clients := fs.Int("clients", 1000, "clients reading as fast as they can")
	slow := fs.Int("slow", 0, "clients reading slowly")
	slowRate := fs.Int("slow-rate", 100<<10, "bytes per second of a slow client")
	stall := fs.Int("stall", 0, "clients that stop reading for a while")
	stallAfter := fs.Int64("stall-after", 1<<20, "bytes a stalling client reads before it stops")
	stallFor := fs.Duration("stall-for", 12*time.Second, "how long a stalling client stops reading")
	lines := fs.Int("lines", 100000, "lines the emitter writes")
	size := fs.Int("size", 100, "bytes per line")
	stamp := fs.String("stamp", "", "the emitter's stamp file (S/E lines)")
	goFile := fs.String("go", "", "created once every client is connected (the emitter waits for it)")
	pid := fs.Int("pid", 0, "gafferd's pid")
	limit := fs.Duration("timeout", 300*time.Second, "give up after")
	label := fs.String("label", "", "name of the measurement (copied to the JSON)")
	fs.Parse(args)
	res := map[string]any{"scenario": "fanout", "label": *label, "clients": *clients, "slow": *slow,
		"slow_rate": *slowRate, "stall": *stall, "stall_after": *stallAfter, "stall_for_s": stallFor.Seconds(), "lines": *lines, "bytes": *lines * *size, "time": time.Now().UTC().Format(time.RFC3339)}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", *sock)
		},
		MaxIdleConnsPerHost: -1,
	}
	ctx, cancel := context.WithTimeout(context.Background(), *limit)
	defer cancel()
	n := *clients + *slow + *stall
	cs := make([]*fanClient, n)
	bodies := make([]io.ReadCloser, n)
	var mu sync.Mutex
	var connErr error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64) // connect 64 at a time
	for i := range cs {
		cs[i] = &fanClient{slow: i >= *clients && i < *clients+*slow, stall: i >= *clients+*slow}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://gafferd"+*path, nil)
			resp, err := tr.RoundTrip(req)
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
				resp.Body.Close()
			}
			if err != nil {
				mu.Lock()
				connErr = err
				mu.Unlock()
				return
			}
			bodies[i] = resp.Body
		}(i)
	}
	wg.Wait()
	if connErr != nil {
		res["ok"], res["error"] = false, "connect: "+connErr.Error()
		out, _ := json.Marshal(res)
		fmt.Println(string(out))
		for _, b := range bodies {
			if b != nil {
				b.Close()
			}
		}
		return
	}
	cpu0 := procCPU(*pid)
	rssMax := 0.0
	stopSample := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			rssMax = max(rssMax, vmKB(*pid, "VmRSS"))
			select {
			case <-stopSample:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	if f, err := os.Create(*goFile); err == nil {
		f.Close()
	}
	t0 := time.Now()
	for i, c := range cs {
		wg.Add(1)
		go func(c *fanClient, body io.ReadCloser) {
			defer wg.Done()
			defer body.Close()
			rate, pause := 0, time.Duration(0)
			if c.slow {
				rate = *slowRate
			}
			if c.stall {
				pause = *stallFor
			}
			c.read(ctx, body, rate, *stallAfter, pause, *lines, *size)
		}(c, bodies[i])
	}
	// Watchdog: once the emitter is done, a client that gets nothing for
	// 5 s is over (its body is closed, which ends its read); once every
	// client but the slow ones is over, so are the slow ones.
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	var sEnd, firstCut, lastCut int64
	mono0 := mono()
	closed := make([]bool, n)
watch:
	for {
		select {
		case <-allDone:
			break watch
		case <-ctx.Done():
			break watch
		case <-time.After(200 * time.Millisecond):
		}
		if sEnd == 0 {
			_, sEnd = readStamp(*stamp)
			continue
		}
		now := mono()
		others := true
		for i, c := range cs {
			if c.doneAt.Load() != 0 || closed[i] {
				continue
			}
			if now-max(c.lastWrite.Load(), sEnd) > int64(5*time.Second) {
				bodies[i].Close()
				closed[i] = true
				c.cutAt = now
				if !c.slow && !c.stall {
					lastCut = now
					if firstCut == 0 {
						firstCut = now
					}
				}
				continue
			}
			others = others && c.slow
		}
		if others {
			for i, c := range cs {
				if c.slow && !closed[i] {
					bodies[i].Close()
					closed[i] = true
				}
			}
		}
	}
	cancel()
	<-allDone
	close(stopSample)
	<-sampled
	res["sup_cpu_s"] = round((procCPU(*pid)-cpu0)/clkTck, 2)
	res["rss_max_mb"] = round(rssMax/1024, 1)
	res["hwm_mb"] = round(vmKB(*pid, "VmHWM")/1024, 1)
	res["sup_threads"] = procThreads(*pid)
	sStart, sEnd := readStamp(*stamp)
	if sStart != 0 && sEnd != 0 {
		res["producer_s"] = round(float64(sEnd-sStart)/1e9, 3)
	}
	var fastS, cutLines, cutIdle []float64
	complete, withGaps, silent, dup, bad, gaps := 0, 0, 0, 0, 0, 0
	slowGaps, slowLines, stallGaps, stallDone, stallComplete := 0, 0, 0, 0, 0
	var errs []string
	for _, c := range cs {
		silent += c.silent
		dup += c.dup
		bad += c.bad
		if c.err != "" && len(errs) < 3 {
			errs = append(errs, c.err)
		}
		switch {
		case c.slow:
			slowGaps += c.gaps
			slowLines += c.lines
			continue
		case c.stall:
			stallGaps += c.gaps
			if !c.done.IsZero() {
				stallDone++
				if c.gaps == 0 && c.lines == *lines {
					stallComplete++
				}
			}
			continue
		}
		gaps += c.gaps
		if c.gaps > 0 {
			withGaps++
		}
		if c.done.IsZero() {
			cutLines = append(cutLines, float64(c.lines))
			cutIdle = append(cutIdle, float64(c.cutAt-c.lastWrite.Load())/1e9)
		} else {
			fastS = append(fastS, c.done.Sub(t0).Seconds())
			if c.gaps == 0 && c.silent == 0 && c.lines == *lines {
				complete++
			}
		}
	}
	if len(cutLines) > 0 {
		// the fast clients cut off by the watchdog: how far they got, and
		// how long they had gone without a read when cut
		sort.Float64s(cutLines)
		sort.Float64s(cutIdle)
		res["cut_lines_min_median_max"] = []float64{cutLines[0], cutLines[len(cutLines)/2], cutLines[len(cutLines)-1]}
		res["cut_idle_s_min_max"] = []float64{round(cutIdle[0], 1), round(cutIdle[len(cutIdle)-1], 1)}
		res["cut_at_s_first_last"] = []float64{round(float64(firstCut-mono0)/1e9, 1), round(float64(lastCut-mono0)/1e9, 1)}
	}
	res["stall_gaps"] = stallGaps
	res["stall_done"] = stallDone
	res["stall_complete"] = stallComplete
	sort.Float64s(fastS)
	res["clients_complete"] = complete
	res["clients_with_gaps"] = withGaps
	res["clients_done"] = len(fastS)
	res["gaps"] = gaps
	res["lines_silent"] = silent
	res["lines_dup"] = dup
	res["lines_bad"] = bad
	res["slow_gaps"] = slowGaps
	res["slow_lines"] = slowLines
	if len(fastS) > 0 {
		res["fast_done_s_median"] = round(fastS[len(fastS)/2], 3)
		res["fast_done_s_max"] = round(fastS[len(fastS)-1], 3)
		res["fast_mb_s_median"] = round(float64(*lines**size)/1e6/fastS[len(fastS)/2], 2)
	}
	if len(errs) > 0 {
		res["client_errors"] = errs
	}
	// The goal: every fast client has every line, each loss is marked.
	ok := silent == 0 && dup == 0 && bad == 0 && len(fastS) == *clients && stallDone == *stall && sStart != 0
	res["ok"] = ok
	if !ok {
		res["error"] = fmt.Sprintf("%d of %d fast and %d of %d stalling clients done, %d silent losses, %d dup, %d bad",
			len(fastS), *clients, stallDone, *stall, silent, dup, bad)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}
