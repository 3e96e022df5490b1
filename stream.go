package gaffer

import (
	"sync"
)

// Chunk is one piece of output: what one read of the pipe returned, with
// its sequence number (1, 2, … per stream). Data must not be modified.
type Chunk struct {
	Seq  uint64
	Data []byte
}

// Gap tells a reader that the chunks From..To (inclusive) are gone from the
// ring buffer and will never be delivered.
type Gap struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// Stream is one output stream of a process (a redirect_output label, or a
// custom stream). It keeps the most recent output in a ring buffer, numbers
// every chunk, and fans chunks out to subscribers through bounded queues.
// The pipe reader never waits for a subscriber: one that falls behind is
// cut off (its channel closed, Overflowed true). A Stream is safe for
// concurrent use.
type Stream struct {
	Label string

	mu      sync.Mutex
	ring    []byte // circular buffer, grows up to max
	max     int
	total   int64 // bytes ever written
	chunks  []ringChunk
	head    int // index of the oldest live entry in chunks
	nextSeq uint64
	subs    map[*StreamSub]struct{}
	done    bool
	doneCh  chan struct{}
}

type ringChunk struct {
	seq uint64
	off int64 // absolute offset of the first byte
	n   int
}

// StreamSub is a subscription to a Stream. Read chunks from C; C is closed
// when the stream ends, on Close, or on overflow.
type StreamSub struct {
	C          <-chan Chunk
	c          chan Chunk
	s          *Stream
	closed     bool
	overflowed bool
}

// DefaultStreamQueue is the queue length of a stream subscription made
// with size 0.
const DefaultStreamQueue = 1024

// NewStream returns a stream keeping up to ringSize bytes of history.
func NewStream(label string, ringSize int) *Stream {
	return &Stream{Label: label, max: ringSize, nextSeq: 1, subs: map[*StreamSub]struct{}{}, doneCh: make(chan struct{})}
}

// Write records p as one chunk and hands it to the subscribers. p is
// copied. It returns the chunk's sequence number.
func (s *Stream) Write(p []byte) uint64 {
	if len(p) == 0 {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return 0
	}
	seq := s.nextSeq
	s.nextSeq++
	s.store(seq, p)
	if len(s.subs) > 0 {
		c := Chunk{Seq: seq, Data: append([]byte(nil), p...)}
		for sub := range s.subs {
			select {
			case sub.c <- c:
			default:
				sub.overflowed = true
				s.dropLocked(sub)
			}
		}
	}
	return seq
}

// store copies p into the ring.
func (s *Stream) store(seq uint64, p []byte) {
	if s.max <= 0 || len(p) > s.max {
		// Too big to keep (or no history wanted): drop the whole history so
		// that readers see a gap rather than a hole in the middle.
		s.total += int64(len(p))
		s.chunks = s.chunks[:0]
		s.head = 0
		return
	}
	if len(s.ring) < s.max && s.total+int64(len(p)) > int64(len(s.ring)) {
		// Grow lazily: most streams never write much. While the ring is
		// smaller than max it has never wrapped, so total <= len(ring).
		n := max(2*len(s.ring), 4096, int(s.total)+len(p))
		n = min(n, s.max)
		r := make([]byte, n)
		copy(r, s.ring[:s.total])
		s.ring = r
	}
	size := int64(len(s.ring))
	off := s.total
	pos := int(off % size)
	n := copy(s.ring[pos:], p)
	if n < len(p) {
		copy(s.ring, p[n:])
	}
	s.total += int64(len(p))
	// Evict chunks whose bytes were overwritten.
	low := s.total - size
	for s.head < len(s.chunks) && s.chunks[s.head].off < low {
		s.head++
	}
	if s.head > 64 && s.head*2 > len(s.chunks) {
		s.chunks = append(s.chunks[:0], s.chunks[s.head:]...)
		s.head = 0
	}
	s.chunks = append(s.chunks, ringChunk{seq: seq, off: off, n: len(p)})
}

func (s *Stream) chunkData(rc ringChunk) []byte {
	out := make([]byte, rc.n)
	size := int64(len(s.ring))
	pos := int(rc.off % size)
	n := copy(out, s.ring[pos:])
	if n < rc.n {
		copy(out[n:], s.ring)
	}
	return out
}

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
		s.subs[sub] = struct{}{}
	}
	return chunks, gap, sub
}

// Backlog returns the chunks after sequence number after still in the ring
// and a gap for those that are gone.
func (s *Stream) Backlog(after uint64) ([]Chunk, *Gap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backlogLocked(after)
}

func (s *Stream) backlogLocked(after uint64) ([]Chunk, *Gap) {
	last := s.nextSeq - 1
	if after >= last {
		return nil, nil
	}
	first := last + 1 // oldest seq still held
	if s.head < len(s.chunks) {
		first = s.chunks[s.head].seq
	}
	var gap *Gap
	if after+1 < first {
		gap = &Gap{From: after + 1, To: first - 1}
	}
	var out []Chunk
	for _, rc := range s.chunks[s.head:] {
		if rc.seq > after {
			out = append(out, Chunk{Seq: rc.seq, Data: s.chunkData(rc)})
		}
	}
	return out, gap
}

// LastSeq returns the sequence number of the last chunk written (0 when
// none).
func (s *Stream) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextSeq - 1
}

// Close ends the stream: subscribers' channels are closed after the
// chunks already queued.
func (s *Stream) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	s.done = true
	for sub := range s.subs {
		s.dropLocked(sub)
	}
	close(s.doneCh)
}

// Done is closed when the stream has ended (the pipe reached EOF).
func (s *Stream) Done() <-chan struct{} { return s.doneCh }

func (s *Stream) dropLocked(sub *StreamSub) {
	if sub.closed {
		return
	}
	sub.closed = true
	delete(s.subs, sub)
	close(sub.c)
}

// Close ends the subscription; it may be called more than once.
func (sub *StreamSub) Close() {
	sub.s.mu.Lock()
	defer sub.s.mu.Unlock()
	sub.s.dropLocked(sub)
}

// Overflowed reports whether the subscription was cut off because its
// reader fell behind.
func (sub *StreamSub) Overflowed() bool {
	sub.s.mu.Lock()
	defer sub.s.mu.Unlock()
	return sub.overflowed
}
