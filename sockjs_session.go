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
		s.out, s.outBytes = nil, 0
		s.mu.Unlock()
		s.h.log.Warn("SockJS client too slow; closing its session", "session", s.id, "remote", s.remote)
		s.Close(1008, "client too slow")
		return errSJClosed
	}
	s.out = append(s.out, msg)
	s.outBytes += n
	s.mu.Unlock()
	sjWake(s.wakeOut)
	return nil
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

// take removes the queued outgoing messages.
func (s *sjSession) take() ([]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	msgs := s.out
	s.out, s.outBytes = nil, 0
	return msgs, s.closed
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
	s.mu.Unlock()
	if !gone {
		s.h.released(s)
	}
}
