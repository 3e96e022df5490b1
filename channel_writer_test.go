package gaffer

import (
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
)

// wsWriterServer serves websockets whose server side is a chWriter, handed
// to the test; the handler returns once the writer has.
func wsWriterServer(t *testing.T) (*wsTestServer, chan *chWriter) {
	t.Helper()
	writers := make(chan *chWriter, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := wsNewTestServer(t, nil, func(c *WSConn) error {
		w := chNewWriter(c, log)
		writers <- w
		go func() { // reads, so that the close handshake completes
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					w.stop()
					return
				}
			}
		}()
		<-w.done
		return nil
	})
	return srv, writers
}

// A writer holds no queue while it has nothing to send, grows one while
// messages wait, and lets it go once they are written.
func TestChannelWriterQueueGrowsLazily(t *testing.T) {
	srv, writers := wsWriterServer(t)
	c := wsTestDial(t, srv.wsURL(), nil)
	w := <-writers
	if n, capacity := w.queued(); n != 0 || capacity != 0 {
		t.Fatalf("a new writer has a queue of %d frames (%d waiting)", capacity, n)
	}
	const msgs = 500
	for i := range msgs {
		if !w.send(WSText, []byte(strconv.Itoa(i))) {
			t.Fatalf("message %d refused", i)
		}
	}
	for i := range msgs {
		_, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if string(data) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, data)
		}
	}
	waitFor(t, 10*time.Second, "the drained queue to be let go", func() bool {
		n, capacity := w.queued()
		return n == 0 && capacity <= chWriterKeep
	})
}

// A client that does not read still overflows a bounded queue: its
// connection is closed with 1008, and the queue never holds more than
// chQueueLen frames.
func TestChannelWriterSlowClientOverflows(t *testing.T) {
	defer func(n int) { chQueueLen = n }(chQueueLen)
	chQueueLen = 32
	srv, writers := wsWriterServer(t)
	c := wsTestDial(t, srv.wsURL(), nil)
	w := <-writers
	msg := []byte(strings.Repeat("x", 64<<10))
	sent := 0
	for ; sent < 10000 && w.send(WSText, msg); sent++ {
		if n, _ := w.queued(); n > chQueueLen {
			t.Fatalf("%d frames queued (limit %d)", n, chQueueLen)
		}
	}
	if sent == 10000 {
		t.Fatal("10000 messages of 64 KiB queued for a client that does not read")
	}
	// What the socket buffers took arrives, then the close.
	for {
		_, _, err := c.ReadMessage()
		if err != nil {
			wsExpectCloseErr(t, err, WSClosePolicy)
			break
		}
	}
}
