package gaffer

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestStreamRingResumeAndGap(t *testing.T) {
	s := NewStream("out", 100)
	for i := 1; i <= 30; i++ {
		s.Write([]byte(fmt.Sprintf("%09d\n", i))) // 10 bytes each
	}
	chunks, gap := s.Backlog(0)
	if len(chunks) != 10 || chunks[0].Seq != 21 || string(chunks[0].Data) != "000000021\n" {
		t.Fatalf("backlog: %d chunks, first %+v", len(chunks), chunks[0])
	}
	if gap == nil || gap.From != 1 || gap.To != 20 {
		t.Fatalf("gap %+v", gap)
	}
	chunks, gap = s.Backlog(25)
	if gap != nil || len(chunks) != 5 || chunks[0].Seq != 26 {
		t.Fatalf("resume after 25: %+v %+v", chunks, gap)
	}
	if c, g := s.Backlog(30); len(c) != 0 || g != nil {
		t.Fatal("nothing after the last chunk")
	}
}

func TestStreamWrapsAcrossRingEnd(t *testing.T) {
	s := NewStream("out", 64)
	var want []string
	for i := 0; i < 50; i++ {
		d := fmt.Sprintf("chunk-%03d|", i) // 10 bytes, does not divide 64 evenly with 4096 growth
		s.Write([]byte(d))
		want = append(want, d)
	}
	chunks, _ := s.Backlog(0)
	for i, c := range chunks {
		exp := want[c.Seq-1]
		if string(c.Data) != exp {
			t.Fatalf("chunk %d seq %d: %q want %q", i, c.Seq, c.Data, exp)
		}
	}
	if len(chunks) != 6 {
		t.Fatalf("%d chunks kept in 64 bytes", len(chunks))
	}
}

func TestStreamSubscribersAndOverflow(t *testing.T) {
	s := NewStream("out", 1024)
	s.Write([]byte("old"))
	back, _, fast := s.Subscribe(0, true, 100)
	_, _, slow := s.Subscribe(0, false, 1)
	if len(back) != 1 || string(back[0].Data) != "old" {
		t.Fatalf("backlog %v", back)
	}
	s.Write([]byte("a"))
	s.Write([]byte("b"))
	if !slow.Overflowed() {
		t.Fatal("slow subscriber not cut off")
	}
	s.Close()
	var got []string
	for c := range fast.C {
		got = append(got, string(c.Data))
	}
	if fmt.Sprint(got) != "[a b]" {
		t.Fatalf("fast got %v", got)
	}
	<-s.Done()
}

func BenchmarkStreamWrite(b *testing.B) {
	s := NewStream("out", DefaultRingSize)
	_, _, sub := s.Subscribe(0, false, 1<<20)
	go func() {
		for range sub.C {
		}
	}()
	data := make([]byte, 64<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.Write(data)
	}
	s.Close()
}

// TestStreamRingSmallerThanOneRead is the crash of issue 12: a ring
// smaller than one pipe read, a burst larger than the ring, then a small
// chunk (it panicked with "slice bounds out of range").
func TestStreamRingSmallerThanOneRead(t *testing.T) {
	for _, ring := range []int{0, 1, 4096, 16 << 10} {
		s := NewStream("out", ring)
		var written [][]byte
		for _, n := range []int{64 << 10, 10, 64 << 10, 64 << 10, 3, ring, ring + 1, 5} {
			if n == 0 {
				continue
			}
			p := ringPattern(uint64(len(written)+1), n)
			s.Write(p)
			written = append(written, p)
			checkRing(t, s, written, ring)
		}
	}
}

// ringPattern is the content of chunk seq: n bytes that depend on seq and
// position, so that a chunk read from the wrong place shows.
func ringPattern(seq uint64, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(seq*7 + uint64(i)*13 + uint64(i>>8))
	}
	return p
}

// checkRing verifies the invariants of a ring of size ring after the
// chunks written (chunk i has sequence number i+1):
//   - sequence numbers are contiguous and end at the last chunk written;
//   - every chunk held is exactly what was written;
//   - a gap covers exactly the chunks not held, from 1;
//   - the ring holds the newest chunks that fit in its size (always the
//     newest one), so that what is held is the tail of what was written;
//     chunks kept for readers come right before it;
//   - its memory is about what it holds (see checkRingMemory);
//   - a resume from any point gives the same tail and a gap exactly up to
//     the oldest chunk held.
func checkRing(t testing.TB, s *Stream, written [][]byte, ring int) {
	t.Helper()
	last := uint64(len(written))
	if got := s.LastSeq(); got != last {
		t.Fatalf("LastSeq %d after %d writes", got, last)
	}
	chunks, gap := s.Backlog(0)
	if last == 0 {
		if len(chunks) != 0 || gap != nil {
			t.Fatalf("empty stream: %d chunks, gap %v", len(chunks), gap)
		}
		return
	}
	if len(chunks) == 0 {
		t.Fatalf("ring %d: the newest chunk (%d bytes) is not held", ring, len(written[last-1]))
	}
	s.mu.RLock()
	nkept := s.win - s.head
	s.mu.RUnlock()
	first := chunks[0].Seq
	held, kept := 0, 0
	for i, c := range chunks {
		if c.Seq != first+uint64(i) {
			t.Fatalf("ring %d: chunk %d has seq %d, want %d", ring, i, c.Seq, first+uint64(i))
		}
		if !bytes.Equal(c.Data, written[c.Seq-1]) {
			t.Fatalf("ring %d: chunk %d differs from what was written", ring, c.Seq)
		}
		if i < nkept {
			kept += len(c.Data)
		} else {
			held += len(c.Data)
		}
	}
	if chunks[len(chunks)-1].Seq != last {
		t.Fatalf("ring %d: newest chunk held is %d, want %d", ring, chunks[len(chunks)-1].Seq, last)
	}
	switch {
	case first == 1 && gap != nil:
		t.Fatalf("ring %d: gap %v although everything is held", ring, gap)
	case first > 1 && (gap == nil || gap.From != 1 || gap.To != first-1):
		t.Fatalf("ring %d: gap %v, want 1..%d", ring, gap, first-1)
	}
	if inRing := len(chunks) - nkept; inRing > 1 && held > ring {
		t.Fatalf("ring %d holds %d bytes in %d chunks", ring, held, inRing)
	}
	if winFirst := chunks[nkept].Seq; winFirst > 1 && held+len(written[winFirst-2]) <= max(ring, 0) {
		t.Fatalf("ring %d: chunk %d (%d bytes) out of the ring although %d bytes are in it", ring, winFirst-1, len(written[winFirst-2]), held)
	}
	checkRingMemory(t, s, ring, len(chunks)-nkept, held, kept, 0)
	for _, after := range []uint64{first - 1, first, last - 1, last, (first + last) / 2} {
		if after > last {
			continue
		}
		cs, g := s.Backlog(after)
		if want := int(last - max(after, first-1)); len(cs) != want {
			t.Fatalf("ring %d: backlog after %d: %d chunks, want %d", ring, after, len(cs), want)
		}
		if after+1 < first && (g == nil || g.From != after+1 || g.To != first-1) || after+1 >= first && g != nil {
			t.Fatalf("ring %d: backlog after %d: gap %v (oldest held %d)", ring, after, g, first)
		}
	}
}

// checkRingMemory verifies the ring's slabs: each one's count of ring
// uses is its held chunks, kept ones included (+1 for the tail), each has
// one reference (the ring's) plus readerRefs, and their memory is at most
// twice what is held plus a few slabs (tails partly used or partly
// evicted).
func checkRingMemory(t testing.TB, s *Stream, ring, nchunks, held, kept int, readerRefs int32) {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.chunks)-s.win != nchunks || s.held != held || s.kept != kept {
		t.Fatalf("ring %d: %d entries holding %d bytes (%d kept) for %d chunks of %d bytes (%d kept)", ring, len(s.chunks)-s.win, s.held, s.kept, nchunks, held, kept)
	}
	uses := map[*slab]int{}
	for _, rc := range s.chunks[s.head:] {
		uses[rc.sl]++
	}
	if s.tail != nil {
		uses[s.tail]++
	}
	mem := 0
	for sl, n := range uses {
		if sl.inRing != n {
			t.Fatalf("ring %d: a slab counts %d uses, the ring has %d", ring, sl.inRing, n)
		}
		if r := sl.refs.Load(); r != 1+readerRefs {
			t.Fatalf("ring %d: a slab has %d references, want %d", ring, r, 1+readerRefs)
		}
		mem += len(sl.buf)
	}
	if mem > 2*(held+kept)+4*s.slabCap {
		t.Fatalf("ring %d: %d bytes of slabs for %d bytes held (slabs up to %d)", ring, mem, held+kept, s.slabCap)
	}
}

// TestStreamRingProperty drives random chunk sizes through random ring
// sizes and checks the ring's invariants after every write.
func TestStreamRingProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 300; round++ {
		ring := []int{0, 1, 7, 100, 4096, 5000, 16 << 10, 64 << 10, 256 << 10}[rng.IntN(9)]
		if rng.IntN(3) == 0 {
			ring = rng.IntN(70000)
		}
		var sizes []int
		for i := 0; i < 60; i++ {
			var n int
			switch rng.IntN(4) {
			case 0:
				n = 1 + rng.IntN(16)
			case 1:
				n = 1 + rng.IntN(ring+2)
			case 2:
				n = 64 << 10
			default:
				n = 1 + rng.IntN(100000)
			}
			sizes = append(sizes, n)
		}
		driveRing(t, ring, sizes, uint64(round))
	}
}

// driveRing writes chunks of the given sizes to a ring of size ring and
// checks its invariants after every write, while a reader (its pace and
// stalls drawn from seed) holds batches across writes, so that chunks are
// evicted while a reader sends them: what it holds never changes, it gets
// every chunk or a gap for exactly those it lost, and once it lets go the
// ring's references are back to one and the budget counts only what is
// kept for the reader.
func driveRing(t testing.TB, ring int, sizes []int, seed uint64) {
	t.Helper()
	base := subscriberMemory.used.Load()
	s := NewStream("out", ring)
	rd := s.reader(0, true)
	defer rd.Close()
	var written [][]byte
	var held streamBatch
	next := uint64(1)
	for i, n := range sizes {
		p := ringPattern(uint64(len(written)+1), n)
		s.Write(p)
		written = append(written, p)
		for _, c := range held.chunks {
			if !bytes.Equal(c.Data, written[c.Seq-1]) {
				t.Fatalf("ring %d: held chunk %d changed", ring, c.Seq)
			}
		}
		held.release()
		s.mu.RLock()
		kept := int64(s.kept)
		s.mu.RUnlock()
		if used := subscriberMemory.used.Load(); used != base+kept {
			t.Fatalf("ring %d: the budget counts %d bytes after the reader let go, %d kept", ring, used-base, kept)
		}
		checkRing(t, s, written, ring)
		if (seed>>(i%61))&7 == 0 {
			rd.active.Store(0) // its client stopped reading: nothing is kept for it
		}
		if (seed>>(i%64))&1 == 0 {
			continue // the reader is busy
		}
		held = rd.read()
		if g := held.gap; g != nil {
			if g.From != next || g.To < g.From {
				t.Fatalf("ring %d: gap %v, next %d", ring, g, next)
			}
			next = g.To + 1
		}
		for _, c := range held.chunks {
			if c.Seq != next || !bytes.Equal(c.Data, written[c.Seq-1]) {
				t.Fatalf("ring %d: reader got chunk %d, want %d", ring, c.Seq, next)
			}
			next++
		}
	}
	held.release()
}

// FuzzStreamRing: the first two bytes choose the ring size, each further
// pair of bytes one chunk size; the reader's pace is drawn from the data.
func FuzzStreamRing(f *testing.F) {
	f.Add([]byte{0x40, 0x00, 0xff, 0xff, 0x00, 0x0a})
	f.Add([]byte{0x00, 0x00, 0x00, 0x01, 0x00, 0x01})
	f.Add([]byte{0x10, 0x00, 0x10, 0x00, 0x10, 0x01, 0x00, 0x05, 0x20, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		ring := int(data[0])<<8 | int(data[1])
		var sizes []int
		var seed uint64
		for i := 2; i+1 < len(data) && len(sizes) < 200; i += 2 {
			n := int(data[i])<<8 | int(data[i+1])
			if n == 0 {
				n = 1
			}
			sizes = append(sizes, n)
			seed = seed*31 + uint64(n)
		}
		driveRing(t, ring, sizes, seed)
	})
}
