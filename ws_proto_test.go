package gaffer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWSCloseHandshake(t *testing.T) {
	t.Run("client initiates while reading", func(t *testing.T) {
		s := wsNewTestServer(t, nil, nil)
		c := wsTestDial(t, s.wsURL(), nil)
		readErr := make(chan error, 1)
		go func() {
			_, _, err := c.ReadMessage()
			readErr <- err
		}()
		start := time.Now()
		if err := c.Close(4001, "bye now"); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Fatalf("Close took %v: the answer was not seen", d)
		}
		ce := wsExpectCloseErr(t, s.end(t), 4001)
		if ce.Reason != "bye now" {
			t.Fatalf("reason %q", ce.Reason)
		}
		wsExpectCloseErr(t, <-readErr, 4001) // the server echoes the code
		wsExpectDone(t, c)
		if err := c.Close(1000, ""); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
	t.Run("server initiates", func(t *testing.T) {
		s := wsNewTestServer(t, nil, func(sc *WSConn) error {
			_, _, err := sc.ReadMessage()
			if err != nil {
				return err
			}
			if err := sc.Close(WSCloseGoingAway, "restarting"); err != nil {
				return err
			}
			_, _, err = sc.ReadMessage()
			return err
		})
		c := wsTestDial(t, s.wsURL(), nil)
		c.WriteText("close please")
		_, _, err := c.ReadMessage()
		ce := wsExpectCloseErr(t, err, WSCloseGoingAway)
		if ce.Reason != "restarting" {
			t.Fatalf("reason %q", ce.Reason)
		}
		// The server's Close read the client's answer.
		wsExpectCloseErr(t, s.end(t), WSCloseGoingAway)
		wsExpectDone(t, c)
		if err := c.WriteText("late"); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write after close: %v", err)
		}
	})
	t.Run("empty close payload", func(t *testing.T) {
		s := wsNewTestServer(t, nil, nil)
		c := wsTestDial(t, s.wsURL(), nil)
		wsTestWriteRaw(t, c, wsTestFrame(true, wsOpClose, true, nil))
		op, _, p := wsTestReadRaw(t, c)
		if op != wsOpClose || len(p) != 0 {
			t.Fatalf("answer op %d %q, want an empty close", op, p)
		}
		wsExpectCloseErr(t, s.end(t), WSCloseNoStatus)
	})
	t.Run("peer never answers", func(t *testing.T) {
		s := wsNewTestServer(t, nil, func(sc *WSConn) error {
			<-sc.Done()
			return nil
		})
		c := wsTestDial(t, s.wsURL(), nil)
		start := time.Now()
		if err := c.Close(WSCloseNormal, ""); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("Close waited %v", d)
		}
		wsExpectDone(t, c)
		sc := s.conn(t)
		sc.CloseNow()
		s.end(t)
	})
	t.Run("bad codes", func(t *testing.T) {
		s := wsNewTestServer(t, nil, nil)
		c := wsTestDial(t, s.wsURL(), nil)
		if err := c.Close(1006, ""); err == nil {
			t.Fatal("Close(1006) accepted")
		}
		wsExpectDone(t, c)
		if err := c.WriteText("x"); err == nil {
			t.Fatal("write after Close succeeded")
		}
		if err := c.Ping(nil); err == nil {
			t.Fatal("ping after Close succeeded")
		}
		c.CloseNow()
	})
}

func TestWSReceivedCloseCodes(t *testing.T) {
	cases := []struct {
		name    string
		payload []byte
		want    int // answer code; the server's ReadMessage reports the same
	}{
		{"1000", wsClosePayload(1000, "ok"), 1000},
		{"1014", wsClosePayload(1014, ""), 1014},
		{"3000", wsClosePayload(3000, ""), 3000},
		{"4999", wsClosePayload(4999, ""), 4999},
		{"1005", wsClosePayload(1005, ""), 1002},
		{"1006", wsClosePayload(1006, ""), 1002},
		{"1015", wsClosePayload(1015, ""), 1002},
		{"1004", wsClosePayload(1004, ""), 1002},
		{"999", wsClosePayload(999, ""), 1002},
		{"2000", wsClosePayload(2000, ""), 1002},
		{"5000", wsClosePayload(5000, ""), 1002},
		{"one byte", []byte{3}, 1002},
		{"bad utf8 reason", wsClosePayload(1000, "\xff\xfe"), 1007},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := wsNewTestServer(t, nil, nil)
			c := wsTestDial(t, s.wsURL(), nil)
			wsTestWriteRaw(t, c, wsTestFrame(true, wsOpClose, true, tc.payload))
			wsTestExpectClose(t, c, tc.want)
			wsExpectCloseErr(t, s.end(t), tc.want)
		})
	}
}

func TestWSProtocolErrors(t *testing.T) {
	cases := []struct {
		name   string
		frames [][]byte
		want   int
	}{
		{"unmasked", [][]byte{wsTestFrame(true, wsOpText, false, []byte("hi"))}, 1002},
		{"rsv1", [][]byte{append([]byte{0xC1}, wsTestFrame(true, wsOpText, true, []byte("hi"))[1:]...)}, 1002},
		{"rsv3", [][]byte{append([]byte{0x91}, wsTestFrame(true, wsOpText, true, []byte("hi"))[1:]...)}, 1002},
		{"opcode 3", [][]byte{wsTestFrame(true, 3, true, []byte("hi"))}, 1002},
		{"opcode 11", [][]byte{wsTestFrame(true, 11, true, nil)}, 1002},
		{"fragmented ping", [][]byte{wsTestFrame(false, wsOpPing, true, nil)}, 1002},
		{"long ping", [][]byte{wsTestFrame(true, wsOpPing, true, make([]byte, 126))}, 1002},
		{"long close", [][]byte{wsTestFrame(true, wsOpClose, true, make([]byte, 200))}, 1002},
		{"lone continuation", [][]byte{wsTestFrame(true, wsOpContinuation, true, []byte("x"))}, 1002},
		{"text inside fragments", [][]byte{
			wsTestFrame(false, wsOpText, true, []byte("a")),
			wsTestFrame(true, wsOpText, true, []byte("b")),
		}, 1002},
		{"invalid utf8", [][]byte{wsTestFrame(true, wsOpText, true, []byte("ok \xff\xfe"))}, 1007},
		{"truncated utf8", [][]byte{
			wsTestFrame(false, wsOpText, true, []byte("ok \xe2\x9c")),
			wsTestFrame(true, wsOpContinuation, true, nil),
		}, 1007},
		{"surrogate", [][]byte{wsTestFrame(true, wsOpText, true, []byte("\xed\xa0\x80"))}, 1007},
		{"too big", [][]byte{wsTestFrame(true, wsOpBinary, true, make([]byte, 2000))}, 1009},
		{"too big fragmented", [][]byte{
			wsTestFrame(false, wsOpBinary, true, make([]byte, 600)),
			wsTestFrame(true, wsOpContinuation, true, make([]byte, 600)),
		}, 1009},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := wsNewTestServer(t, &WSOptions{MaxMessageSize: 1024}, nil)
			c := wsTestDial(t, s.wsURL(), nil)
			sc := s.conn(t)
			wsTestWriteRaw(t, c, tc.frames...)
			wsTestExpectClose(t, c, tc.want)
			// Answer the close: the server finishes at once.
			wsTestWriteRaw(t, c, wsTestFrame(true, wsOpClose, true, wsClosePayload(tc.want, "")))
			wsExpectCloseErr(t, s.end(t), tc.want)
			wsExpectDone(t, sc)
		})
	}
}

func TestWSClientSideErrors(t *testing.T) {
	t.Run("masked server frame", func(t *testing.T) {
		s := wsNewTestServer(t, nil, func(sc *WSConn) error {
			sc.conn.Write(wsTestFrame(true, wsOpText, true, []byte("masked")))
			return wsEcho(sc)
		})
		c := wsTestDial(t, s.wsURL(), nil)
		_, _, err := c.ReadMessage()
		wsExpectCloseErr(t, err, 1002)
		wsExpectCloseErr(t, s.end(t), 1002) // the server got our 1002
	})
	t.Run("too big for the client", func(t *testing.T) {
		s := wsNewTestServer(t, nil, nil)
		c := wsTestDial(t, s.wsURL(), nil)
		c.SetMaxMessageSize(100)
		c.WriteMessage(WSBinary, make([]byte, 101))
		_, _, err := c.ReadMessage()
		wsExpectCloseErr(t, err, WSCloseTooBig)
		wsExpectCloseErr(t, s.end(t), WSCloseTooBig)
	})
	t.Run("invalid utf8 from the client side", func(t *testing.T) {
		s := wsNewTestServer(t, nil, nil)
		c := wsTestDial(t, s.wsURL(), nil)
		if err := c.WriteMessage(WSText, []byte{0xc0, 0x80}); err != nil {
			t.Fatal(err)
		}
		_, _, err := c.ReadMessage()
		wsExpectCloseErr(t, err, WSCloseInvalidPayload)
		wsExpectCloseErr(t, s.end(t), WSCloseInvalidPayload)
	})
	t.Run("abrupt drop", func(t *testing.T) {
		s := wsNewTestServer(t, nil, func(sc *WSConn) error { return sc.CloseNow() })
		c := wsTestDial(t, s.wsURL(), nil)
		_, _, err := c.ReadMessage()
		wsExpectCloseErr(t, err, WSCloseAbnormal)
		wsExpectDone(t, c)
	})
}

func TestWSConcurrentWriters(t *testing.T) {
	s := wsNewTestServer(t, nil, nil)
	c := wsTestDial(t, s.wsURL(), nil)
	sc := s.conn(t)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pad := strings.Repeat("x", g*100)
			for i := range each {
				var err error
				switch i % 3 {
				case 0:
					err = c.WriteText(fmt.Sprintf("%d:%d:%s", g, i, pad))
				case 1:
					err = c.WriteMessage(WSBinary, fmt.Appendf(nil, "%d:%d:%s", g, i, pad))
				default:
					err = c.WriteJSON(fmt.Sprintf("%d:%d:%s", g, i, pad))
				}
				if err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					c.Ping([]byte("p"))
				}
			}
		}()
	}
	// Meanwhile the server also writes from several goroutines.
	var swg sync.WaitGroup
	for range 4 {
		swg.Add(1)
		go func() {
			defer swg.Done()
			for range 50 {
				if err := sc.Ping(nil); err != nil {
					return
				}
			}
		}()
	}
	next := make([]int, writers)
	for n := 0; n < writers*each; n++ {
		op, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("after %d messages: %v", n, err)
		}
		s := string(data)
		if op == WSText && strings.HasPrefix(s, `"`) {
			s = strings.Trim(s, `"`)
		}
		parts := strings.SplitN(s, ":", 3)
		if len(parts) != 3 {
			t.Fatalf("garbled message %q", s)
		}
		g, err1 := strconv.Atoi(parts[0])
		i, err2 := strconv.Atoi(parts[1])
		if err1 != nil || err2 != nil || g < 0 || g >= writers || i != next[g] || parts[2] != strings.Repeat("x", g*100) {
			t.Fatalf("message %q out of order (want %d:%d)", s, g, next[g])
		}
		next[g]++
	}
	wg.Wait()
	swg.Wait()
	c.Close(WSCloseNormal, "")
	wsExpectCloseErr(t, s.end(t), WSCloseNormal)
}

func TestWSMaskBytes(t *testing.T) {
	key := [4]byte{0xde, 0xad, 0xbe, 0xef}
	for n := range 80 {
		for pos := range 4 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(i * 7)
			}
			want := make([]byte, n)
			for i := range want {
				want[i] = b[i] ^ key[(pos+i)&3]
			}
			next := wsMaskBytes(key, pos, b)
			if !bytes.Equal(b, want) || next != (pos+n)&3 {
				t.Fatalf("n=%d pos=%d: wrong masking", n, pos)
			}
		}
	}
	// Masking in pieces equals masking at once.
	data := bytes.Repeat([]byte("abcdefghijk"), 100)
	whole := append([]byte(nil), data...)
	wsMaskBytes(key, 0, whole)
	pos := 0
	for off := 0; off < len(data); {
		n := min(13+off%29, len(data)-off)
		pos = wsMaskBytes(key, pos, data[off:off+n])
		off += n
	}
	if !bytes.Equal(data, whole) {
		t.Fatal("chunked masking differs")
	}
}

func TestWSWriteAllocations(t *testing.T) {
	if wsRaceEnabled {
		t.Skip("allocations are not counted under the race detector")
	}
	msg := bytes.Repeat([]byte("log line "), 1000)
	for _, server := range []bool{true, false} {
		a, b := net.Pipe()
		go io.Copy(io.Discard, b)
		c := wsNewConn(a, bufio.NewReader(a), bufio.NewWriterSize(a, 4096), server, 0)
		c.wrng = rand.NewChaCha8([32]byte{1})
		allocs := testing.AllocsPerRun(200, func() {
			if err := c.WriteMessage(WSText, msg); err != nil {
				t.Fatal(err)
			}
			if err := c.Ping(msg[:10]); err != nil {
				t.Fatal(err)
			}
		})
		c.CloseNow()
		b.Close()
		if allocs > 0 {
			t.Errorf("server=%v: %v allocations per message", server, allocs)
		}
	}
}

func TestWSReadAllocations(t *testing.T) {
	if wsRaceEnabled {
		t.Skip("allocations are not counted under the race detector")
	}
	const n = 100
	frame := wsTestFrame(true, wsOpBinary, true, bytes.Repeat([]byte("log line "), 1000))
	frag := append(wsTestFrame(false, wsOpText, true, []byte("abc")), wsTestFrame(true, wsOpContinuation, true, []byte("def"))...)
	ping := wsTestFrame(true, wsOpPing, true, []byte("hb"))
	stream := bytes.Repeat(append(append(frame, ping...), frame...), n+1)
	fc := &wsFuzzConn{r: bytes.NewReader(stream)}
	c := wsNewConn(fc, bufio.NewReader(fc), bufio.NewWriter(fc), true, 0)
	allocs := testing.AllocsPerRun(n, func() {
		for range 2 {
			if _, data, err := c.ReadMessage(); err != nil || len(data) != 9000 {
				t.Fatalf("read %d bytes, %v", len(data), err)
			}
		}
	})
	if allocs > 2 {
		t.Errorf("%v allocations for two messages and a ping, want 2 (the messages)", allocs)
	}
	fc = &wsFuzzConn{r: bytes.NewReader(bytes.Repeat(frag, n+1))}
	c = wsNewConn(fc, bufio.NewReader(fc), bufio.NewWriter(fc), true, 0)
	allocs = testing.AllocsPerRun(n, func() {
		if _, data, err := c.ReadMessage(); err != nil || string(data) != "abcdef" {
			t.Fatalf("read %q, %v", data, err)
		}
	})
	if allocs > 2 {
		t.Errorf("%v allocations for a fragmented message", allocs)
	}
}

func BenchmarkWSServerWrite(b *testing.B) {
	srv, cli := net.Pipe()
	go io.Copy(io.Discard, cli)
	c := wsNewConn(srv, bufio.NewReader(srv), bufio.NewWriter(srv), true, 0)
	msg := bytes.Repeat([]byte("x"), 200)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		c.WriteMessage(WSText, msg)
	}
}

func BenchmarkWSMask(b *testing.B) {
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		wsMaskBytes([4]byte{1, 2, 3, 4}, 1, buf)
	}
}

func TestWSDeadlinesAndConcurrentClose(t *testing.T) {
	s := wsNewTestServer(t, nil, func(sc *WSConn) error {
		<-sc.Done()
		return nil
	})
	c := wsTestDial(t, s.wsURL(), nil)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, _, err := c.ReadMessage()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	wsExpectDone(t, c)
	if _, _, err2 := c.ReadMessage(); err2 != err {
		t.Fatalf("second read: %v", err2)
	}
	s.conn(t).CloseNow()

	// Close from several goroutines at once, with writers still going.
	s2 := wsNewTestServer(t, nil, nil)
	c2 := wsTestDial(t, s2.wsURL(), nil)
	go func() {
		for {
			if _, _, err := c2.ReadMessage(); err != nil {
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 3 {
			case 0:
				c2.Close(WSCloseGoingAway, "bye")
			case 1:
				for c2.WriteText("spam") == nil {
				}
			default:
				c2.Close(WSCloseNormal, "")
				c2.CloseNow()
			}
		}()
	}
	wg.Wait()
	wsExpectDone(t, c2)
	if err := c2.WriteMessage(WSBinary, []byte{1}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	var ce *WSCloseError
	if err := s2.end(t); !errors.As(err, &ce) {
		t.Fatalf("server ended with %v", err)
	}
}
