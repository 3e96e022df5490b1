package gaffer

// The single writer of a websocket (the control channel, the process I/O
// websocket) or of a SockJS session: a bounded queue of messages and the
// goroutine that writes them out, so that nothing that queues a message
// ever waits for the client.

import (
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
)

// Limits of one websocket client's send queue (messages and bytes).
// Variables so that tests can shrink them.
var (
	chQueueLen   = 1024
	chQueueBytes = int64(8 << 20)
)

// chFrame is one item of a writer's queue: a message, or the order to
// close the connection once what was queued before it is sent.
type chFrame struct {
	op     WSOpcode
	data   []byte
	close  bool
	code   int
	reason string
	sent   chan struct{} // closed once the message is written (nil: nobody waits)
}

// chWriter is the single writer of one websocket. send never blocks: when
// the queue is full the client is too slow, nothing more is sent and the
// connection is closed with 1008. The queue is a slice that grows as
// messages wait (up to chQueueLen) and is let go of once drained, so that
// a connection with nothing to send holds no queue.
type chWriter struct {
	ws    chTransport
	log   *slog.Logger
	bytes atomic.Int64
	quit  chan struct{} // closed when nothing more may be sent
	once  sync.Once
	done  chan struct{} // closed when the writer goroutine has returned

	max      int   // chQueueLen when it was made
	maxBytes int64 // chQueueBytes when it was made
	mu       sync.Mutex
	q        []chFrame     // waiting to be written, from q[head]
	head     int           // q[:head] are written (zeroed)
	wake     chan struct{} // one token: the queue has a frame
}

// chWriterKeep is the largest queue (in frames) kept once drained; a
// larger one goes back to the garbage collector.
const chWriterKeep = 16

func chNewWriter(ws chTransport, log *slog.Logger) *chWriter {
	w := &chWriter{ws: ws, log: log, max: chQueueLen, maxBytes: chQueueBytes, quit: make(chan struct{}), done: make(chan struct{}), wake: make(chan struct{}, 1)}
	go w.run()
	return w
}

// push appends f to the queue; false when the queue is full.
func (w *chWriter) push(f chFrame) bool {
	w.mu.Lock()
	if len(w.q)-w.head >= w.max {
		w.mu.Unlock()
		return false
	}
	if len(w.q) == cap(w.q) && w.head > 0 {
		// Room at the front: move the waiting frames there rather than
		// grow.
		n := copy(w.q, w.q[w.head:])
		clear(w.q[n:])
		w.q, w.head = w.q[:n], 0
	}
	w.q = append(w.q, f)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

// pop takes the oldest frame waiting.
func (w *chWriter) pop() (chFrame, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.head == len(w.q) {
		if cap(w.q) > chWriterKeep {
			w.q = nil
		} else {
			w.q = w.q[:0]
		}
		w.head = 0
		return chFrame{}, false
	}
	f := w.q[w.head]
	w.q[w.head] = chFrame{}
	w.head++
	return f, true
}

// queued is the number of frames waiting, and the capacity of the queue.
func (w *chWriter) queued() (n, capacity int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.q) - w.head, cap(w.q)
}

func (w *chWriter) run() {
	defer close(w.done)
	defer func() {
		w.mu.Lock()
		w.q, w.head = nil, 0 // what is left is never sent
		w.mu.Unlock()
	}()
	for {
		f, ok := w.pop()
		if !ok {
			select {
			case <-w.quit:
				return
			case <-w.wake:
				continue
			}
		}
		select {
		case <-w.quit:
			return
		default:
		}
		if f.close {
			w.stop()
			w.ws.Close(f.code, f.reason)
			return
		}
		w.bytes.Add(-int64(len(f.data)))
		if err := w.ws.WriteMessage(f.op, f.data); err != nil {
			w.stop()
			w.ws.CloseNow()
			return
		}
		if f.sent != nil {
			close(f.sent)
		}
	}
}

// send queues one message; it reports false when the connection is going
// away (the message is then dropped).
func (w *chWriter) send(op WSOpcode, data []byte) bool {
	return w.sendFrame(chFrame{op: op, data: data})
}

// sendFrame queues one message frame.
func (w *chWriter) sendFrame(f chFrame) bool {
	select {
	case <-w.quit:
		return false
	default:
	}
	n := int64(len(f.data))
	// One message bigger than the byte limit still goes through alone.
	if total := w.bytes.Add(n); total > w.maxBytes && total != n {
		w.bytes.Add(-n)
		w.tooSlow()
		return false
	}
	if !w.push(f) {
		w.bytes.Add(-n)
		w.tooSlow()
		return false
	}
	return true
}

// sendJSON queues v as a text message.
func (w *chWriter) sendJSON(v any) bool {
	data, err := json.Marshal(v)
	if err != nil {
		w.log.Error("channel: cannot encode a message", "err", err)
		return false
	}
	return w.send(WSText, data)
}

// closeAfter closes the connection with code once the messages already
// queued are sent.
func (w *chWriter) closeAfter(code int, reason string) {
	select {
	case <-w.quit:
		return
	default:
	}
	if !w.push(chFrame{close: true, code: code, reason: reason}) {
		w.tooSlow()
	}
}

// tooSlow drops what is queued and closes the connection with 1008.
func (w *chWriter) tooSlow() {
	w.once.Do(func() {
		close(w.quit)
		remote := ""
		if r := w.ws.Request(); r != nil {
			remote = r.RemoteAddr
		}
		w.log.Warn("websocket client too slow; disconnecting it", "remote", remote, "queued_bytes", w.bytes.Load())
		go w.ws.Close(WSClosePolicy, "client too slow")
	})
}

// stop makes the writer send nothing more.
func (w *chWriter) stop() { w.once.Do(func() { close(w.quit) }) }
