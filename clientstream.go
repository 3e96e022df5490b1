package gaffer

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The client's streaming helpers: manager events over /watch, process
// output over /streams (both as server-sent events), and the process I/O
// websocket /<pid>/channel (reference §4).

// clSSEEvent is one server-sent event.
type clSSEEvent struct {
	name string
	id   string
	data string
}

// clReadSSE reads server-sent events from r and calls fn for each; it
// returns when r ends or fn returns false.
func clReadSSE(r io.Reader, fn func(clSSEEvent) bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var ev clSSEEvent
	var data []string
	hasData := false
	for {
		line, err := br.ReadString('\n')
		if err != nil && line == "" {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if hasData {
				ev.data = strings.Join(data, "\n")
				if !fn(ev) {
					return nil
				}
			}
			ev, data, hasData = clSSEEvent{}, data[:0], false
			continue
		}
		if line[0] == ':' {
			continue // a comment (heartbeat)
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.name = value
		case "id":
			ev.id = value
		case "data":
			data = append(data, value)
			hasData = true
		}
	}
}

// openFeed opens a streaming GET (no request timeout: ctx bounds it).
func (c *Client) openFeed(ctx context.Context, path string, q url.Values, hdr http.Header) (*http.Response, error) {
	req, err := c.newRequest(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, clDecodeError(resp)
	}
	return resp, nil
}

// clWatchPath returns the /watch path for a pattern: at most three
// segments go in the path; longer patterns are filtered on the client.
func clWatchPath(pattern string) (path string, filter bool) {
	p := NormalizePattern(pattern)
	if p == "." {
		return "/watch", false
	}
	segs := strings.Split(p, ".")
	if len(segs) > 3 {
		segs, filter = segs[:3], true
	}
	return clPath(append([]string{"watch"}, segs...)...), filter
}

// Watch follows the manager events matching pattern (segment-prefix
// matching, "." or "" for every event; reference §7.2) over
// GET /watch/...?feed=eventsource. The channel is closed when ctx ends,
// when gafferd closes the feed (it stops, or the client fell too far
// behind) or on a read error; check ctx.Err() to tell them apart. Events
// carry the time gafferd published them (the time they were received
// from a gafferd that does not say).
func (c *Client) Watch(ctx context.Context, pattern string) (<-chan Event, error) {
	out, _, err := c.watch(ctx, pattern, false)
	return out, err
}

// FollowEvents is Watch starting with the events gafferd still holds
// (its last 1024 events, those matching pattern), returned as backlog,
// oldest first; live has what comes after.
func (c *Client) FollowEvents(ctx context.Context, pattern string) (backlog []Event, live <-chan Event, err error) {
	out, head, err := c.watch(ctx, pattern, true)
	if err != nil {
		return nil, nil, err
	}
	if head == 0 {
		return nil, out, nil
	}
	for ev := range out {
		backlog = append(backlog, ev)
		if ev.seq >= head {
			break
		}
	}
	return backlog, out, nil
}

// watch opens a /watch feed (with what the bus holds when backlog is
// set) and returns the id of the last event already held when it opened
// (X-Gaffer-Last-Seq; 0 when none, or from a gafferd that does not say).
func (c *Client) watch(ctx context.Context, pattern string, backlog bool) (<-chan Event, uint64, error) {
	path, filter := clWatchPath(pattern)
	q := url.Values{"feed": {"eventsource"}, "heartbeat": {"30"}}
	if backlog {
		q.Set("since", "0")
	}
	resp, err := c.openFeed(ctx, path, q, nil)
	if err != nil {
		return nil, 0, err
	}
	head, _ := strconv.ParseUint(resp.Header.Get("X-Gaffer-Last-Seq"), 10, 64)
	out := make(chan Event, 256)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		clReadSSE(resp.Body, func(e clSSEEvent) bool {
			if e.name == "overflow" {
				return false
			}
			var data map[string]any
			if json.Unmarshal([]byte(e.data), &data) != nil {
				return true
			}
			name := e.name
			if n, ok := data["event"].(string); ok && n != "" {
				name = n
			}
			if data == nil {
				data = map[string]any{}
			}
			if name == "gap" {
				return true // events lost before these: nothing to show
			}
			if filter && !MatchPattern(pattern, name) {
				return true
			}
			ev := Event{Name: name, Data: data, Time: time.Now()}
			if ts, ok := data["time"].(string); ok {
				if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
					ev.Time = t
					delete(data, "time")
				}
			}
			ev.seq, _ = strconv.ParseUint(e.id, 10, 64)
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	return out, head, nil
}

// OutputChunk is one piece of a process's output from StreamOutput or
// FollowOutput. Gap, when set, says that chunks were lost before this
// point (the ring buffer no longer held them); Data is then empty.
type OutputChunk struct {
	Seq  uint64 // sequence number (resume after it with since = Seq)
	Data []byte
	Gap  *Gap
	// Time is when gafferd captured the chunk (FollowOutput; zero from
	// StreamOutput, or from a gafferd that does not say).
	Time time.Time
}

// StreamOutput follows one output stream of a process (label "" is its
// first) over GET /streams/<pid>/<label>?feed=eventsource. since < 0
// gives only new output; since = 0 starts with everything the ring buffer
// still holds; since = N resumes after chunk N. The channel is closed when
// the process's stream ends (it exited), when ctx ends or on an error.
// Output travels as SSE text, so a lone '\r' arrives as '\n'.
func (c *Client) StreamOutput(ctx context.Context, pid int, label string, since int64) (<-chan OutputChunk, error) {
	out, _, err := c.streamOutput(ctx, pid, label, since, false)
	return out, err
}

// FollowOutput is StreamOutput with each chunk's capture time (output
// travels as JSON: text, where bytes that are not UTF-8 arrive as
// U+FFFD). With since >= 0, what the ring buffer held after since when
// the feed opened is returned as backlog (gap markers included); live
// has what comes after.
func (c *Client) FollowOutput(ctx context.Context, pid int, label string, since int64) (backlog []OutputChunk, live <-chan OutputChunk, err error) {
	out, head, err := c.streamOutput(ctx, pid, label, since, true)
	if err != nil {
		return nil, nil, err
	}
	if since < 0 || head <= uint64(since) {
		return nil, out, nil
	}
	for ch := range out {
		backlog = append(backlog, ch)
		if ch.Seq >= head || ch.Gap != nil && ch.Gap.To >= head {
			break
		}
	}
	return backlog, out, nil
}

// streamOutput opens an output feed, raw or as JSON, and returns the
// sequence number of the last chunk written when it opened
// (X-Gaffer-Last-Seq; 0 from a gafferd that does not say).
func (c *Client) streamOutput(ctx context.Context, pid int, label string, since int64, asJSON bool) (<-chan OutputChunk, uint64, error) {
	if label == "" {
		info, err := c.ProcessInfo(ctx, pid)
		if err != nil {
			return nil, 0, err
		}
		if len(info.RedirectOutput) == 0 {
			return nil, 0, Errorf(CodeNotRedirected, 400, "process %d has no redirected output", pid)
		}
		label = info.RedirectOutput[0]
	}
	q := url.Values{"feed": {"eventsource"}, "heartbeat": {"30"}}
	if since >= 0 {
		q.Set("since", strconv.FormatInt(since, 10))
	}
	if asJSON {
		q.Set("format", "json")
	}
	resp, err := c.openFeed(ctx, clPath("streams", strconv.Itoa(pid), label), q, nil)
	if err != nil {
		return nil, 0, err
	}
	head, _ := strconv.ParseUint(resp.Header.Get("X-Gaffer-Last-Seq"), 10, 64)
	out := make(chan OutputChunk, 256)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		clReadSSE(resp.Body, func(e clSSEEvent) bool {
			var ch OutputChunk
			switch e.name {
			case "eof":
				return false
			case "gap":
				var g Gap
				if json.Unmarshal([]byte(e.data), &g) != nil {
					return true
				}
				ch.Gap = &g
			case "chunk":
				if !asJSON {
					ch.Data = []byte(e.data) // a stream labelled "chunk"
					ch.Seq, _ = strconv.ParseUint(e.id, 10, 64)
					break
				}
				var m struct {
					Seq  uint64 `json:"seq"`
					Time string `json:"time"`
					Data string `json:"data"`
				}
				if json.Unmarshal([]byte(e.data), &m) != nil {
					return true
				}
				ch.Seq, ch.Data = m.Seq, []byte(m.Data)
				ch.Time, _ = time.Parse(time.RFC3339Nano, m.Time)
			default:
				ch.Data = []byte(e.data)
				ch.Seq, _ = strconv.ParseUint(e.id, 10, 64)
			}
			select {
			case out <- ch:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	return out, head, nil
}

// Modes of the process I/O websocket (reference §4.1).
const (
	ProcessRead  = 1 // receive the process's output
	ProcessWrite = 2 // send input
)

// ProcessConn is a connection to the I/O websocket of a process
// (/<pid>/channel[/<stream>], reference §4), made by DialProcess.
type ProcessConn struct {
	ws      *WSConn
	out     chan []byte
	mu      sync.Mutex
	pending map[string]chan error
	err     error
	done    chan struct{}
}

// wsURL returns the websocket URL of path for this client.
func (c *Client) wsURL(path string, q url.Values) string {
	if c.unix != "" {
		u := "ws+unix://" + c.unix + ":" + c.base.Path + path
		if q != nil {
			u += "?" + q.Encode()
		}
		return u
	}
	u := *c.base
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path = c.base.Path + path
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// dialWS opens a websocket to path, with the key in X-Api-Key.
func (c *Client) dialWS(ctx context.Context, path string, q url.Values) (*WSConn, error) {
	hdr := http.Header{}
	if c.apiKey != "" {
		hdr.Set("X-Api-Key", c.apiKey)
	}
	dctx := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	ws, resp, err := WSDial(dctx, c.wsURL(path, q), hdr, c.tlsConf)
	if err != nil {
		if resp != nil && resp.StatusCode >= 300 {
			defer resp.Body.Close()
			return nil, clDecodeError(resp)
		}
		if clIsUnreachable(err) {
			return nil, &UnreachableError{Address: c.addr, Err: err}
		}
		return nil, fmt.Errorf("gafferd at %s: websocket %s: %s", c.addr, path, clShortCause(err))
	}
	return ws, nil
}

// clFrame builds a V1 frame: "V1 <type> <id>\x00<body>".
func clFrame(typ, id string, body []byte) []byte {
	b := make([]byte, 0, len(typ)+len(id)+len(body)+5)
	b = append(b, "V1 "...)
	b = append(b, typ...)
	b = append(b, ' ')
	b = append(b, id...)
	b = append(b, 0)
	return append(b, body...)
}

// clParseFrame splits a V1 frame.
func clParseFrame(msg []byte) (typ, id string, body []byte, ok bool) {
	head, rest, found := strings.Cut(string(msg), "\x00")
	if !found {
		return "", "", nil, false
	}
	f := strings.Fields(head)
	if len(f) != 3 || f[0] != "V1" {
		return "", "", nil, false
	}
	return f[1], f[2], []byte(rest), true
}

// clFrameError decodes the body of an error frame ({"error": code,
// "errno": N}).
func clFrameError(body []byte) *Error {
	var m struct {
		Error  string `json:"error"`
		Reason string `json:"reason"`
		Errno  int    `json:"errno"`
	}
	if json.Unmarshal(body, &m) != nil || m.Error == "" {
		return Errorf(CodeInternal, 500, "%s", strings.TrimSpace(string(body)))
	}
	if m.Errno == 0 {
		m.Errno = 500
	}
	reason := m.Reason
	if reason == "" {
		reason = clFrameReason(m.Error)
	}
	return &Error{Code: m.Error, Errno: m.Errno, Reason: reason}
}

func clFrameReason(code string) string {
	switch code {
	case "EPERM":
		return "the process does not allow this (no redirected output, or no stdin)"
	case "ENOENT":
		return "no such stream"
	case "FORBIDDEN":
		return "the API key may not do this"
	case "EIO":
		return "writing to the process failed"
	}
	return code
}

func clFrameID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// DialProcess opens the I/O websocket of a process: stream "" is its
// standard streams (first output label, stdin), or a redirect_output or
// custom_streams label; mode is ProcessRead, ProcessWrite or both. Errors
// gafferd sends when it refuses (unknown pid or stream, no stdin…) come
// back as *Error.
func (c *Client) DialProcess(ctx context.Context, pid int, stream string, mode int) (*ProcessConn, error) {
	if mode&(ProcessRead|ProcessWrite) == 0 {
		return nil, errBadRequest("mode: expected ProcessRead, ProcessWrite or both")
	}
	path := "/" + strconv.Itoa(pid) + "/channel"
	if stream != "" {
		path += clPath(stream)
	}
	ws, err := c.dialWS(ctx, path, url.Values{"mode": {strconv.Itoa(mode)}})
	if err != nil {
		return nil, err
	}
	pc := &ProcessConn{ws: ws, out: make(chan []byte, 256), pending: map[string]chan error{}, done: make(chan struct{})}
	go pc.readLoop()
	return pc, nil
}

func (pc *ProcessConn) readLoop() {
	defer close(pc.done)
	defer close(pc.out)
	var err error
read:
	for {
		var msg []byte
		_, msg, err = pc.ws.ReadMessage()
		if err != nil {
			break
		}
		typ, id, body, ok := clParseFrame(msg)
		if !ok {
			continue
		}
		switch typ {
		case "message":
			pc.out <- body
		case "response", "error":
			var res error
			if typ == "error" {
				res = clFrameError(body)
			}
			pc.mu.Lock()
			ch := pc.pending[id]
			delete(pc.pending, id)
			pc.mu.Unlock()
			if ch != nil {
				ch <- res
			} else if typ == "error" {
				// Not an answer: gafferd refused the connection.
				err = res
				pc.ws.Close(WSCloseNormal, "")
				break read
			}
		}
	}
	var ce *WSCloseError
	if errors.As(err, &ce) && (ce.Code == WSCloseNormal || ce.Code == WSCloseGoingAway) {
		err = nil
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	pc.mu.Lock()
	if pc.err == nil {
		pc.err = err
	}
	for id, ch := range pc.pending {
		if err != nil {
			ch <- err
		} else {
			ch <- errors.New("the connection closed before gafferd answered")
		}
		delete(pc.pending, id)
	}
	pc.mu.Unlock()
}

// Output delivers the chunks of output the process writes (mode
// ProcessRead). It is closed when the connection ends: the process
// exited, gafferd refused or closed it, or Close was called.
func (pc *ProcessConn) Output() <-chan []byte { return pc.out }

// Err returns why the connection ended: nil for a normal close.
func (pc *ProcessConn) Err() error {
	<-pc.done
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.err
}

// Write sends data to the process (mode ProcessWrite) and waits until
// gafferd has written it.
func (pc *ProcessConn) Write(ctx context.Context, data []byte) error {
	id := clFrameID()
	ch := make(chan error, 1)
	pc.mu.Lock()
	if pc.err != nil {
		pc.mu.Unlock()
		return pc.err
	}
	pc.pending[id] = ch
	pc.mu.Unlock()
	op := WSText
	if !clValidUTF8(data) {
		op = WSBinary
	}
	if err := pc.ws.WriteMessage(op, clFrame("message", id, data)); err != nil {
		pc.mu.Lock()
		delete(pc.pending, id)
		pc.mu.Unlock()
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-pc.done:
		select {
		case err := <-ch:
			return err
		default:
		}
		if err := pc.Err(); err != nil {
			return err
		}
		return errors.New("the connection closed before gafferd answered")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the connection.
func (pc *ProcessConn) Close() error {
	err := pc.ws.Close(WSCloseNormal, "")
	<-pc.done
	return err
}

func clValidUTF8(b []byte) bool { return utf8.Valid(b) }

// Send writes data to a process's stdin (stream "") or custom stream over
// the I/O websocket, and waits until gafferd has written it.
func (c *Client) Send(ctx context.Context, pid int, stream string, data []byte) error {
	pc, err := c.DialProcess(ctx, pid, stream, ProcessWrite)
	if err != nil {
		return err
	}
	defer pc.Close()
	return pc.Write(ctx, data)
}

// Recv copies a process's output (stream "" is its first output label) to
// w until the process exits, the connection closes or ctx ends (which is
// not an error).
func (c *Client) Recv(ctx context.Context, pid int, stream string, w io.Writer) error {
	pc, err := c.DialProcess(ctx, pid, stream, ProcessRead)
	if err != nil {
		return err
	}
	defer pc.Close()
	for {
		select {
		case b, ok := <-pc.Output():
			if !ok {
				return pc.Err()
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
}
