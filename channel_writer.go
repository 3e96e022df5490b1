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
// connection is closed with 1008.
type chWriter struct {
	ws    chTransport
	log   *slog.Logger
	q     chan chFrame
	bytes atomic.Int64
	quit  chan struct{} // closed when nothing more may be sent
	once  sync.Once
	done  chan struct{} // closed when the writer goroutine has returned
}

func chNewWriter(ws chTransport, log *slog.Logger) *chWriter {
	w := &chWriter{ws: ws, log: log, q: make(chan chFrame, chQueueLen), quit: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *chWriter) run() {
	defer close(w.done)
	for {
		select {
		case <-w.quit:
			return
		case f := <-w.q:
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
	if total := w.bytes.Add(n); total > chQueueBytes && total != n {
		w.bytes.Add(-n)
		w.tooSlow()
		return false
	}
	select {
	case w.q <- f:
		return true
	default:
		w.bytes.Add(-n)
		w.tooSlow()
		return false
	}
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
	select {
	case w.q <- chFrame{close: true, code: code, reason: reason}:
	default:
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
