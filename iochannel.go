package gaffer

// The process I/O websocket (reference §4): /<pid>/channel[/<stream>].
//
// Every message, both ways, is one frame "V1 <type> <id>\x00<body>". The
// handler's goroutine reads the client's frames and writes their bodies to
// the process; one forwarder goroutine relays the process's output, and the
// shared chWriter sends (never blocking the process: a client that falls
// behind is disconnected with 1008). Once the process has exited and all of
// its output has been sent, the socket is closed normally (1000).

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// iochE2 formats an error body the way the original does:
// {"error": "<code>", "errno": <n>}.
func iochE2(code string, errno int) string {
	return fmt.Sprintf(`{"error": %q, "errno": %d}`, code, errno)
}

// iochFrame builds one V1 frame.
func iochFrame(typ, id string, body []byte) []byte {
	b := make([]byte, 0, 4+len(typ)+len(id)+len(body)+2)
	b = append(b, "V1 "...)
	b = append(b, typ...)
	b = append(b, ' ')
	b = append(b, id...)
	b = append(b, 0)
	return append(b, body...)
}

// iochOp is the websocket message type of a frame: text when it is valid
// UTF-8, binary otherwise.
func iochOp(frame []byte) WSOpcode {
	if utf8.Valid(frame) {
		return WSText
	}
	return WSBinary
}

// iochParse splits a client frame. The header ends at the first NUL; the
// body is everything after it, NUL bytes included.
func iochParse(data []byte) (typ, id string, body []byte, ok bool) {
	head, body, found := bytes.Cut(data, []byte{0})
	if !found {
		return "", "", nil, false
	}
	f := strings.Split(string(head), " ")
	if len(f) != 3 || f[0] != "V1" || f[1] == "" || f[2] == "" {
		return "", "", nil, false
	}
	return f[1], f[2], body, true
}

// iochID returns a fresh frame id: 32 hex characters.
func iochID() string { return string(appendIochID(nil)) }

// appendIochID appends a fresh frame id.
func appendIochID(b []byte) []byte {
	const hexDigits = "0123456789abcdef"
	for range 2 {
		v := rand.Uint64()
		for j := 0; j < 8; j++ {
			x := byte(v >> (8 * j))
			b = append(b, hexDigits[x>>4], hexDigits[x&0xf])
		}
	}
	return b
}

// iochRefuse sends an error frame on a socket that has no writer yet and
// closes it.
func iochRefuse(ws *WSConn, body string, code int, reason string) {
	f := iochFrame("error", "gaffer_error", []byte(body))
	ws.WriteMessage(iochOp(f), f)
	ws.Close(code, reason)
}

// serveIOChannel runs the V1 frame protocol of reference §4 for process
// pid and stream ("" = default stdio). The query's mode is a bitmask: 1
// reads the output, 2 writes the input (default 3). ?since=N also sends
// the output after sequence number N still held by the ring buffer; what
// is gone is reported by a frame "V1 error gap\x00{"from": N, "to": M}".
func (s *Server) serveIOChannel(w http.ResponseWriter, r *http.Request, pid int, stream string) {
	q := r.URL.Query()
	mode := 3
	if v := q.Get("mode"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 3 {
			writeError(w, Errorf(CodeBadValue, 400, "mode must be 1 (read), 2 (write) or 3 (both), not %q", v))
			return
		}
		mode = n
	}
	var since uint64
	backlog := false
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, Errorf(CodeBadValue, 400, "since must be a sequence number, not %q", v))
			return
		}
		since, backlog = n, true
	}
	ws, err := WSUpgrade(w, r, &WSOptions{CheckOrigin: s.checkOrigin, keepalive: s.wsKeepalive})
	if err != nil {
		return
	}
	p, ok := s.m.Process(pid)
	if !ok {
		iochRefuse(ws, iochE2(CodeNotFound, 404), WSCloseNormal, "process not found")
		return
	}
	key, needAuth := s.chInitialKey(r)
	if needAuth {
		if key = s.iochAuthenticate(ws); key == nil {
			return
		}
	}

	// Attach (reference §4.3, with permission checks on named streams).
	readable, writable := mode&1 != 0, mode&2 != 0
	var st *Stream
	target := "" // where input goes: "stdin" or a custom stream
	refuse := func(code string, errno int) {
		iochRefuse(ws, iochE2(code, errno), WSClosePolicy, strings.ToLower(code))
	}
	isCustom := stream != "" && p.IsCustomStream(stream)
	if stream != "" && !isCustom {
		if _, ok := p.Stream(stream); !ok {
			refuse("ENOENT", 404)
			return
		}
	}
	if readable {
		if !key.CanRead(p.Job) {
			refuse("FORBIDDEN", 403)
			return
		}
		if st, ok = p.Stream(stream); !ok {
			refuse("EPERM", 403) // no redirect_output
			return
		}
	}
	if writable {
		if !key.CanWrite(p.Job) {
			refuse("FORBIDDEN", 403)
			return
		}
		if isCustom {
			target = stream
		} else if p.HasStdin() {
			target = "stdin"
		} else {
			refuse("EPERM", 403) // no redirect_input
			return
		}
	}

	wr := chNewWriter(ws, s.chLogger())
	reply := func(typ, id, body string) {
		f := iochFrame(typ, id, []byte(body))
		wr.send(iochOp(f), f)
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	var rd *StreamSub
	if st != nil {
		// Positioned before any input is taken, so that the answer to the
		// first write is not missed.
		rd = st.reader(since, backlog)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		iochForward(p, rd, wr, quit)
	}()
	defer func() {
		close(quit)
		wg.Wait()
		wr.stop()
		ws.Close(WSCloseNormal, "")
		<-wr.done
	}()

	first := true
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		typ, id, body, ok := iochParse(data)
		if !ok {
			reply("error", "invalid_frame", iochE2("invalid_frame", 400))
			continue
		}
		if typ != "message" {
			continue // responses and errors from the client need no answer
		}
		if first && bytes.HasPrefix(body, []byte("AUTH:")) {
			// An AUTH frame when no in-band AUTH is needed (keys off, or a
			// header key) is acknowledged, never written to the process.
			first = false
			if !s.requireKey || s.iochSameKey(key, string(body)) {
				reply("response", id, "OK")
			} else {
				reply("error", id, iochE2("AUTH_REQUIRED", 403))
			}
			continue
		}
		first = false
		switch {
		case target == "":
			reply("error", id, iochE2("EPERM", 403))
		default:
			if err := p.Write(target, body); err != nil {
				e := AsError(err)
				reply("error", id, iochE2(e.Code, e.Errno))
			} else {
				reply("response", id, "OK")
			}
		}
	}
}

// iochSameKey reports whether an AUTH:<key> message names key.
func (s *Server) iochSameKey(key *Key, msg string) bool {
	k, ok := s.chLookupAuth(msg)
	return ok && key != nil && k.Key == key.Key
}

// iochAuthenticate reads the first frame, which must be a message whose
// body is AUTH:<key>, and answers it; on failure it sends AUTH_REQUIRED
// and closes with 1008.
func (s *Server) iochAuthenticate(ws *WSConn) *Key {
	timer := time.AfterFunc(chAuthTimeout, func() { ws.Close(WSClosePolicy, "authentication timeout") })
	defer timer.Stop()
	_, data, err := ws.ReadMessage()
	if err != nil {
		ws.CloseNow()
		return nil
	}
	typ, id, body, ok := iochParse(data)
	errno := 401
	if ok && typ == "message" && bytes.HasPrefix(body, []byte("AUTH:")) {
		if k, found := s.chLookupAuth(string(body)); found {
			f := iochFrame("response", id, []byte("OK"))
			if ws.WriteMessage(iochOp(f), f) != nil {
				ws.CloseNow()
				return nil
			}
			return k
		}
		errno = 403
	}
	iochRefuse(ws, iochE2("AUTH_REQUIRED", errno), WSClosePolicy, "authentication failed")
	return nil
}

// iochForward relays the output of rd (when reading) as message frames, at
// the client's pace (chstream.go), then, once the process has exited and
// its output is drained, closes the socket normally after what is queued.
func iochForward(p *Process, rd *StreamSub, wr *chWriter, quit <-chan struct{}) {
	if rd != nil {
		defer rd.Close()
		if !relayFrames(rd, wr, quit, iochEncoder{}) {
			return
		}
	}
	for _, c := range []<-chan struct{}{p.Exited(), p.IODone()} {
		select {
		case <-quit:
			return
		case <-c:
		}
	}
	wr.closeAfter(WSCloseNormal, "process exited")
}

// iochEncoder encodes output as V1 frames: "V1 message <id>\x00<chunk>"
// (binary when the chunk is not UTF-8), and a gap as "V1 error
// gap\x00{"from": N, "to": M}".
type iochEncoder struct{}

func (iochEncoder) chunk(b []byte, c Chunk) ([]byte, WSOpcode) {
	b = append(appendIochID(append(b, "V1 message "...)), 0)
	b = append(b, c.Data...)
	if utf8.Valid(c.Data) {
		return b, WSText
	}
	return b, WSBinary
}

func (iochEncoder) gap(b []byte, g Gap) ([]byte, WSOpcode) {
	return fmt.Appendf(append(b, "V1 error gap\x00"...), `{"from": %d, "to": %d}`, g.From, g.To), WSText
}
