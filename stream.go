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
//
// The ring holds whole chunks only: the newest ones whose sizes add up to
// at most the ring size, and always the newest chunk, even when it alone
// is larger than the ring (so that a live reader of a small ring still
// gets it). What is no longer held is reported to readers as a Gap.
type Stream struct {
	Label string

	mu      sync.Mutex
	ring    []byte // circular buffer of the held chunks' bytes, grows up to max
	max     int
	start   int64  // ring offset of the oldest held byte
	end     int64  // ring offset after the newest held byte
	big     []byte // the newest chunk, when it alone is larger than max
	chunks  []ringChunk
	head    int // index of the oldest held entry in chunks
	nextSeq uint64
	subs    map[*StreamSub]struct{}
	done    bool
	doneCh  chan struct{}
}

// ringChunk is one held chunk: n bytes at ring offset off, or in big when
// off is negative.
type ringChunk struct {
	seq uint64
	off int64
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

// store keeps p as chunk seq, evicting the oldest chunks to make room.
func (s *Stream) store(seq uint64, p []byte) {
	n := len(p)
	if s.held() > 0 && s.chunks[s.head].off < 0 {
		// An oversized chunk is held alone; it is now the oldest.
		s.head++
	}
	if n > s.max {
		// Larger than the whole ring: it replaces everything.
		s.head = len(s.chunks)
		s.start, s.end = 0, 0
		if cap(s.big) < n {
			s.big = make([]byte, n)
		}
		s.big = s.big[:n]
		copy(s.big, p)
		s.appendChunk(ringChunk{seq: seq, off: -1, n: n})
		return
	}
	if s.used()+int64(n) > int64(len(s.ring)) && len(s.ring) < s.max {
		s.grow(min(s.max, max(2*len(s.ring), 4096, int(s.used())+n)))
	}
	for s.used()+int64(n) > int64(len(s.ring)) {
		s.start += int64(s.chunks[s.head].n)
		s.head++
	}
	if s.held() == 0 {
		s.start, s.end = 0, 0
	}
	size := int64(len(s.ring))
	pos := int(s.end % size)
	if c := copy(s.ring[pos:], p); c < n {
		copy(s.ring, p[c:])
	}
	s.appendChunk(ringChunk{seq: seq, off: s.end, n: n})
	s.end += int64(n)
}

// used is the number of ring bytes held.
func (s *Stream) used() int64 { return s.end - s.start }

// held is the number of chunks held.
func (s *Stream) held() int { return len(s.chunks) - s.head }

func (s *Stream) appendChunk(rc ringChunk) {
	if s.head == len(s.chunks) {
		s.chunks, s.head = s.chunks[:0], 0
	} else if s.head > 64 && s.head*2 > len(s.chunks) {
		s.chunks = append(s.chunks[:0], s.chunks[s.head:]...)
		s.head = 0
	}
	s.chunks = append(s.chunks, rc)
}

// grow moves the held bytes into a ring of size n, at offsets that start
// at 0.
func (s *Stream) grow(n int) {
	r := make([]byte, n)
	if s.held() > 0 {
		s.copyOut(r[:s.used()], s.start)
		for i := s.head; i < len(s.chunks); i++ {
			s.chunks[i].off -= s.start
		}
	}
	s.end -= s.start
	s.start = 0
	s.ring = r
}

// copyOut copies len(dst) ring bytes from offset off.
func (s *Stream) copyOut(dst []byte, off int64) {
	pos := int(off % int64(len(s.ring)))
	if c := copy(dst, s.ring[pos:]); c < len(dst) {
		copy(dst[c:], s.ring)
	}
}

// chunkData returns a copy of a held chunk's bytes.
func (s *Stream) chunkData(rc ringChunk) []byte {
	out := make([]byte, rc.n)
	if rc.off < 0 {
		copy(out, s.big)
	} else {
		s.copyOut(out, rc.off)
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
	first := s.firstSeq()
	var gap *Gap
	if after+1 < first {
		gap = &Gap{From: after + 1, To: first - 1}
		after = first - 1
	}
	var out []Chunk
	for _, rc := range s.chunks[s.head+int(after+1-first):] {
		out = append(out, Chunk{Seq: rc.seq, Data: s.chunkData(rc)})
	}
	return out, gap
}

// firstSeq is the sequence number of the oldest chunk held (the next one
// when none is).
func (s *Stream) firstSeq() uint64 {
	if s.held() == 0 {
		return s.nextSeq
	}
	return s.chunks[s.head].seq
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
