package gaffer

import (
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// The memory of output relaying: the slabs that hold a stream's chunks
// (shared, reference-counted, by the ring and by the readers that are
// sending them), the pooled buffers readers format into, and the budget
// of what the readers hold beyond the rings ([gaffer]
// max_subscriber_memory).
//
// A chunk is copied once, from the pipe read into a slab. Readers send it
// from there: a reader takes a reference to the slabs of the chunks it
// reads and gives it back once they are written out. A slab the ring has
// let go of but a reader still holds is memory beyond the ring: it counts
// in the budget until released. So does every formatting buffer a reader
// holds. When the budget is short readers take smaller batches (never less
// than one chunk), and after a large fall the memory is handed back to the
// operating system.

// slab holds consecutive bytes of chunks of one stream. The ring holds one
// reference while any of its chunks is held or while it is the ring's tail
// (where small chunks are appended); each reader batch using it holds one
// more. The last release gives it back to its pool.
type slab struct {
	refs   atomic.Int32
	inRing int    // held chunks in it, +1 while it is the tail; guarded by the stream's mu
	used   int    // bytes filled; guarded by the stream's mu
	buf    []byte // len = capacity of the slab
	class  int    // index in slabPools, -1 when not pooled
}

// slabClasses are the pooled slab sizes: powers of two from 1 KiB to
// 64 KiB (one pipe read). A larger chunk gets a slab of its exact size.
const (
	slabMinSize = 1 << 10
	slabMaxSize = 64 << 10
)

var slabPools [7]sync.Pool // 1K, 2K, … 64K

// slabClass returns the pool index and size of the smallest class that
// holds n bytes, or -1 and n when n is larger than every class.
func slabClass(n int) (int, int) {
	size := slabMinSize
	for i := range slabPools {
		if n <= size {
			return i, size
		}
		size <<= 1
	}
	return -1, n
}

// newSlab returns a slab of at least n bytes with one reference (the
// ring's).
func newSlab(n int) *slab {
	class, size := slabClass(n)
	var sl *slab
	if class >= 0 {
		sl, _ = slabPools[class].Get().(*slab)
	}
	if sl == nil {
		sl = &slab{buf: make([]byte, size), class: class}
	}
	sl.refs.Store(1)
	return sl
}

// leaveRing drops the ring's reference: what readers still hold of the
// slab now counts in the budget, until its last release.
func (sl *slab) leaveRing() {
	subscriberMemory.add(int64(len(sl.buf)))
	sl.release()
}

// release drops one reference; the last one (always after leaveRing)
// returns the slab to its pool.
func (sl *slab) release() {
	if sl.refs.Add(-1) != 0 {
		return
	}
	subscriberMemory.add(-int64(len(sl.buf)))
	if sl.class >= 0 {
		sl.inRing, sl.used = 0, 0
		slabPools[sl.class].Put(sl)
	}
}

// relayBuf is a pooled buffer a reader formats output into (SSE events,
// channel messages, I/O frames). It counts in the budget while held.
type relayBuf struct {
	b       []byte
	counted int64 // what it added to the budget
}

// relayBufMin and the pools of relay buffers: powers of two from 4 KiB to
// 1 MiB.
const relayBufMin = 4 << 10

var relayPools [9]sync.Pool

// getRelayBuf returns an empty buffer with room for at least n bytes.
func getRelayBuf(n int) *relayBuf {
	size, class := relayBufMin, -1
	for i := range relayPools {
		if n <= size {
			class = i
			break
		}
		size <<= 1
	}
	var rb *relayBuf
	if class >= 0 {
		rb, _ = relayPools[class].Get().(*relayBuf)
	} else {
		size = n
	}
	if rb == nil {
		rb = &relayBuf{b: make([]byte, 0, size)}
	}
	rb.counted = int64(cap(rb.b))
	subscriberMemory.add(rb.counted)
	return rb
}

// recount brings the budget up to date after appends grew the buffer.
func (rb *relayBuf) recount() {
	if c := int64(cap(rb.b)); c != rb.counted {
		subscriberMemory.add(c - rb.counted)
		rb.counted = c
	}
}

// free gives the buffer back: to its pool when reuse is set (nobody reads
// it any more), to the garbage collector otherwise (a writer may still be
// reading it).
func (rb *relayBuf) free(reuse bool) {
	subscriberMemory.add(-rb.counted)
	rb.counted = 0
	if !reuse {
		return
	}
	// Into the pool of the largest size it holds (appends may have grown
	// it past its own).
	for i, size := len(relayPools)-1, relayBufMin<<(len(relayPools)-1); i >= 0; i, size = i-1, size>>1 {
		if cap(rb.b) >= size {
			rb.b = rb.b[:0:size]
			relayPools[i].Put(rb)
			return
		}
	}
}

// memBudget is the memory readers hold beyond the rings: slabs the ring
// has let go of, and formatting buffers.
type memBudget struct {
	limit   atomic.Int64
	used    atomic.Int64
	readers atomic.Int64 // readers open, for the footprint
	// peak is the highest footprint (used plus readerFootprint per reader:
	// their connections, goroutines and buffers outside the budget) since
	// memory was last handed back.
	peak      atomic.Int64
	returning atomic.Bool
	returned  atomic.Int64 // when memory was last handed back (unix ns)
}

// readerFootprint is about what one reader's client costs beyond the
// budget (its connection's buffers and goroutines), counted only to tell
// when many of them have gone.
const readerFootprint = 64 << 10

// defaultMaxSubscriberMemory is [gaffer] max_subscriber_memory's default.
const defaultMaxSubscriberMemory = 32 << 20

// memReturnMin is the fall of the readers' footprint (from its peak)
// after which the freed memory is handed back to the operating system, at
// most once per memReturnEvery.
const (
	memReturnMin   = 8 << 20
	memReturnEvery = 5 * time.Second
)

// subscriberMemory is the budget of every reader of every stream.
var subscriberMemory = func() *memBudget {
	b := &memBudget{}
	b.limit.Store(defaultMaxSubscriberMemory)
	return b
}()

// setMaxSubscriberMemory sets the readers' budget (<= 0: the default).
func setMaxSubscriberMemory(n int64) {
	if n <= 0 {
		n = defaultMaxSubscriberMemory
	}
	subscriberMemory.limit.Store(n)
}

// grant returns how many bytes of chunks a reader may take in its next
// batch: want while the budget has room, less when it is short, down to
// relayBufMin (a reader always takes at least one whole chunk).
func (b *memBudget) grant(want int) int {
	free := b.limit.Load() - b.used.Load()
	return int(min(int64(want), max(free, relayBufMin)))
}

// share returns the size of a reader's formatting buffer: want, halved
// (down to relayBufMin) until the readers' buffers together would take at
// most a quarter of the budget, and a quarter of that while it is short.
func (b *memBudget) share(want int) int {
	limit := b.limit.Load() / 4 / max(b.readers.Load(), 1)
	if b.short() {
		limit /= 4
	}
	for want > relayBufMin && int64(want) > limit {
		want >>= 1
	}
	return want
}

// short reports whether the budget is nearly spent (what is kept for
// readers takes at most three quarters of it).
func (b *memBudget) short() bool { return 8*b.used.Load() > 7*b.limit.Load() }

// overKept reports whether the budget is too full to keep chunks for
// readers: a quarter of it stays for what the readers format and send.
func (b *memBudget) overKept() bool { return 4*b.used.Load() > 3*b.limit.Load() }

func (b *memBudget) add(n int64) {
	b.used.Add(n)
	b.changed(n > 0)
}

// enter and leave count the readers open.
func (b *memBudget) enter() { b.readers.Add(1); b.changed(true) }
func (b *memBudget) leave() { b.readers.Add(-1); b.changed(false) }

// changed follows the footprint: its peak as it grows, and, after a large
// fall (clients left or caught up), hands the freed memory back to the
// system rather than keep it for a burst that may never come.
func (b *memBudget) changed(grew bool) {
	f := b.used.Load() + readerFootprint*b.readers.Load()
	if grew {
		for p := b.peak.Load(); f > p && !b.peak.CompareAndSwap(p, f); p = b.peak.Load() {
		}
		return
	}
	if p := b.peak.Load(); p-f >= memReturnMin && f <= p/2 && b.returning.CompareAndSwap(false, true) {
		// A second from now, and at most once per memReturnEvery (a
		// return costs a collection and page faults after it).
		delay := max(time.Second, time.Until(time.Unix(0, b.returned.Load()).Add(memReturnEvery)))
		time.AfterFunc(delay, func() {
			// Two collections: the first moves the pools' buffers to
			// their victim caches, the second frees them.
			runtime.GC()
			debug.FreeOSMemory()
			b.returned.Store(time.Now().UnixNano())
			b.peak.Store(b.used.Load() + readerFootprint*b.readers.Load())
			b.returning.Store(false)
		})
	}
}
