package gaffer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The feeds: process output over longpoll, continuous and eventsource,
// manager events over /watch, stats over /stats, and the legacy stdio
// websocket /wstreams. Every feed reads from a bounded subscription; a
// client that falls behind is moved back to the ring buffer (and told of
// any gap) rather than slowing the process or other clients.

func (s *Server) streamRoutes() {
	mx := s.mux
	mx.HandleFunc("GET /streams/{pid}/{label}", s.handleStream)
	mx.HandleFunc("POST /streams/{pid}/{label}", s.audited(s.handleStreamWrite))
	mx.HandleFunc("GET /wstreams/{pid}", s.handleWStreams)
	mx.HandleFunc("GET /watch", s.handleWatch)
	mx.HandleFunc("GET /watch/{a}", s.handleWatch)
	mx.HandleFunc("GET /watch/{a}/{b}", s.handleWatch)
	mx.HandleFunc("GET /watch/{a}/{b}/{c}", s.handleWatch)
}

// feedWriteTimeout bounds one write to a feed client: a client that stops
// reading is disconnected.
const feedWriteTimeout = 30 * time.Second

// feed is one streaming HTTP response.
type feed struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func newFeed(w http.ResponseWriter, contentType string) *feed {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(200)
	f := &feed{w: w, rc: http.NewResponseController(w)}
	f.flush()
	return f
}

func (f *feed) write(p []byte) error {
	f.rc.SetWriteDeadline(time.Now().Add(feedWriteTimeout))
	_, err := f.w.Write(p)
	return err
}

func (f *feed) flush() error { return f.rc.Flush() }

// Heartbeat bounds: a ?heartbeat= below the minimum is raised to it (a
// client could otherwise make gafferd send newlines without pause), one
// above the maximum lowered to it.
const (
	minHeartbeat = time.Second
	maxHeartbeat = time.Hour
)

// heartbeatInterval parses ?heartbeat=: "true" (the default) is 60 s, N is
// N seconds (clamped to 1 s … 1 h), 0 or false is none.
func heartbeatInterval(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("heartbeat")
	switch strings.ToLower(v) {
	case "", "true", "yes", "on":
		return 60 * time.Second, nil
	case "false", "no", "off", "0":
		return 0, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, Errorf(CodeBadValue, 400, "heartbeat: expected true, false or a number of seconds, got %q", v)
	}
	if f == 0 {
		return 0, nil
	}
	return secondsToDuration(min(max(f, minHeartbeat.Seconds()), maxHeartbeat.Seconds())), nil
}

// appendSSE appends one SSE event: its name, its id (when > 0), data as
// data: lines, and the blank line that ends it.
func appendSSE(b []byte, event string, id uint64, data []byte) []byte {
	b, _, _ = appendSSEData(appendSSEHead(b, event, id), data, math.MaxInt, hasCR(data))
	return append(b, '\n')
}

// appendSSEHead appends the event: and id: lines of an SSE event.
func appendSSEHead(b []byte, event string, id uint64) []byte {
	if event != "" {
		b = append(append(append(b, "event: "...), event...), '\n')
	}
	if id > 0 {
		b = append(strconv.AppendUint(append(b, "id: "...), id, 10), '\n')
	}
	return b
}

// hasCR reports whether data holds a CR (which ends a line too).
func hasCR(data []byte) bool { return bytes.IndexByte(data, '\r') >= 0 }

// appendSSEData appends data as SSE data: lines (CR, LF and CRLF all end
// a line, as the SSE parser reads them; data ending with one gives a last,
// empty line) until b holds at least limit bytes. cr says whether data
// holds a CR. It returns what is left of data and whether all of it was
// appended.
func appendSSEData(b, data []byte, limit int, cr bool) ([]byte, []byte, bool) {
	for {
		var i int
		if cr {
			i = bytes.IndexAny(data, "\r\n")
		} else {
			i = bytes.IndexByte(data, '\n')
		}
		if i < 0 {
			return append(append(append(b, "data: "...), data...), '\n'), nil, true
		}
		b = append(append(append(b, "data: "...), data[:i]...), '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
		if len(b) >= limit {
			return b, data, false
		}
	}
}

// streamTarget finds a process's stream for a feed request.
func (s *Server) streamTarget(w http.ResponseWriter, r *http.Request) (*Process, *Stream, bool) {
	pid, err := parsePid(r.PathValue("pid"))
	if err != nil {
		writeError(w, err)
		return nil, nil, false
	}
	p, ok := s.processFor(w, r, pid, (*Key).CanRead)
	if !ok {
		return nil, nil, false
	}
	label := r.PathValue("label")
	if len(p.Streams()) == 0 {
		writeError(w, Errorf(CodeNotRedirected, 400, "process %d has no redirected output (set redirect_output)", pid))
		return nil, nil, false
	}
	st, ok := p.Stream(label)
	if !ok {
		writeError(w, Errorf("io_not_found", 404, "process %d has no stream %q (it has %s)", pid, label, strings.Join(p.Streams(), ", ")))
		return nil, nil, false
	}
	return p, st, true
}

// resumePoint returns the last sequence number the client has seen, from
// Last-Event-ID or ?since=, and whether one was given.
func resumePoint(r *http.Request) (uint64, bool, error) {
	v := r.Header.Get("Last-Event-ID")
	if q := r.URL.Query().Get("since"); q != "" {
		v = q
	}
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, false, Errorf(CodeBadValue, 400, "since / Last-Event-ID: expected a sequence number, got %q", v)
	}
	return n, true, nil
}

// handleStream serves GET /streams/<pid>/<label>.
func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) {
	_, st, ok := s.streamTarget(w, r)
	if !ok {
		return
	}
	hb, err := heartbeatInterval(r)
	if err != nil {
		writeError(w, err)
		return
	}
	after, resume, err := resumePoint(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var asJSON bool
	switch v := r.URL.Query().Get("format"); v {
	case "", "raw":
	case "json":
		asJSON = true
	default:
		writeError(w, Errorf(CodeBadValue, 400, "format: expected raw or json, got %q", v))
		return
	}
	mode := r.URL.Query().Get("feed")
	switch mode {
	case "", "longpoll":
		if asJSON {
			writeError(w, Errorf(CodeBadValue, 400, "format=json is for feed=eventsource and feed=continuous (a longpoll answer is the raw output)"))
			return
		}
		s.streamLongpoll(w, r, st, after, resume)
	case "continuous":
		s.streamContinuous(w, r, st, after, resume, hb, false, asJSON)
	case "eventsource":
		s.streamContinuous(w, r, st, after, resume, hb, true, asJSON)
	default:
		writeError(w, Errorf(CodeBadValue, 400, "feed: expected longpoll, continuous or eventsource, got %q", mode))
	}
}

// streamLongpoll answers with the next output (or what was missed since
// the resume point) and ends: at most one batch of whole chunks, the
// sequence number of the last in X-Gaffer-Seq (resume with ?since= it),
// and X-Gaffer-Gap: FROM-TO when chunks were lost before them. The body is
// exactly the output: a longpoll answer has no heartbeats.
func (s *Server) streamLongpoll(w http.ResponseWriter, r *http.Request, st *Stream, after uint64, resume bool) {
	rd := st.reader(after, resume)
	defer rd.Close()
	for {
		b := rd.read()
		if b.empty() && !b.eof {
			select {
			case <-rd.ready():
				continue
			case <-r.Context().Done():
				return
			}
		}
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		if b.gap != nil {
			h.Set("X-Gaffer-Gap", strconv.FormatUint(b.gap.From, 10)+"-"+strconv.FormatUint(b.gap.To, 10))
		}
		if n := len(b.chunks); n > 0 {
			h.Set("X-Gaffer-Seq", strconv.FormatUint(b.chunks[n-1].Seq, 10))
		}
		h.Set("Content-Length", strconv.Itoa(b.size()))
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(feedWriteTimeout))
		for _, c := range b.chunks {
			if _, err := w.Write(c.Data); err != nil {
				break
			}
		}
		b.release()
		return
	}
}

// streamContinuous relays output until the stream ends or the client
// leaves: raw bytes (continuous) or SSE events with ids (eventsource),
// or, with asJSON, each chunk as a JSON object with its capture time (an
// SSE "chunk" event, or one line of NDJSON). It reads the ring at the
// client's pace, sending the chunks from the ring's own memory: a client
// that falls further behind than the ring holds gets an "event: gap" (a
// JSON line {"event": "gap", …} in NDJSON; raw bytes have no room for a
// marker: a continuous reader just skips ahead). The response header
// X-Gaffer-Last-Seq is the sequence number of the last chunk written when
// the feed opened (0: none): the chunks up to it were already in the ring.
func (s *Server) streamContinuous(w http.ResponseWriter, r *http.Request, st *Stream, after uint64, resume bool, hb time.Duration, sse, asJSON bool) {
	ct := "application/octet-stream"
	switch {
	case sse:
		ct = "text/event-stream; charset=utf-8"
	case asJSON:
		ct = "application/x-ndjson"
	}
	rd := st.reader(after, resume)
	defer rd.Close()
	w.Header().Set("X-Gaffer-Last-Seq", strconv.FormatUint(rd.head, 10))
	f := newFeed(w, ct)
	var tick <-chan time.Time
	if hb > 0 {
		t := time.NewTicker(hb)
		defer t.Stop()
		tick = t.C
	}
	out := &feedOut{f: f}
	defer out.release()
	var prefix []byte // of the JSON objects: {"label":"…","seq":
	if asJSON {
		prefix = append(appendJSONString([]byte(`{"label":`), []byte(st.Label)), `,"seq":`...)
	}
	unflushed := 0
	for {
		b := rd.read()
		switch {
		case sse:
			if b.gap != nil {
				js, _ := json.Marshal(b.gap)
				out.event("gap", 0, js)
			}
			for _, c := range b.chunks {
				if asJSON {
					out.chunkJSON(prefix, c, true)
				} else {
					out.event(st.Label, c.Seq, c.Data)
				}
			}
		case asJSON:
			if b.gap != nil {
				out.text(fmt.Sprintf(`{"event":"gap","from":%d,"to":%d}`+"\n", b.gap.From, b.gap.To))
			}
			for _, c := range b.chunks {
				out.chunkJSON(prefix, c, false)
			}
		default:
			for _, c := range b.chunks {
				out.raw(c.Data)
			}
		}
		sent, eof := !b.empty(), b.eof
		b.release()
		switch {
		case eof:
			switch {
			case sse:
				out.text("event: eof\ndata: {}\n\n")
			case asJSON:
				out.text(`{"event":"eof"}` + "\n")
			}
			out.flush()
			return
		case sent:
			// Flushed once caught up (or every few batches): while more
			// is there, the next batch goes out right behind this one.
			if unflushed++; rd.pending() && unflushed < 8 {
				if out.err != nil {
					return
				}
				continue
			}
			unflushed = 0
			if out.flush() != nil {
				return
			}
			continue
		}
		out.release() // an idle feed holds no buffer
		select {
		case <-rd.ready():
		case <-tick:
			if sse {
				out.text(": heartbeat\n\n")
			} else {
				out.text("\n") // an empty line, in NDJSON too
			}
			if out.flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}

// A feed formats into a buffer of at most feedPiece bytes (less when many
// readers share the budget: their buffers take at most a quarter of it)
// and writes it out once it is seven eighths full, so that a client that
// does not read holds at most one buffer (with the batch it was formatted
// from), and lines shorter than the rest fit without growing it.
const feedPiece = 64 << 10

// feedOut is a feed's output: formatted into a pooled buffer (counted in
// the readers' budget), written out one piece at a time. After a write
// error it writes nothing more.
type feedOut struct {
	f     *feed
	buf   *relayBuf
	piece int
	err   error
}

func (o *feedOut) bytes() []byte {
	if o.buf == nil {
		size := subscriberMemory.share(feedPiece)
		o.buf = getRelayBuf(size)
		o.piece = size - size/8
	}
	return o.buf.b
}

// spill keeps b as the buffer and writes it out once it holds a piece.
func (o *feedOut) spill(b []byte) {
	o.buf.b = b
	o.buf.recount()
	if len(b) >= o.piece {
		o.writeOut()
	}
}

func (o *feedOut) writeOut() {
	if o.buf == nil || len(o.buf.b) == 0 {
		return
	}
	if o.err == nil {
		o.err = o.f.write(o.buf.b)
	}
	o.buf.b = o.buf.b[:0]
}

// event adds one SSE event, written out piece by piece.
func (o *feedOut) event(event string, id uint64, data []byte) {
	b := appendSSEHead(o.bytes(), event, id)
	cr := hasCR(data)
	for done := false; !done; {
		b, data, done = appendSSEData(b, data, o.piece, cr)
		if !done {
			o.spill(b)
			b = o.buf.b
		}
	}
	o.spill(append(b, '\n'))
}

// chunkJSON adds chunk c as the JSON object {"label", "seq", "time",
// "data"} (prefix holds it up to "seq":): an SSE "chunk" event whose id is
// the sequence number (sse), or one line of NDJSON. The data is encoded
// and written out piece by piece, as event does: escaped, a chunk can be
// six times its size, and the buffer stays at one piece.
func (o *feedOut) chunkJSON(prefix []byte, c Chunk, sse bool) {
	b := o.bytes()
	if sse {
		b = append(appendSSEHead(b, "chunk", c.Seq), "data: "...)
	}
	b = strconv.AppendUint(append(b, prefix...), c.Seq, 10)
	b = appendCaptureTime(append(b, `,"time":"`...), c.Time)
	b = append(b, `","data":"`...)
	for data := c.Data; len(data) > 0; {
		// At most six bytes out per byte in (\u00XX).
		room := (o.piece - len(b)) / 6
		if room < utf8.UTFMax {
			o.buf.b = b
			o.buf.recount()
			o.writeOut()
			b = o.buf.b
			room = o.piece / 6
		}
		n := jsonCut(data, room)
		b = appendJSONChars(b, data[:n])
		data = data[n:]
	}
	b = append(b, '"', '}', '\n')
	if sse {
		b = append(b, '\n')
	}
	o.spill(b)
}

// appendCaptureTime appends t as RFC 3339 in UTC, with milliseconds (the
// capture times of output and events on the wire).
func appendCaptureTime(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
}

// raw writes p as it is (after what is buffered).
func (o *feedOut) raw(p []byte) {
	o.writeOut()
	if o.err == nil {
		o.err = o.f.write(p)
	}
}

func (o *feedOut) text(t string) { o.spill(append(o.bytes(), t...)) }

// flush writes what is buffered and flushes the response.
func (o *feedOut) flush() error {
	o.writeOut()
	if o.err == nil {
		o.err = o.f.flush()
	}
	return o.err
}

func (o *feedOut) release() {
	if o.buf != nil {
		o.buf.free(true)
		o.buf = nil
	}
}

// handleStreamWrite serves POST /streams/<pid>/stdin (or a custom
// stream's label): the raw body is written.
func (s *Server) handleStreamWrite(w http.ResponseWriter, r *http.Request) {
	pid, err := parsePid(r.PathValue("pid"))
	if err != nil {
		writeError(w, err)
		return
	}
	p, ok := s.processFor(w, r, pid, (*Key).CanWrite)
	if !ok {
		return
	}
	label := r.PathValue("label")
	if label != "stdin" && !p.IsCustomStream(label) {
		writeError(w, errNotFound("process %d has no writable stream %q (use stdin)", pid, label))
		return
	}
	// A place among the process's pending writes first, so that a refused
	// request never holds its body.
	slot, err := p.reserveWrite(label)
	if err != nil {
		writeError(w, err)
		return
	}
	defer slot.release()
	body, err := readBody(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := slot.write(r.Context(), body); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, map[string]any{"ok": true})
}

// handleWatch serves GET /watch[/a[/b[/c]]]: manager events matching the
// pattern a.b.c (every event without segments).
func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request) {
	if !allow(w, caller(r).CanManageAll()) {
		return
	}
	var segs []string
	for _, k := range []string{"a", "b", "c"} {
		if v := r.PathValue(k); v != "" {
			segs = append(segs, v)
		}
	}
	pattern := "."
	if len(segs) > 0 {
		pattern = strings.Join(segs, ".")
	}
	hb, err := heartbeatInterval(r)
	if err != nil {
		writeError(w, err)
		return
	}
	after, resume, err := resumePoint(r)
	if err != nil {
		writeError(w, err)
		return
	}
	backlog, gap, sub := s.m.Events().subscribeAfter(after, resume, 1024, pattern)
	defer sub.Unsubscribe()
	mode := r.URL.Query().Get("feed")
	var tick <-chan time.Time
	if hb > 0 {
		t := time.NewTicker(hb)
		defer t.Stop()
		tick = t.C
	}
	switch mode {
	case "", "longpoll":
		if len(backlog) > 0 { // what was missed since the resume point first
			writeWatchLongpoll(w, backlog[0])
			return
		}
		select {
		case ev, ok := <-sub.C:
			if !ok {
				writeError(w, Errorf(CodeUnavailable, 503, "event queue overflow"))
				return
			}
			writeWatchLongpoll(w, ev)
		case <-r.Context().Done():
		}
		return
	case "eventsource", "continuous":
	default:
		writeError(w, Errorf(CodeBadValue, 400, "feed: expected longpoll, continuous or eventsource, got %q", mode))
		return
	}
	sse := mode == "eventsource"
	ct := "application/x-ndjson"
	if sse {
		ct = "text/event-stream; charset=utf-8"
	}
	// The id of the last event of the backlog (0: none), so that a client
	// can tell what was already there from what comes next.
	var last uint64
	if len(backlog) > 0 {
		last = backlog[len(backlog)-1].seq
	}
	w.Header().Set("X-Gaffer-Last-Seq", strconv.FormatUint(last, 10))
	f := newFeed(w, ct)
	buf := appendWatchGap(nil, gap, sse)
	for _, ev := range backlog {
		buf = appendWatchEvent(buf, ev, sse)
	}
	if f.write(buf) != nil || f.flush() != nil {
		return
	}
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				if sse {
					f.write([]byte("event: overflow\ndata: {\"reason\": \"client too slow\"}\n\n"))
					f.flush()
				}
				return
			}
			buf = appendWatchEvent(buf[:0], ev, sse)
			if f.write(buf) != nil || f.flush() != nil {
				return
			}
		case <-tick:
			msg := []byte("\n")
			if sse {
				msg = []byte(": heartbeat\n\n")
			}
			if f.write(msg) != nil || f.flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}

// handleWStreams serves the legacy stdio websocket /wstreams/<pid>: text
// messages go to stdin, output of the first stream comes back as
// messages (binary when not UTF-8). Read-only use is allowed.
func (s *Server) handleWStreams(w http.ResponseWriter, r *http.Request) {
	pid, perr := parsePid(r.PathValue("pid"))
	var p *Process
	if perr == nil {
		p, _ = s.m.Process(pid)
	}
	conn, err := WSUpgrade(w, r, &WSOptions{CheckOrigin: s.checkOrigin, keepalive: s.wsKeepalive})
	if err != nil {
		return
	}
	fail := func(code string) {
		conn.WriteJSON(map[string]any{"error": code})
		conn.Close(WSClosePolicy, code)
	}
	switch {
	case perr != nil:
		fail("bad_value")
		return
	case p == nil:
		fail("not_found")
		return
	case !caller(r).CanRead(p.Job):
		fail("forbidden")
		return
	}
	st, _ := p.Stream("")
	canWrite := caller(r).CanWrite(p.Job) && p.HasStdin()
	done := make(chan struct{})
	if st != nil {
		go func() {
			defer close(done)
			defer func() {
				if v := recover(); v != nil {
					relayPanics.log(s.chLogger(), v, "a /wstreams relay")
					conn.CloseNow()
				}
			}()
			wstreamsForward(conn, st)
		}()
	} else {
		close(done)
	}
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			break
		}
		if !canWrite {
			conn.WriteJSON(map[string]any{"error": "forbidden_write"})
			continue
		}
		if err := p.Write("stdin", msg); err != nil {
			conn.WriteJSON(map[string]any{"error": AsError(err).Code})
		}
	}
	conn.CloseNow()
	<-done
}

// wstreamsForward relays the output of st to a /wstreams client, one
// message per chunk, reading the ring at the client's pace (what the ring
// lost while the client lagged is skipped: this legacy socket has no
// marker for it). A client that takes more than feedWriteTimeout to take
// one message is disconnected.
func wstreamsForward(conn *WSConn, st *Stream) {
	rd := st.reader(0, false)
	defer rd.Close()
	for {
		b := rd.read()
		for _, c := range b.chunks {
			op := WSText
			if !utf8.Valid(c.Data) {
				op = WSBinary
			}
			conn.SetWriteDeadline(time.Now().Add(feedWriteTimeout))
			if conn.WriteMessage(op, c.Data) != nil {
				b.release()
				conn.CloseNow()
				return
			}
		}
		eof := b.eof
		b.release()
		if eof {
			conn.SetWriteDeadline(time.Time{})
			conn.Close(WSCloseNormal, "process exited")
			return
		}
		select {
		case <-rd.ready():
		case <-conn.Done():
			return
		}
	}
}
