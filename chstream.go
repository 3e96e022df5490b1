package gaffer

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Relaying a stream over a websocket's writer (the control channel's
// STREAM topics, the process I/O websocket): one message per chunk, at the
// client's pace. A batch read from the ring is encoded into one pooled
// buffer, its messages queued on the connection's chWriter, and the next
// batch is read only once the one before the last has been written: a
// connection never holds more than two batches, one when the readers'
// budget is short, however slow its client, and what its client could not
// take in time comes back from the ring (or as a gap) instead of piling up.

// frameEncoder appends the message of a chunk, or of a gap, to b and
// returns the message's opcode.
type frameEncoder interface {
	chunk(b []byte, c Chunk) ([]byte, WSOpcode)
	gap(b []byte, g Gap) ([]byte, WSOpcode)
}

// relayFrame is one message of a batch: its opcode and where it ends in
// the batch's buffer.
type relayFrame struct {
	op  WSOpcode
	end int
}

// queuedBatch is a batch of messages handed to the writer.
type queuedBatch struct {
	buf  *relayBuf
	sent chan struct{} // closed once its last message is written
}

// relayFrames relays rd through wr until the stream has ended and all of
// it was queued (true), or quit is closed or the writer stops (false).
// A panic (a bug) is logged and closes the connection with 1011; the
// stream and the other clients go on.
func relayFrames(rd *StreamSub, wr *chWriter, quit <-chan struct{}, enc frameEncoder) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			ok = false
			relayPanics.log(wr.log, v, "a websocket relay")
			wr.closeAfter(WSCloseInternal, "internal error")
		}
	}()
	var queued []queuedBatch
	var frames []relayFrame
	// A transport that queues what it is given (SockJS) is given a batch
	// only once it has room and the batch before has gone into it, so
	// that a slow client's connection holds its queue and nothing more.
	windowed, _ := wr.ws.(chWindowed)
	window := 2
	if windowed != nil {
		window = 1
	}
	defer func() {
		for _, q := range queued {
			select {
			case <-q.sent:
				q.buf.free(true)
			default:
				q.buf.free(false) // the writer may still read it
			}
		}
	}()
	for {
		// Give back what was written; wait while the window is full.
	window:
		for len(queued) > 0 {
			q := queued[0]
			if len(queued) >= window || subscriberMemory.short() {
				select {
				case <-q.sent:
				case <-quit:
					return false
				case <-wr.quit:
					return false
				}
			} else {
				select {
				case <-q.sent:
				default:
					break window
				}
			}
			q.buf.free(true)
			queued = queued[1:]
		}
		if windowed != nil {
			select {
			case <-windowed.room():
			case <-quit:
				return false
			case <-wr.quit:
				return false
			}
		}
		b := rd.read()
		if b.empty() {
			if b.eof {
				return true
			}
			var written <-chan struct{}
			if len(queued) > 0 {
				written = queued[0].sent // an idle relay holds no buffer
			}
			select {
			case <-rd.ready():
			case <-written:
			case <-quit:
				return false
			case <-wr.quit:
				return false
			}
			continue
		}
		buf := getRelayBuf(b.size() + b.size()/8 + 256*(len(b.chunks)+1))
		frames = frames[:0]
		var op WSOpcode
		if b.gap != nil {
			buf.b, op = enc.gap(buf.b, *b.gap)
			frames = append(frames, relayFrame{op, len(buf.b)})
		}
		for _, c := range b.chunks {
			buf.b, op = enc.chunk(buf.b, c)
			frames = append(frames, relayFrame{op, len(buf.b)})
		}
		eof := b.eof
		b.release()
		buf.recount()
		q := queuedBatch{buf: buf, sent: make(chan struct{})}
		start := 0
		for i, f := range frames {
			fr := chFrame{op: f.op, data: buf.b[start:f.end:f.end]}
			if i == len(frames)-1 {
				fr.sent = q.sent
			}
			if !wr.sendFrame(fr) {
				buf.free(false)
				return false
			}
			start = f.end
		}
		queued = append(queued, q)
		if eof {
			return true
		}
	}
}

// chWindowed is a transport that queues the messages it is given (a
// SockJS session): room returns a channel closed once it has room for
// more (at once when it has, or when it is closed).
type chWindowed interface {
	room() <-chan struct{}
}

// chStreamEncoder encodes the STREAM events of one control channel topic,
// as chStreamData inside {"data": …, "event": "gaffer:event"}, time
// included.
type chStreamEncoder struct {
	prefix []byte // up to the chunk's data
	gapFor func(g Gap) any
}

func (e *chStreamEncoder) chunk(b []byte, c Chunk) ([]byte, WSOpcode) {
	b = appendJSONString(append(b, e.prefix...), c.Data)
	b = strconv.AppendUint(append(b, `,"seq":`...), c.Seq, 10)
	b = appendCaptureTime(append(b, `,"time":"`...), c.Time)
	return append(b, `"},"event":"gaffer:event"}`...), WSText
}

func (e *chStreamEncoder) gap(b []byte, g Gap) ([]byte, WSOpcode) {
	js, _ := json.Marshal(map[string]any{"event": "gaffer:event", "data": e.gapFor(g)})
	return append(b, js...), WSText
}

// appendJSONString appends s as a JSON string, exactly as encoding/json
// encodes a Go string (HTML characters, U+2028 and U+2029 escaped, invalid
// UTF-8 replaced by \ufffd), without the conversion to a string.
func appendJSONString(b, s []byte) []byte {
	return append(appendJSONChars(append(b, '"'), s), '"')
}

// appendJSONChars appends s as the inside of a JSON string (no quotes).
// Pieces of s cut by jsonCut encode, end to end, as s does.
func appendJSONChars(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(append(b, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(b, s[start:]...)
}

// jsonCut returns where to cut s so that its first part has at most n
// bytes (at least one rune when n < utf8.UTFMax) and the cut falls between
// two of the runes appendJSONChars reads: never inside a UTF-8 sequence,
// so that the parts encode as the whole does.
func jsonCut(s []byte, n int) int {
	if n >= len(s) {
		return len(s)
	}
	n = max(n, utf8.UTFMax)
	if n >= len(s) {
		return len(s)
	}
	// The last byte that starts a sequence, within a rune's length before
	// the cut: when the bytes from it to the cut are not a whole rune (or
	// an invalid one), the rune goes to the next part.
	for i := n; i > n-utf8.UTFMax && i >= 0; i-- {
		if utf8.RuneStart(s[i]) {
			if i < n && !utf8.FullRune(s[i:n]) {
				return i
			}
			break
		}
	}
	return n
}

// jsonSafe tells the ASCII bytes that appendJSONString copies as they are.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()
