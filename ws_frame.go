package gaffer

// Websocket framing (RFC 6455 §5): frame headers, payloads, masking, close
// payloads.

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Frame opcodes.
const (
	wsOpContinuation = 0x0
	wsOpText         = 0x1
	wsOpBinary       = 0x2
	wsOpClose        = 0x8
	wsOpPing         = 0x9
	wsOpPong         = 0xA
)

// wsReadChunk bounds how much memory one read step commits to before the
// bytes actually arrive, so a forged length cannot make us allocate it all.
const wsReadChunk = 1 << 20

// wsFrameHeader is a parsed frame header.
type wsFrameHeader struct {
	fin    bool
	op     byte
	masked bool
	key    [4]byte
	length int64
}

// wsProtoError is a protocol violation found while reading: the connection
// must be failed with code. skip is the number of payload bytes of the
// offending frame still unread (-1 if the stream is out of sync).
type wsProtoError struct {
	code   int
	reason string
	skip   int64
}

func (e *wsProtoError) Error() string {
	return "websocket: protocol error " + strconv.Itoa(e.code) + ": " + e.reason
}

// readFrameHeader reads and checks one frame header. Protocol violations
// are returned as *wsProtoError; the header is filled in as far as it was
// read.
func (c *WSConn) readFrameHeader() (wsFrameHeader, error) {
	var h wsFrameHeader
	b := c.rhdr[:2]
	if _, err := io.ReadFull(c.br, b); err != nil {
		return h, err
	}
	h.fin = b[0]&0x80 != 0
	rsv := b[0] & 0x70
	h.op = b[0] & 0x0f
	h.masked = b[1]&0x80 != 0
	h.length = int64(b[1] & 0x7f)
	switch h.length {
	case 126:
		b = c.rhdr[2:4]
		if _, err := io.ReadFull(c.br, b); err != nil {
			return h, wsUnexpectedEOF(err)
		}
		h.length = int64(binary.BigEndian.Uint16(b))
	case 127:
		b = c.rhdr[2:10]
		if _, err := io.ReadFull(c.br, b); err != nil {
			return h, wsUnexpectedEOF(err)
		}
		u := binary.BigEndian.Uint64(b)
		if u>>63 != 0 {
			return h, &wsProtoError{WSCloseProtocolError, "frame length has its most significant bit set", -1}
		}
		h.length = int64(u)
	}
	if h.masked {
		b = c.rhdr[10:14]
		if _, err := io.ReadFull(c.br, b); err != nil {
			return h, wsUnexpectedEOF(err)
		}
		h.key = [4]byte(b)
	}
	reason := ""
	switch {
	case rsv != 0:
		reason = "reserved bits set without a negotiated extension"
	case h.op > wsOpBinary && h.op < wsOpClose || h.op > wsOpPong:
		reason = "unknown opcode " + strconv.Itoa(int(h.op))
	case h.op >= wsOpClose && !h.fin:
		reason = "fragmented control frame"
	case h.op >= wsOpClose && h.length > 125:
		reason = "control frame longer than 125 bytes"
	case c.isServer && !h.masked:
		reason = "unmasked frame from the client"
	case !c.isServer && h.masked:
		reason = "masked frame from the server"
	default:
		return h, nil
	}
	return h, &wsProtoError{WSCloseProtocolError, reason, h.length}
}

func wsUnexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readPayload appends the frame's payload to dst, unmasked.
func (c *WSConn) readPayload(dst []byte, h wsFrameHeader) ([]byte, error) {
	start := len(dst)
	for n := h.length; n > 0; {
		chunk := int(min(n, wsReadChunk))
		dst = slices.Grow(dst, chunk)
		end := len(dst) + chunk
		if _, err := io.ReadFull(c.br, dst[len(dst):end]); err != nil {
			return dst, wsUnexpectedEOF(err)
		}
		dst = dst[:end]
		n -= int64(chunk)
	}
	if h.masked {
		wsMaskBytes(h.key, 0, dst[start:])
	}
	return dst, nil
}

// discard skips n bytes of the stream.
func (c *WSConn) discard(n int64) error {
	for n > 0 {
		step := int(min(n, 1<<30))
		if _, err := c.br.Discard(step); err != nil {
			return err
		}
		n -= int64(step)
	}
	return nil
}

// drain skips skip bytes, then reads and drops frames until the peer's close
// frame, an error or the deadline. A close frame found is recorded (as the
// read error if none is set yet). The caller holds rlock.
func (c *WSConn) drain(skip int64, deadline time.Time) {
	c.conn.SetReadDeadline(deadline)
	if c.discard(skip) != nil {
		return
	}
	for {
		h, err := c.readFrameHeader()
		if err != nil {
			pe, ok := err.(*wsProtoError)
			if !ok || pe.skip < 0 || c.discard(pe.skip) != nil {
				return
			}
			continue
		}
		if h.op != wsOpClose {
			if c.discard(h.length) != nil {
				return
			}
			continue
		}
		payload, err := c.readPayload(c.rctl[:0], h)
		if err != nil {
			return
		}
		c.closeRecvOnce.Do(func() { close(c.closeRecv) })
		if c.readErr == nil {
			code, reason, perr := wsParseClose(payload)
			if perr != nil {
				code, reason = perr.code, perr.reason
			}
			c.readErr = &WSCloseError{Code: code, Reason: reason}
		}
		return
	}
}

// writeFrameLocked writes one final frame and flushes it. data is never
// modified. The caller holds wmu.
func (c *WSConn) writeFrameLocked(op byte, data []byte) error {
	h := c.whdr[:]
	h[0] = 0x80 | op
	n := len(data)
	i := 2
	switch {
	case n <= 125:
		h[1] = byte(n)
	case n <= 0xffff:
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
		i = 4
	default:
		h[1] = 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
		i = 10
	}
	var err error
	if c.isServer {
		if _, err = c.bw.Write(h[:i]); err == nil {
			_, err = c.bw.Write(data)
		}
	} else {
		var key [4]byte
		binary.LittleEndian.PutUint32(key[:], uint32(c.wrng.Uint64()))
		h[1] |= 0x80
		copy(h[i:], key[:])
		if _, err = c.bw.Write(h[:i+4]); err == nil {
			err = c.writeMasked(key, data)
		}
	}
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		c.writeErr = fmt.Errorf("websocket: write: %w", err)
		return c.writeErr
	}
	return nil
}

// writeMasked copies data masked into the write buffer, one buffer-full at
// a time, without allocating.
func (c *WSConn) writeMasked(key [4]byte, data []byte) error {
	pos := 0
	for len(data) > 0 {
		buf := c.bw.AvailableBuffer()
		if cap(buf) == 0 {
			if err := c.bw.Flush(); err != nil {
				return err
			}
			buf = c.bw.AvailableBuffer()
		}
		n := min(cap(buf), len(data))
		buf = append(buf, data[:n]...)
		pos = wsMaskBytes(key, pos, buf)
		if _, err := c.bw.Write(buf); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// wsMaskBytes XORs b in place with key, b[0] being at offset pos of the
// payload (RFC 6455 §5.3), eight bytes at a time. It returns the key offset
// of the byte after b.
func wsMaskBytes(key [4]byte, pos int, b []byte) int {
	var k [4]byte
	for j := range k {
		k[j] = key[(pos+j)&3]
	}
	k32 := uint64(binary.LittleEndian.Uint32(k[:]))
	k64 := k32 | k32<<32
	i := 0
	for ; len(b)-i >= 32; i += 32 {
		w := b[i : i+32 : i+32]
		binary.LittleEndian.PutUint64(w[0:], binary.LittleEndian.Uint64(w[0:])^k64)
		binary.LittleEndian.PutUint64(w[8:], binary.LittleEndian.Uint64(w[8:])^k64)
		binary.LittleEndian.PutUint64(w[16:], binary.LittleEndian.Uint64(w[16:])^k64)
		binary.LittleEndian.PutUint64(w[24:], binary.LittleEndian.Uint64(w[24:])^k64)
	}
	for ; len(b)-i >= 8; i += 8 {
		w := b[i : i+8 : i+8]
		binary.LittleEndian.PutUint64(w, binary.LittleEndian.Uint64(w)^k64)
	}
	for ; i < len(b); i++ {
		b[i] ^= k[i&3]
	}
	return (pos + len(b)) & 3
}

// wsParseClose decodes a close frame's payload: an empty one means 1005
// (no status); otherwise the code must be one that may be sent and the
// reason valid UTF-8.
func wsParseClose(p []byte) (int, string, *wsProtoError) {
	switch {
	case len(p) == 0:
		return WSCloseNoStatus, "", nil
	case len(p) == 1:
		return 0, "", &wsProtoError{WSCloseProtocolError, "close frame with a 1-byte payload", -1}
	}
	code := int(binary.BigEndian.Uint16(p))
	if !wsValidCloseCode(code) {
		return 0, "", &wsProtoError{WSCloseProtocolError, "invalid close code " + strconv.Itoa(code), -1}
	}
	if !utf8.Valid(p[2:]) {
		return 0, "", &wsProtoError{WSCloseInvalidPayload, "invalid UTF-8 in the close reason", -1}
	}
	return code, string(p[2:]), nil
}

// wsValidCloseCode reports whether code may appear in a close frame:
// 1000-1003 and 1007-1014 (RFC 6455 and the IANA registry), 3000-4999
// (libraries and applications). 1004-1006 and 1015 are reserved or only
// meant for reporting.
func wsValidCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	}
	return code >= 3000 && code <= 4999
}
