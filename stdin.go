package gaffer

import (
	"context"
	"os"
	"sync"
	"time"
)

// Writes to a process's stdin or custom streams (POST /streams/<pid>/stdin,
// the I/O websockets, the channel's and the CLI's send). A child that does
// not read its input fills the pipe, and a write then waits. So that such
// a child cannot make gafferd hold an unbounded number of request bodies
// and goroutines, at most stdinMaxPending writes per process may be under
// way or waiting their turn; one more is refused at once with 503
// stdin_busy (the HTTP handler refuses before reading the body). A write
// waits at most stdinWriteTimeout, and is abandoned as soon as its caller
// goes away (its context ends: the HTTP client disconnected).

// stdinWriteTimeout bounds one write to a child's stdin, so that a child
// that never reads cannot block an API call forever. A variable so that
// tests can lengthen it.
var stdinWriteTimeout = 10 * time.Second

// stdinMaxPending bounds the writes to one process under way or waiting.
const stdinMaxPending = 4

// codeStdinBusy is the error of a write refused because stdinMaxPending
// writes to the process are pending.
const codeStdinBusy = "stdin_busy"

// stdinQueue is the pending writes of one process: their number, and the
// turn to write (held by one writer at a time, so that data never
// interleaves). It exists only while writes are pending.
type stdinQueue struct {
	pending int // guarded by stdinQueues.mu
	turn    chan struct{}
}

var stdinQueues = struct {
	mu sync.Mutex
	m  map[*Process]*stdinQueue
}{m: map[*Process]*stdinQueue{}}

// stdinSlot is one reserved place in a process's pending writes.
type stdinSlot struct {
	p    *Process
	f    *os.File
	q    *stdinQueue
	done bool
}

// Write writes data to stdin (stream "" or "stdin") or to a custom stream.
// Concurrent writers never interleave; a write waits at most
// stdinWriteTimeout, and is refused (stdin_busy) when too many writes to
// the process are pending already.
func (p *Process) Write(stream string, data []byte) error {
	return p.writeCtx(context.Background(), stream, data)
}

// writeCtx is Write, abandoned when ctx ends.
func (p *Process) writeCtx(ctx context.Context, stream string, data []byte) error {
	slot, err := p.reserveWrite(stream)
	if err != nil {
		return err
	}
	defer slot.release()
	return slot.write(ctx, data)
}

// reserveWrite takes a place among the process's pending writes to
// stream, or says why it cannot write there.
func (p *Process) reserveWrite(stream string) (*stdinSlot, error) {
	var f *os.File
	switch stream {
	case "", "stdin":
		if p.stdin == nil {
			return nil, Errorf(CodeForbiddenWrite, 403, "process %d has no stdin (redirect_input is off)", p.ID)
		}
		f = p.stdin
	default:
		c, ok := p.custom[stream]
		if !ok {
			return nil, Errorf(CodeStreamNotFound, 404, "process %d has no stream %q", p.ID, stream)
		}
		f = c
	}
	stdinQueues.mu.Lock()
	defer stdinQueues.mu.Unlock()
	q := stdinQueues.m[p]
	if q == nil {
		q = &stdinQueue{turn: make(chan struct{}, 1)}
		stdinQueues.m[p] = q
	}
	if q.pending >= stdinMaxPending {
		return nil, Errorf(codeStdinBusy, 503, "process %d is not reading its input: %d writes to it are already waiting; try again later", p.ID, q.pending)
	}
	q.pending++
	return &stdinSlot{p: p, f: f, q: q}, nil
}

// write waits for the turn and writes data, for at most
// stdinWriteTimeout, abandoning as soon as ctx ends.
func (s *stdinSlot) write(ctx context.Context, data []byte) error {
	timer := time.NewTimer(stdinWriteTimeout)
	defer timer.Stop()
	select {
	case s.q.turn <- struct{}{}:
	case <-ctx.Done():
		return Errorf("EIO", 500, "write to process %d abandoned: %v", s.p.ID, context.Cause(ctx))
	case <-timer.C:
		return Errorf("EIO", 500, "write to process %d: timed out waiting for the writes before it", s.p.ID)
	}
	defer func() { <-s.q.turn }()
	s.f.SetWriteDeadline(time.Now().Add(stdinWriteTimeout))
	cut := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		s.f.SetWriteDeadline(time.Now()) // ends the write under way
		close(cut)
	})
	_, err := s.f.Write(data)
	if !stop() {
		<-cut // the next writer sets its own deadline after this one
	}
	if err != nil {
		if ctx.Err() != nil {
			return Errorf("EIO", 500, "write to process %d abandoned: %v", s.p.ID, context.Cause(ctx))
		}
		return Errorf("EIO", 500, "write to process %d: %v", s.p.ID, err)
	}
	return nil
}

// release gives the place back; it may be called more than once.
func (s *stdinSlot) release() {
	if s.done {
		return
	}
	s.done = true
	stdinQueues.mu.Lock()
	defer stdinQueues.mu.Unlock()
	if s.q.pending--; s.q.pending == 0 {
		delete(stdinQueues.m, s.p)
	}
}

// tryHoldWrites takes the turn to write to p (stdin and custom streams
// share it) without waiting, so that no write is under way or starts
// until release is called: an upgrade in place hands the pipes over with
// no message cut in half. ok is false when a write is under way.
func (p *Process) tryHoldWrites() (release func(), ok bool) {
	stdinQueues.mu.Lock()
	q := stdinQueues.m[p]
	if q == nil {
		q = &stdinQueue{turn: make(chan struct{}, 1)}
		stdinQueues.m[p] = q
	}
	q.pending++ // keeps q in the map while held
	stdinQueues.mu.Unlock()
	slot := &stdinSlot{p: p, q: q}
	select {
	case q.turn <- struct{}{}:
		return func() { <-q.turn; slot.release() }, true
	default:
		slot.release()
		return nil, false
	}
}
