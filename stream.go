package gaffer

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Chunk is one piece of output: what one read of the pipe returned, with
// its sequence number (1, 2, … per stream) and the time gafferd read it
// (its capture time). Data must not be modified.
type Chunk struct {
	Seq  uint64
	Data []byte
	Time time.Time
}

// Gap tells a reader that the chunks From..To (inclusive) are gone from the
// ring buffer and will never be delivered.
type Gap struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// Stream is one output stream of a process (a redirect_output label, or a
// custom stream). It keeps the most recent output in a ring buffer and
// numbers every chunk. The pipe reader never waits for a reader of the
// stream: gafferd's own readers (the feeds and websockets, see
// streamsub.go) read the ring at their own pace, by sequence number,
// without a queue, and what it no longer holds when they get there is a
// Gap; the subscriptions of Subscribe have a bounded queue and are cut off
// (their channel closed, Overflowed true) when they fall behind. A Stream
// is safe for concurrent use.
//
// The ring holds whole chunks only: the newest ones whose sizes add up to
// at most the ring size, and always the newest chunk, even when it alone
// is larger than the ring (so that a live reader of a small ring still
// gets it). The chunks live in slabs (streambuf.go) that readers share
// with the ring, so that sending a chunk copies nothing; the ring's memory
// is at most about twice its size.
//
// A chunk that leaves the ring while a reader that is still making
// progress has not read it yet is kept for it, before the ring, as long as
// the readers' budget (max_subscriber_memory) allows: a client a little
// slower than its process, or behind for a moment, loses nothing, and all
// the readers of the stream share what is kept. A reader that has not
// read for readerStall (its client stopped reading) keeps nothing.
type Stream struct {
	Label string

	// mu guards the ring; readers take references to its chunks under the
	// read lock, so that they do not wait for one another.
	mu        sync.RWMutex
	max       int
	chunks    []ringChunk // held chunks, oldest at head: those kept for readers, then the ring's
	head      int
	win       int         // index of the ring's oldest chunk (head <= win)
	held      int         // bytes of the ring's chunks
	kept      int         // bytes of the chunks kept for readers (counted in the budget)
	trimTimer *time.Timer // looks at the kept chunks again; nil when none is kept
	tail      *slab       // where small chunks are appended
	slabSize  int         // size of the next tail (grows up to slabCap)
	slabCap   int
	nextSeq   uint64
	push      map[*StreamSub]struct{} // the subscriptions of Subscribe
	rdrs      map[*StreamSub]struct{} // the readers
	done      bool
	doneCh    chan struct{}

	// What readers wait on, apart from mu so that a waiting reader never
	// delays the pipe reader.
	last  atomic.Uint64 // nextSeq - 1, published after each write
	ended atomic.Bool
	wmu   sync.Mutex
	wake  chan struct{} // closed at the next write or at the end; nil when no reader waits
}

// ringChunk is one held chunk: n bytes at off in slab sl, captured at t
// (unix ns).
type ringChunk struct {
	seq uint64
	sl  *slab
	off int
	n   int
	t   int64
}

// time is the chunk's capture time.
func (rc ringChunk) time() time.Time { return time.Unix(0, rc.t) }

// NewStream returns a stream keeping up to ringSize bytes of history.
func NewStream(label string, ringSize int) *Stream {
	// Tails grow from 1 KiB up to an eighth of the ring (64 KiB at most),
	// so that a quiet process holds little and a partly used tail wastes
	// little of a full ring.
	slabCap := slabMinSize
	for slabCap < slabMaxSize && 16*slabCap <= ringSize {
		slabCap <<= 1
	}
	return &Stream{Label: label, max: max(ringSize, 0), nextSeq: 1, slabSize: slabMinSize, slabCap: slabCap,
		push: map[*StreamSub]struct{}{}, rdrs: map[*StreamSub]struct{}{}, doneCh: make(chan struct{})}
}

// Write records p as one chunk captured now, hands it to the
// subscriptions and wakes the readers. p is copied. It returns the
// chunk's sequence number.
func (s *Stream) Write(p []byte) uint64 {
	if len(p) == 0 {
		return 0
	}
	return s.write(p, time.Now())
}

// write records p as one chunk captured at now.
func (s *Stream) write(p []byte, now time.Time) uint64 {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return 0
	}
	seq := s.nextSeq
	s.nextSeq++
	s.store(seq, p, now.UnixNano())
	if len(s.push) > 0 {
		c := Chunk{Seq: seq, Data: append([]byte(nil), p...), Time: now}
		for sub := range s.push {
			select {
			case sub.c <- c:
			default:
				sub.overflowed = true
				s.dropLocked(sub)
			}
		}
	}
	s.last.Store(seq)
	s.mu.Unlock()
	s.wakeReaders()
	return seq
}

// wakeReaders closes the channel the waiting readers hold.
func (s *Stream) wakeReaders() {
	s.wmu.Lock()
	w := s.wake
	s.wake = nil
	s.wmu.Unlock()
	if w != nil {
		close(w)
	}
}

// store keeps p as chunk seq captured at t (unix ns), evicting the oldest
// chunks to make room.
func (s *Stream) store(seq uint64, p []byte, t int64) {
	n := len(p)
	sl := s.tail
	switch {
	case sl != nil && len(sl.buf)-sl.used >= n:
		// Appended to the tail.
	case 2*n >= s.slabSize:
		// Large: a slab of its own; the tail stays for the small ones.
		sl = newSlab(n)
	default:
		if s.tail != nil {
			s.unringLocked(s.tail) // no longer the tail
		}
		sl = newSlab(s.slabSize)
		sl.inRing = 1
		s.tail = sl
		s.slabSize = min(2*s.slabSize, s.slabCap)
	}
	off := sl.used
	copy(sl.buf[off:], p)
	sl.used += n
	sl.inRing++
	s.appendChunk(ringChunk{seq: seq, sl: sl, off: off, n: n, t: t})
	s.held += n
	for len(s.chunks)-s.win > 1 && s.held > s.max {
		// Out of the ring: kept before it while a reader needs it.
		rc := s.chunks[s.win]
		s.win++
		s.held -= rc.n
		s.kept += rc.n
		subscriberMemory.add(int64(rc.n))
	}
	s.trimLocked()
}

// trimLocked lets go of the kept chunks no live reader needs any more, and
// of the oldest ones while the readers' budget is over what may be kept.
func (s *Stream) trimLocked() {
	if s.head == s.win {
		return
	}
	need := s.neededLocked()
	for s.head < s.win {
		rc := s.chunks[s.head]
		if rc.seq >= need && !subscriberMemory.overKept() {
			break
		}
		s.chunks[s.head] = ringChunk{}
		s.head++
		s.kept -= rc.n
		subscriberMemory.add(-int64(rc.n))
		s.unringLocked(rc.sl)
	}
	if s.head < s.win && s.trimTimer == nil {
		// Look again once the readers it is kept for may have stalled,
		// should the process write nothing more by then.
		s.trimTimer = time.AfterFunc(time.Duration(readerStall.Load()), func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.trimTimer = nil
			s.trimLocked()
		})
	}
}

// neededLocked is the oldest chunk a live reader has not read yet.
func (s *Stream) neededLocked() uint64 {
	need := uint64(math.MaxUint64)
	if len(s.rdrs) == 0 {
		return need
	}
	now := time.Now().UnixNano()
	for r := range s.rdrs {
		if r.next < need && r.live(now) {
			need = r.next
		}
	}
	return need
}

// unringLocked drops one of the ring's uses of sl (a chunk evicted, or the
// tail replaced); the last one lets go of the slab.
func (s *Stream) unringLocked(sl *slab) {
	sl.inRing--
	if sl.inRing == 0 {
		sl.leaveRing()
	}
}

// heldChunks is the number of chunks held (kept and in the ring).
func (s *Stream) heldChunks() int { return len(s.chunks) - s.head }

func (s *Stream) appendChunk(rc ringChunk) {
	if s.head == len(s.chunks) {
		s.chunks, s.head, s.win = s.chunks[:0], 0, 0
	} else if s.head > 64 && s.head*2 > len(s.chunks) {
		n := copy(s.chunks, s.chunks[s.head:])
		clear(s.chunks[n:])
		s.chunks, s.win, s.head = s.chunks[:n], s.win-s.head, 0
	}
	s.chunks = append(s.chunks, rc)
}

// data is the bytes of a held chunk (shared: not to be modified).
func (rc ringChunk) data() []byte { return rc.sl.buf[rc.off : rc.off+rc.n : rc.off+rc.n] }

// Backlog returns the chunks after sequence number after still held (in
// the ring or kept for a reader; copies) and a gap for those that are
// gone.
func (s *Stream) Backlog(after uint64) ([]Chunk, *Gap) {
	s.mu.RLock()
	defer s.mu.RUnlock()
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
		out = append(out, Chunk{Seq: rc.seq, Data: append([]byte(nil), rc.data()...), Time: rc.time()})
	}
	return out, gap
}

// firstSeq is the sequence number of the oldest chunk held (the next one
// when none is).
func (s *Stream) firstSeq() uint64 {
	if s.heldChunks() == 0 {
		return s.nextSeq
	}
	return s.chunks[s.head].seq
}

// LastSeq returns the sequence number of the last chunk written (0 when
// none).
func (s *Stream) LastSeq() uint64 { return s.last.Load() }

// Close ends the stream: subscriptions' channels are closed after the
// chunks already queued, and readers read what is left, then see the end.
// The ring stays readable.
func (s *Stream) Close() {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return
	}
	s.done = true
	for sub := range s.push {
		s.dropLocked(sub)
	}
	s.ended.Store(true)
	close(s.doneCh)
	s.mu.Unlock()
	s.wakeReaders()
}

// Done is closed when the stream has ended (the pipe reached EOF).
func (s *Stream) Done() <-chan struct{} { return s.doneCh }
