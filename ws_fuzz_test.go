package gaffer

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"testing"
	"time"
)

// wsFuzzConn is a net.Conn whose peer's stream is a fixed byte string;
// writes are dropped and deadlines ignored (reads end at EOF).
type wsFuzzConn struct{ r *bytes.Reader }

func (f *wsFuzzConn) Read(p []byte) (int, error)       { return f.r.Read(p) }
func (f *wsFuzzConn) Write(p []byte) (int, error)      { return len(p), nil }
func (f *wsFuzzConn) Close() error                     { return nil }
func (f *wsFuzzConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (f *wsFuzzConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (f *wsFuzzConn) SetDeadline(time.Time) error      { return nil }
func (f *wsFuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (f *wsFuzzConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzWSReadFrame feeds arbitrary bytes as a client's stream to a server
// side connection: reading must never panic or hang, must end in an error
// at the end of the input, and that error must stick.
func FuzzWSReadFrame(f *testing.F) {
	f.Add(wsTestFrame(true, wsOpText, true, []byte("hello")))
	f.Add(append(wsTestFrame(false, wsOpText, true, []byte("hel")), wsTestFrame(true, wsOpContinuation, true, []byte("lo"))...))
	f.Add(wsTestFrame(true, wsOpPing, true, []byte("ping")))
	f.Add(wsTestFrame(true, wsOpClose, true, wsClosePayload(1000, "bye")))
	f.Add(wsTestFrame(true, 5, true, []byte("bad opcode")))
	f.Fuzz(func(t *testing.T, data []byte) {
		fc := &wsFuzzConn{r: bytes.NewReader(data)}
		c := wsNewConn(fc, bufio.NewReaderSize(fc, 64), bufio.NewWriter(fc), true, 4096)
		var err error
		for i := 0; ; i++ {
			var op WSOpcode
			var msg []byte
			op, msg, err = c.ReadMessage()
			if err != nil {
				break
			}
			if op != WSText && op != WSBinary || int64(len(msg)) > 4096 {
				t.Fatalf("message of type %v, %d bytes", op, len(msg))
			}
			if i > len(data) {
				t.Fatalf("%d messages out of %d bytes", i, len(data))
			}
		}
		if _, _, err2 := c.ReadMessage(); err2 != err {
			t.Fatalf("error changed from %v to %v", err, err2)
		}
		var ce *WSCloseError
		if !errors.As(err, &ce) {
			t.Fatalf("error %v (%T) is not a *WSCloseError", err, err)
		}
		if err := c.Close(WSCloseNormal, ""); err != nil {
			t.Fatalf("Close: %v", err)
		}
		<-c.Done()
		if c.WriteText("x") == nil {
			t.Fatal("write after close succeeded")
		}
	})
}
