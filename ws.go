package gaffer

// Websocket connections (RFC 6455), written on the standard library only.
//
// Files: ws.go (types, messages, close handshake), ws_frame.go (frame
// reading, writing and masking), ws_server.go (WSUpgrade, origin checks),
// ws_client.go (WSDial), ws_keepalive.go (pings of silent clients).
//
// Concurrency model: one goroutine reads (ReadMessage), any number write
// (WriteMessage and friends serialize on one mutex). Close and CloseNow may
// be called from any goroutine, any number of times.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"
)

// WSOpcode is a websocket message type.
type WSOpcode int

// Message types accepted by WriteMessage and returned by ReadMessage.
const (
	WSText   WSOpcode = 1
	WSBinary WSOpcode = 2
)

// String returns "text", "binary" or the number.
func (op WSOpcode) String() string {
	switch op {
	case WSText:
		return "text"
	case WSBinary:
		return "binary"
	}
	return "opcode(" + strconv.Itoa(int(op)) + ")"
}

// Close status codes (RFC 6455 §7.4.1).
const (
	WSCloseNormal         = 1000
	WSCloseGoingAway      = 1001
	WSCloseProtocolError  = 1002
	WSCloseUnsupported    = 1003
	WSCloseNoStatus       = 1005 // never sent: the peer's close frame had no code
	WSCloseAbnormal       = 1006 // never sent: the connection dropped without a close frame
	WSCloseInvalidPayload = 1007
	WSClosePolicy         = 1008
	WSCloseTooBig         = 1009
	WSCloseInternal       = 1011
)

// WSDefaultMaxMessageSize is the largest message accepted when
// WSOptions.MaxMessageSize is not set (1 MiB).
const WSDefaultMaxMessageSize = 1 << 20

// wsCloseTimeout bounds how long Close waits for the peer's close frame.
const wsCloseTimeout = time.Second

// WSCloseError is the error ReadMessage returns once the connection is
// closed: Code and Reason are those of the peer's close frame (Code 1005 if
// it carried none), or those of the close frame we sent when we failed the
// connection for a protocol violation (1002, 1007, 1009), or 1006 when the
// connection dropped without a close frame.
type WSCloseError struct {
	Code   int
	Reason string
}

// Error implements the error interface.
func (e *WSCloseError) Error() string {
	s := "websocket: closed with code " + strconv.Itoa(e.Code)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// wsErrClosed is returned by writes after Close or CloseNow; it matches
// net.ErrClosed with errors.Is.
var wsErrClosed = fmt.Errorf("websocket: connection closed: %w", net.ErrClosed)

// WSConn is one websocket connection, server or client side.
type WSConn struct {
	conn        net.Conn
	isServer    bool
	subprotocol string
	req         *http.Request

	// Read side: owned by whoever holds rlock (a 1-slot semaphore, so that
	// Close can wait for it in a select).
	rlock   chan struct{}
	br      *bufio.Reader
	maxSize int64
	readErr error // sticky
	rhdr    [14]byte
	rctl    [125]byte
	onPong  func(data []byte)            // test hook, called by the reader
	ka      *wsKeeper                    // keepalive (server side, when asked for)
	kaErr   atomic.Pointer[WSCloseError] // set when the keepalive dropped the peer

	// Write side: guarded by wmu.
	wmu       sync.Mutex
	bw        *bufio.Writer
	whdr      [14]byte
	wrng      *rand.ChaCha8 // client side: mask keys (seeded from crypto/rand)
	closeSent bool
	writeErr  error // sticky: a failed write may leave a partial frame

	closeOnce     sync.Once
	closeRecvOnce sync.Once
	closeRecv     chan struct{} // closed once the peer's close frame was read
	finishOnce    sync.Once
	done          chan struct{} // closed once the TCP connection is closed
}

func wsNewConn(conn net.Conn, br *bufio.Reader, bw *bufio.Writer, isServer bool, maxSize int64) *WSConn {
	if maxSize <= 0 {
		maxSize = WSDefaultMaxMessageSize
	}
	return &WSConn{
		conn:      conn,
		isServer:  isServer,
		rlock:     make(chan struct{}, 1),
		br:        br,
		maxSize:   maxSize,
		bw:        bw,
		closeRecv: make(chan struct{}),
		done:      make(chan struct{}),
	}
}

// Subprotocol returns the negotiated subprotocol, "" if none.
func (c *WSConn) Subprotocol() string { return c.subprotocol }

// Request returns the upgrade request on the server side, nil on the client
// side. Its context is canceled when the HTTP handler returns.
func (c *WSConn) Request() *http.Request { return c.req }

// RemoteAddr returns the peer's network address.
func (c *WSConn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// Done returns a channel closed when the connection is finished (the
// underlying network connection is closed).
func (c *WSConn) Done() <-chan struct{} { return c.done }

// SetReadDeadline sets the deadline of the underlying connection's reads.
// A ReadMessage that times out closes the connection (without a close
// handshake) and returns an error matching os.ErrDeadlineExceeded.
func (c *WSConn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline of the underlying connection's writes.
// A write that times out may leave a partial frame behind, so every later
// write fails too. Close overrides the deadline (one second).
func (c *WSConn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// SetMaxMessageSize changes the largest message ReadMessage accepts (bytes,
// after reassembly); n <= 0 restores the 1 MiB default. Call it from the
// reading goroutine or before reading starts.
func (c *WSConn) SetMaxMessageSize(n int64) {
	if n <= 0 {
		n = WSDefaultMaxMessageSize
	}
	c.maxSize = n
}

// ReadMessage reads the next data message, reassembling fragments. Only one
// goroutine may read. Pings are answered with pongs and pongs are dropped.
// When the peer closes, its close frame is answered, the connection is
// closed and a *WSCloseError is returned; every later call returns the same
// error. Violations of the protocol close the connection with 1002, invalid
// UTF-8 in a text message with 1007 and a message larger than the maximum
// size with 1009, and are returned as a *WSCloseError with that code.
func (c *WSConn) ReadMessage() (WSOpcode, []byte, error) {
	c.rlock <- struct{}{}
	defer func() { <-c.rlock }()
	if c.readErr != nil {
		return 0, nil, c.readErr
	}
	if c.ka != nil {
		c.ka.reading(true)
		defer c.ka.reading(false)
	}
	op, data, err := c.readMessage()
	if err != nil {
		if c.readErr == nil {
			c.readErr = err
		}
		return 0, nil, c.readErr
	}
	return op, data, nil
}

// readMessage reads frames until a whole data message is in. The caller
// holds rlock.
func (c *WSConn) readMessage() (WSOpcode, []byte, error) {
	var msg []byte
	var msgOp WSOpcode
	inMsg := false
	for {
		h, err := c.readFrameHeader()
		if err != nil {
			var pe *wsProtoError
			if errors.As(err, &pe) {
				return 0, nil, c.fail(pe.code, pe.reason, pe.skip)
			}
			return 0, nil, c.readFailed(err)
		}
		if c.ka != nil {
			c.ka.touch()
		}
		if h.op >= 8 {
			if err := c.readControl(h); err != nil {
				return 0, nil, err
			}
			continue
		}
		switch {
		case h.op == 0 && !inMsg:
			return 0, nil, c.fail(WSCloseProtocolError, "continuation frame without a message", h.length)
		case h.op != 0 && inMsg:
			return 0, nil, c.fail(WSCloseProtocolError, "new message inside a fragmented one", h.length)
		case h.op != 0:
			inMsg = true
			msgOp = WSOpcode(h.op)
		}
		if h.length > c.maxSize-int64(len(msg)) {
			return 0, nil, c.fail(WSCloseTooBig, "message larger than "+strconv.FormatInt(c.maxSize, 10)+" bytes", h.length)
		}
		if msg, err = c.readPayload(msg, h); err != nil {
			return 0, nil, c.readFailed(err)
		}
		if !h.fin {
			continue
		}
		if msgOp == WSText && !utf8.Valid(msg) {
			return 0, nil, c.fail(WSCloseInvalidPayload, "invalid UTF-8 in a text message", 0)
		}
		if msg == nil {
			msg = []byte{}
		}
		return msgOp, msg, nil
	}
}

// readControl reads a control frame's payload and acts on it.
func (c *WSConn) readControl(h wsFrameHeader) error {
	payload := c.rctl[:h.length]
	if _, err := c.readPayload(payload[:0], h); err != nil {
		return c.readFailed(err)
	}
	switch h.op {
	case wsOpPing:
		// A failed pong shows up on the next write; reading goes on.
		c.writeControl(wsOpPong, payload)
	case wsOpPong:
		if c.onPong != nil {
			c.onPong(payload)
		}
	case wsOpClose:
		code, reason, perr := wsParseClose(payload)
		if perr != nil {
			return c.fail(perr.code, perr.reason, -1) // the peer said its last word
		}
		err := &WSCloseError{Code: code, Reason: reason}
		c.readErr = err
		c.closeRecvOnce.Do(func() { close(c.closeRecv) })
		if code == WSCloseNoStatus {
			code = 0
		}
		// Answer (unless we sent ours first), then drop the connection:
		// the handshake is complete either way.
		c.conn.SetWriteDeadline(time.Now().Add(wsCloseTimeout))
		c.sendClose(code, "")
		c.finish()
		return err
	}
	return nil
}

// readFailed turns a network read error into the error ReadMessage returns
// and drops the connection.
func (c *WSConn) readFailed(err error) error {
	c.finish()
	select {
	case <-c.closeRecv:
		return c.readErr
	default:
	}
	if e := c.kaErr.Load(); e != nil {
		return e
	}
	if errors.Is(err, net.ErrClosed) {
		return wsErrClosed
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &WSCloseError{Code: WSCloseAbnormal, Reason: "connection closed without a close frame"}
	}
	return fmt.Errorf("websocket: read: %w", err)
}

// fail fails the connection: it sends a close frame with code, skips the
// rest of the offending frame (skip bytes, if the stream is still in sync)
// and waits briefly for the peer's answering close frame, then closes the
// connection. It returns the *WSCloseError describing it. The caller holds
// rlock.
func (c *WSConn) fail(code int, reason string, skip int64) error {
	err := &WSCloseError{Code: code, Reason: reason}
	c.readErr = err
	deadline := time.Now().Add(wsCloseTimeout)
	c.conn.SetWriteDeadline(deadline)
	if sent, _ := c.sendClose(code, reason); sent && skip >= 0 {
		c.drain(skip, deadline)
	}
	c.finish()
	return err
}

// WriteMessage sends one message in one frame. It is safe for concurrent
// use; each message is flushed to the network before it returns. Text
// messages are not checked for UTF-8 validity. data is never modified.
func (c *WSConn) WriteMessage(op WSOpcode, data []byte) error {
	if op != WSText && op != WSBinary {
		return fmt.Errorf("websocket: cannot write a message of type %v", op)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writableLocked(); err != nil {
		return err
	}
	return c.writeFrameLocked(byte(op), data)
}

// WriteText sends s as a text message.
func (c *WSConn) WriteText(s string) error {
	// The frame writer only reads data, so s's bytes are not copied.
	return c.WriteMessage(WSText, unsafe.Slice(unsafe.StringData(s), len(s)))
}

// WriteJSON sends v encoded as JSON in a text message.
func (c *WSConn) WriteJSON(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.WriteMessage(WSText, data)
}

// Ping sends a ping with data (at most 125 bytes); the peer's pong is
// consumed by ReadMessage.
func (c *WSConn) Ping(data []byte) error {
	if len(data) > 125 {
		return errors.New("websocket: ping payload longer than 125 bytes")
	}
	return c.writeControl(wsOpPing, data)
}

// writeControl sends a ping or pong.
func (c *WSConn) writeControl(op byte, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writableLocked(); err != nil {
		return err
	}
	return c.writeFrameLocked(op, data)
}

// writableLocked tells why the connection cannot be written to, if so.
func (c *WSConn) writableLocked() error {
	if c.closeSent {
		return wsErrClosed
	}
	if c.writeErr != nil {
		return c.writeErr
	}
	select {
	case <-c.done:
		return wsErrClosed
	default:
	}
	return nil
}

// sendClose sends our close frame unless one was sent already; code 0
// sends an empty close payload. It reports whether this call sent it.
func (c *WSConn) sendClose(code int, reason string) (bool, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return false, nil
	}
	c.closeSent = true
	if c.writeErr != nil {
		return false, c.writeErr
	}
	var buf [125]byte
	n := 0
	if code != 0 {
		buf[0], buf[1] = byte(code>>8), byte(code)
		n = 2 + copy(buf[2:], wsTruncateUTF8(reason, 123))
	}
	err := c.writeFrameLocked(wsOpClose, buf[:n])
	return err == nil, err
}

// Close starts (or completes) the close handshake: it sends a close frame
// with code and reason (code 0: no status; the reason is cut to 123
// bytes), waits at most one second for the peer's close frame, and closes
// the network connection. Only the first call sends; later calls wait for
// the connection to be finished and return nil. If the peer closed first,
// Close just makes sure the connection is closed. A code that may not be
// sent (1005, 1006, 1015, outside 1000-4999…) drops the connection and
// returns an error.
func (c *WSConn) Close(code int, reason string) error {
	first := false
	var err error
	c.closeOnce.Do(func() {
		first = true
		err = c.closeHandshake(code, reason)
	})
	if !first {
		<-c.done
	}
	return err
}

func (c *WSConn) closeHandshake(code int, reason string) error {
	if code != 0 && !wsValidCloseCode(code) {
		c.finish()
		return fmt.Errorf("websocket: close code %d may not be sent", code)
	}
	deadline := time.Now().Add(wsCloseTimeout)
	// Also unblocks a writer stuck on a peer that does not read.
	c.conn.SetWriteDeadline(deadline)
	if _, err := c.sendClose(code, reason); err != nil {
		c.finish()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		return err
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-c.closeRecv:
	case <-c.done:
	case c.rlock <- struct{}{}:
		// Nobody is reading: read the peer's answer ourselves.
		if c.readErr == nil {
			c.drain(0, deadline)
			if c.readErr == nil {
				c.readErr = wsErrClosed
			}
		}
		<-c.rlock
	case <-timer.C:
	}
	c.finish()
	return nil
}

// CloseNow drops the connection without a close handshake. It is
// idempotent.
func (c *WSConn) CloseNow() error {
	c.finish()
	return nil
}

// finish closes the network connection (once) and Done's channel.
func (c *WSConn) finish() {
	c.finishOnce.Do(func() {
		if c.ka != nil {
			c.ka.stop()
		}
		c.conn.Close()
		close(c.done)
	})
}

// wsTruncateUTF8 cuts s to at most n bytes without splitting a rune.
func wsTruncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
