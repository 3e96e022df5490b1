package gaffer

// One SockJS session: the queues between the application and the
// receiving connections, and the session's life (attach, detach, expiry).

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// sjSession is one SockJS session.
type sjSession struct {
	h      *SockJS
	id     string
	token  string // the value of its sjCookie (HTTP sessions)
	req    *http.Request
	remote string
	inMap  bool

	wakeOut chan struct{} // a receiver has something to do
	wakeIn  chan struct{} // Recv has something to return
	inSpace chan struct{} // Recv made room in the inbox
	done    chan struct{}

	mu       sync.Mutex
	out      []string
	outBytes int64
	sending  int64         // bytes a receiver took and is writing out
	room     chan struct{} // closed when queued bytes go down (nil: nobody waits)
	budget   *memBudget    // where the outgoing bytes count (nil: nowhere)
	in       []string
	inBytes  int64
	attached bool
	closed   bool
	code     int
	reason   string
	timer    *time.Timer
	gone     bool // released from the server's count
}

// ID is the session id the client chose.
func (s *sjSession) ID() string { return s.id }

// Request is the request that opened the session.
func (s *sjSession) Request() *http.Request { return s.req }

// Done is closed when the session is closed.
func (s *sjSession) Done() <-chan struct{} { return s.done }

func (s *sjSession) closeFrame() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sjCloseFrame(s.code, s.reason)
}

// sjWake signals c without blocking.
func sjWake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// errSJClosed is returned by Send on a closed session.
var errSJClosed = errors.New("sockjs: session closed")

// Recv returns the next message from the client.
func (s *sjSession) Recv() (string, error) {
	for {
		s.mu.Lock()
		if len(s.in) > 0 {
			m := s.in[0]
			s.in[0] = ""
			s.in = s.in[1:]
			s.inBytes -= int64(len(m))
			s.mu.Unlock()
			sjWake(s.inSpace)
			return m, nil
		}
		if s.closed {
			s.mu.Unlock()
			return "", io.EOF
		}
		s.mu.Unlock()
		select {
		case <-s.wakeIn:
		case <-s.done:
		}
	}
}

// Send queues a message; a client that lets more than MaxQueuedBytes
// pile up is disconnected (1008).
func (s *sjSession) Send(msg string) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errSJClosed
	}
	n := int64(len(msg))
	if s.outBytes+n > s.h.opts.MaxQueuedBytes && s.outBytes > 0 {
		// What is queued is dropped: the client only gets the close frame.
		s.dropOutLocked()
		s.mu.Unlock()
		s.h.log.Warn("SockJS client too slow; closing its session", "session", s.id, "remote", s.remote)
		s.Close(1008, "client too slow")
		return errSJClosed
	}
	s.out = append(s.out, msg)
	s.outBytes += n
	if s.budget != nil {
		s.budget.add(n)
	}
	s.mu.Unlock()
	sjWake(s.wakeOut)
	return nil
}

// countIn makes the session's outgoing messages count in b until they
// are written out or dropped (the control channel's sessions count in the
// readers' budget, as what the other transports hold for their clients
// does).
func (s *sjSession) countIn(b *memBudget) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.budget == nil {
		s.budget = b
		b.add(s.outBytes)
	}
}

// dropOutLocked drops the queued outgoing messages.
func (s *sjSession) dropOutLocked() {
	if s.budget != nil {
		s.budget.add(-s.outBytes)
	}
	s.out, s.outBytes = nil, 0
	s.roomLocked()
}

// roomLocked wakes those waiting for room (waitRoom, roomChan).
func (s *sjSession) roomLocked() {
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
}

// deliver adds client messages to the inbox, waiting (with ctx) while it
// is over its limit.
func (s *sjSession) deliver(ctx context.Context, msgs []string) error {
	for _, m := range msgs {
		for {
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				return errSJClosed
			}
			if s.inBytes == 0 || s.inBytes+int64(len(m)) <= s.h.opts.MaxQueuedBytes {
				s.in = append(s.in, m)
				s.inBytes += int64(len(m))
				s.mu.Unlock()
				sjWake(s.wakeIn)
				break
			}
			s.mu.Unlock()
			select {
			case <-s.inSpace:
			case <-s.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// sjFrameBytes is about the most message bytes a receiver takes for one
// frame (at least one message), so that a frame being written to a slow
// client holds little beyond the queue.
const sjFrameBytes = 64 << 10

// take removes queued outgoing messages for one frame: up to
// sjFrameBytes, at least one. Their bytes count as being sent (see
// waitRoom) until the receiver calls sent(n) with the n it returns.
func (s *sjSession) take() (msgs []string, n int64, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := 0
	for i < len(s.out) && (i == 0 || n+int64(len(s.out[i])) <= sjFrameBytes) {
		n += int64(len(s.out[i]))
		i++
	}
	if i == len(s.out) {
		msgs, s.out = s.out, nil
	} else {
		msgs = append([]string(nil), s.out[:i]...)
		clear(s.out[:i])
		s.out = s.out[i:]
	}
	s.outBytes -= n
	s.sending += n
	return msgs, n, s.closed
}

// sent tells that n bytes taken by take were written out (or dropped).
func (s *sjSession) sent(n int64) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	s.sending -= n
	if s.budget != nil {
		s.budget.add(-n)
	}
	s.roomLocked()
	s.mu.Unlock()
}

// waitRoom waits while more than limit bytes are queued or being sent to
// the client, until they drain or the session closes (errSJClosed): the
// flow control of a sender that must not outrun its client (the control
// channel's writer, sockjs_channel.go).
func (s *sjSession) waitRoom(limit int64) error {
	for {
		room := s.roomChan(limit)
		select {
		case <-room:
		case <-s.done:
		}
		s.mu.Lock()
		closed, full := s.closed, s.outBytes+s.sending > limit
		s.mu.Unlock()
		if closed {
			return errSJClosed
		}
		if !full {
			return nil
		}
	}
}

// roomChan returns a channel closed once at most limit bytes are queued
// or being sent (closedChan when that is so already, or when the session
// is closed).
func (s *sjSession) roomChan(limit int64) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.outBytes+s.sending <= limit {
		return closedChan
	}
	if s.room == nil {
		s.room = make(chan struct{})
	}
	return s.room
}

// Close closes the session; receivers send the close frame.
func (s *sjSession) Close(code int, reason string) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed, s.code, s.reason = true, code, reason
	close(s.done)
	s.roomLocked()
	attached := s.attached
	s.mu.Unlock()
	sjWake(s.wakeOut)
	sjWake(s.wakeIn)
	if !s.inMap && !attached {
		s.release()
	}
	return nil
}

// abort closes the session because its receiving connection broke.
func (s *sjSession) abort() {
	s.Close(1002, "Connection interrupted")
	s.detach()
}

type sjAttach int

const (
	sjAttached sjAttach = iota
	sjBusy
	sjClosed
)

// attach makes the caller the session's receiver.
func (s *sjSession) attach() sjAttach {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attached {
		return sjBusy
	}
	if s.closed && len(s.out) == 0 {
		return sjClosed
	}
	s.attached = true
	if s.timer != nil {
		s.timer.Stop()
	}
	return sjAttached
}

// detach ends the current receiver; without a new one within
// DisconnectDelay the session is closed and forgotten.
func (s *sjSession) detach() {
	s.mu.Lock()
	if !s.attached {
		s.mu.Unlock()
		return
	}
	s.attached = false
	closed := s.closed
	if s.inMap {
		if s.timer != nil {
			s.timer.Stop()
		}
		s.timer = time.AfterFunc(s.h.opts.DisconnectDelay, s.expire)
	}
	s.mu.Unlock()
	if !s.inMap && closed {
		s.release()
	}
}

// expire runs DisconnectDelay after the last receiver left: the session
// is closed (if it was not) and forgotten.
func (s *sjSession) expire() {
	s.mu.Lock()
	if s.attached {
		s.mu.Unlock()
		return
	}
	if !s.closed {
		s.closed, s.code, s.reason = true, 1002, "Connection interrupted"
		close(s.done)
	}
	s.mu.Unlock()
	sjWake(s.wakeIn)
	s.h.forget(s)
	s.release()
}

// release takes the session out of the server's count, once.
func (s *sjSession) release() {
	s.mu.Lock()
	gone := s.gone
	s.gone = true
	if !gone {
		s.dropOutLocked() // never to be sent
	}
	s.mu.Unlock()
	if !gone {
		s.h.released(s)
	}
}
