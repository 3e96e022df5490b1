package gaffer

import (
	"math"
	"sync/atomic"
	"time"
)

// Subscriptions and readers of a Stream.
//
// A subscription (Subscribe, for embedders) is pushed a copy of every
// chunk through a bounded queue and cut off when the queue is full.
//
// A reader (Stream.reader: what the feeds and websockets use) has no
// queue at all: it remembers the next sequence number it wants and, when
// it is ready for more, takes the chunks from the ring by reference (the
// ring's slabs, nothing copied), at its own pace; the ring is the only
// buffer, and what it no longer holds when the reader gets there is a Gap.
// A reader holds memory only between a read and the release of what it
// read: one batch, bounded by relayBatch and by the budget shared by every
// reader (max_subscriber_memory), and never less than one whole chunk.

// StreamSub is a subscription to a Stream. Read chunks from C; C is closed
// when the stream ends, on Close, or on overflow.
type StreamSub struct {
	C          <-chan Chunk
	c          chan Chunk // nil for a reader
	s          *Stream
	closed     bool
	overflowed bool

	// A reader's position (written under the stream's read lock, read by
	// the writer under its lock), when it last read (unix ns; readerIdle
	// while it waits for output), and its scratch.
	next   uint64
	head   uint64 // a reader's: the last chunk written when it was made
	active atomic.Int64
	chunks []Chunk
	slabs  []*slab
}

// readerStall is how long a reader may go without reading before the
// chunks it has not read stop being kept for it (its client stopped
// reading), in nanoseconds. Atomic so that tests can change it.
var readerStall = func() (v atomic.Int64) { v.Store(int64(5 * time.Second)); return }()

// readerIdle is a reader's active time while it waits for output.
const readerIdle = math.MaxInt64

// live reports whether the reader is reading (or waiting for output).
func (r *StreamSub) live(now int64) bool {
	a := r.active.Load()
	return a == readerIdle || now-a < readerStall.Load()
}

// DefaultStreamQueue is the queue length of a stream subscription made
// with size 0.
const DefaultStreamQueue = 1024

// Subscribe returns the chunks after sequence number after that the ring
// still holds, a gap when some of them are gone, and a subscription to
// what comes next, all taken atomically. after = 0 with backlog false means
// "only new output". queue is the subscription's queue length
// (DefaultStreamQueue when <= 0).
func (s *Stream) Subscribe(after uint64, backlog bool, queue int) ([]Chunk, *Gap, *StreamSub) {
	if queue <= 0 {
		queue = DefaultStreamQueue
	}
	c := make(chan Chunk, queue)
	sub := &StreamSub{C: c, c: c, s: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	var chunks []Chunk
	var gap *Gap
	if backlog {
		chunks, gap = s.backlogLocked(after)
	}
	if s.done {
		sub.closed = true
		close(c)
	} else {
		s.push[sub] = struct{}{}
	}
	return chunks, gap, sub
}

func (s *Stream) dropLocked(sub *StreamSub) {
	if sub.closed {
		return
	}
	sub.closed = true
	if sub.c != nil {
		delete(s.push, sub)
		close(sub.c)
	}
}

// Close ends the subscription; it may be called more than once.
func (sub *StreamSub) Close() {
	sub.s.mu.Lock()
	defer sub.s.mu.Unlock()
	if sub.c == nil && !sub.closed {
		delete(sub.s.rdrs, sub)
		sub.s.trimLocked()
		subscriberMemory.leave()
	}
	sub.s.dropLocked(sub)
}

// Overflowed reports whether the subscription was cut off because its
// reader fell behind.
func (sub *StreamSub) Overflowed() bool {
	sub.s.mu.RLock()
	defer sub.s.mu.RUnlock()
	return sub.overflowed
}

// reader returns a reader of the chunks after sequence number after
// (backlog), or of the chunks written from now on. Close it when done.
func (s *Stream) reader(after uint64, backlog bool) *StreamSub {
	r := &StreamSub{s: s}
	r.active.Store(time.Now().UnixNano())
	subscriberMemory.enter()
	s.mu.Lock()
	defer s.mu.Unlock()
	r.next = s.nextSeq
	r.head = s.nextSeq - 1
	if backlog && after < s.nextSeq {
		r.next = after + 1
	}
	s.rdrs[r] = struct{}{}
	return r
}

// relayBatch is the most chunk bytes a reader takes in one read (one pipe
// read is at most 64 KiB: this is also one chunk); relayMaxChunks the most
// chunks.
const (
	relayBatch     = 64 << 10
	relayMaxChunks = 256
)

// streamBatch is what one read returns: a gap when chunks were lost
// before the first one, then whole chunks in order, whose data is shared
// with the ring and valid until release.
type streamBatch struct {
	chunks []Chunk
	gap    *Gap
	eof    bool // the stream has ended and everything was read
	slabs  []*slab
}

// empty reports whether the batch has nothing to send.
func (b *streamBatch) empty() bool { return len(b.chunks) == 0 && b.gap == nil }

// size is the number of chunk bytes in the batch.
func (b *streamBatch) size() int {
	n := 0
	for _, c := range b.chunks {
		n += len(c.Data)
	}
	return n
}

// release gives the batch's slabs back; its chunks are invalid after.
func (b *streamBatch) release() {
	for _, sl := range b.slabs {
		sl.release()
	}
	clear(b.slabs)
	clear(b.chunks)
	b.slabs, b.chunks = b.slabs[:0], b.chunks[:0]
}

// read takes the next chunks from the ring: as many whole chunks as fit in
// what the memory budget grants (at least one), with a gap first when the
// ring no longer holds the next one. It does not wait; release the batch
// before the next read.
func (r *StreamSub) read() streamBatch {
	s := r.s
	r.active.Store(time.Now().UnixNano())
	grant := subscriberMemory.grant(relayBatch)
	b := streamBatch{chunks: r.chunks[:0], slabs: r.slabs[:0]}
	s.mu.RLock()
	if r.next < s.nextSeq {
		first := s.firstSeq()
		if r.next < first {
			b.gap = &Gap{From: r.next, To: first - 1}
			r.next = first
		}
		total := 0
		var last *slab
		for _, rc := range s.chunks[min(s.head+int(r.next-first), len(s.chunks)):] {
			if len(b.chunks) == relayMaxChunks || len(b.chunks) > 0 && total+rc.n > grant {
				break
			}
			total += rc.n
			if rc.sl != last {
				rc.sl.refs.Add(1)
				b.slabs = append(b.slabs, rc.sl)
				last = rc.sl
			}
			b.chunks = append(b.chunks, Chunk{Seq: rc.seq, Data: rc.data(), Time: rc.time()})
			r.next = rc.seq + 1
		}
	}
	b.eof = s.done && r.next >= s.nextSeq
	trim := r.next == s.nextSeq && s.head < s.win
	s.mu.RUnlock()
	if trim {
		// Caught up: what was kept for this reader may be let go.
		s.mu.Lock()
		s.trimLocked()
		s.mu.Unlock()
	}
	r.chunks, r.slabs = b.chunks, b.slabs
	return b
}

// pending reports whether there is something to read already.
func (r *StreamSub) pending() bool { return r.next <= r.s.last.Load() }

// ready returns a channel that is closed once there is something to read
// (at once when there already is) or the stream has ended.
func (r *StreamSub) ready() <-chan struct{} {
	s := r.s
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if r.next <= s.last.Load() || s.ended.Load() {
		return closedChan
	}
	r.active.Store(readerIdle)
	if s.wake == nil {
		s.wake = make(chan struct{})
	}
	return s.wake
}

// closedChan is a channel that is always closed.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
