package gaffer

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStreamReaderSharesTheRing: a reader's chunks are the ring's own
// bytes (a reference, not a copy); a slab the ring lets go of while a
// reader holds it counts in the budget until the reader releases it; the
// chunks a live reader has not read are kept for it beyond the ring (in
// the budget too), not those of a reader that stopped reading.
func TestStreamReaderSharesTheRing(t *testing.T) {
	s := NewStream("out", 64<<10)
	base := subscriberMemory.used.Load()
	rd := s.reader(0, false)
	defer rd.Close()
	big := ringPattern(1, 40<<10) // a slab of its own
	s.Write(big)
	b := rd.read()
	if len(b.chunks) != 1 || !bytes.Equal(b.chunks[0].Data, big) || b.gap != nil {
		t.Fatalf("read %d chunks, gap %v", len(b.chunks), b.gap)
	}
	s.mu.RLock()
	shared := &s.chunks[s.head].data()[0] == &b.chunks[0].Data[0]
	s.mu.RUnlock()
	if !shared {
		t.Fatal("the reader got a copy of the chunk")
	}
	checkRingMemory(t, s, 64<<10, 1, len(big), 0, 1)
	if used := subscriberMemory.used.Load() - base; used != 0 {
		t.Fatalf("a chunk still in the ring counts %d bytes", used)
	}
	// Two more large chunks push the first out of the ring; the reader
	// still holds it, and chunk 2, which it has not read, is kept for it.
	s.Write(ringPattern(2, 40<<10))
	s.Write(ringPattern(3, 40<<10))
	if !bytes.Equal(b.chunks[0].Data, big) {
		t.Fatal("a held chunk changed")
	}
	if used := subscriberMemory.used.Load() - base; used != 64<<10+40<<10 {
		t.Fatalf("budget: %d bytes, want the held slab (65536) and the kept chunk (40960)", used)
	}
	b.release()
	if used := subscriberMemory.used.Load() - base; used != 40<<10 {
		t.Fatalf("%d bytes counted after the release, want the kept chunk's", used)
	}
	for seq := uint64(2); seq <= 3; seq++ { // 80 KiB: two batches
		b = rd.read()
		if b.gap != nil || len(b.chunks) != 1 || b.chunks[0].Seq != seq || !bytes.Equal(b.chunks[0].Data, ringPattern(seq, 40<<10)) {
			t.Fatalf("after the ring moved on: gap %v, %d chunks", b.gap, len(b.chunks))
		}
		b.release()
	}
	if used := subscriberMemory.used.Load() - base; used != 0 {
		t.Fatalf("%d bytes counted once the reader caught up", used)
	}
	// A reader that stops reading has nothing kept: it gets a gap.
	rd.active.Store(time.Now().UnixNano() - 2*readerStall.Load())
	s.Write(ringPattern(4, 40<<10))
	s.Write(ringPattern(5, 40<<10))
	b = rd.read()
	if b.gap == nil || b.gap.From != 4 || b.gap.To != 4 || len(b.chunks) != 1 || b.chunks[0].Seq != 5 {
		t.Fatalf("a stalled reader: gap %v, %d chunks", b.gap, len(b.chunks))
	}
	b.release()
	if b = rd.read(); !b.empty() || b.eof {
		t.Fatal("a caught-up reader read something")
	}
	select {
	case <-rd.ready():
		t.Fatal("ready with nothing to read")
	default:
	}
	ready := rd.ready()
	s.Write([]byte("x"))
	<-ready
	s.Close()
	b = rd.read()
	if len(b.chunks) != 1 || !b.eof {
		t.Fatalf("at the end: %d chunks, eof %v", len(b.chunks), b.eof)
	}
	b.release()
}

// TestStreamReadersUnderConcurrentWrites: while the pipe reader writes
// chunks of every size, readers of every pace (one holding its batches
// for a while) get every chunk exactly as written, in order, or a gap for
// exactly the chunks they lost. Run with -race: the readers use the
// slabs outside the lock while the writer appends to them.
func TestStreamReadersUnderConcurrentWrites(t *testing.T) {
	for _, ring := range []int{0, 4096, 64 << 10, 256 << 10} {
		s := NewStream("out", ring)
		const writes = 2000
		sizes := make([]int, writes)
		rng := rand.New(rand.NewPCG(uint64(ring), 7))
		for i := range sizes {
			switch rng.IntN(4) {
			case 0:
				sizes[i] = 1 + rng.IntN(100)
			case 1:
				sizes[i] = 1 + rng.IntN(4096)
			case 2:
				sizes[i] = 64 << 10
			default:
				sizes[i] = 1 + rng.IntN(70000)
			}
		}
		var wg sync.WaitGroup
		for pace := range 4 {
			rd := s.reader(0, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer rd.Close()
				next, gaps := uint64(1), 0
				for {
					b := rd.read()
					if b.gap != nil {
						if b.gap.From != next || b.gap.To < b.gap.From {
							t.Errorf("ring %d reader %d: gap %v, next %d", ring, pace, b.gap, next)
						}
						gaps++
						next = b.gap.To + 1
					}
					for _, c := range b.chunks {
						if c.Seq != next || !bytes.Equal(c.Data, ringPattern(c.Seq, sizes[c.Seq-1])) {
							t.Errorf("ring %d reader %d: chunk %d (%d bytes), want %d", ring, pace, c.Seq, len(c.Data), next)
						}
						next = c.Seq + 1
					}
					if pace > 0 && !b.empty() {
						time.Sleep(time.Duration(pace*pace) * 100 * time.Microsecond) // a slow client
						for _, c := range b.chunks {
							if !bytes.Equal(c.Data, ringPattern(c.Seq, sizes[c.Seq-1])) {
								t.Errorf("ring %d reader %d: chunk %d changed while held", ring, pace, c.Seq)
							}
						}
					}
					eof := b.eof
					b.release()
					if eof {
						if next != writes+1 {
							t.Errorf("ring %d reader %d: ended at %d", ring, pace, next)
						}
						return
					}
					if b.empty() {
						<-rd.ready()
					}
				}
			}()
		}
		for i, n := range sizes {
			s.Write(ringPattern(uint64(i+1), n))
		}
		s.Close()
		wg.Wait()
		chunks, _ := s.Backlog(0)
		held := 0
		for _, c := range chunks {
			held += len(c.Data)
		}
		checkRingMemory(t, s, ring, len(chunks), held, 0, 0)
	}
}

// TestReaderBatchesShrinkWhenTheBudgetIsShort: with the budget spent, a
// reader takes one chunk at a time.
func TestReaderBatchesShrinkWhenTheBudgetIsShort(t *testing.T) {
	s := NewStream("out", 1<<20)
	for i := 1; i <= 10; i++ {
		s.Write(ringPattern(uint64(i), 4096))
	}
	rd := s.reader(0, true)
	defer rd.Close()
	b := rd.read()
	if len(b.chunks) != 10 {
		t.Fatalf("with room: %d chunks in a batch", len(b.chunks))
	}
	b.release()
	defer setMaxSubscriberMemory(subscriberMemory.limit.Load())
	subscriberMemory.limit.Store(subscriberMemory.used.Load()) // nothing left
	rd = s.reader(0, true)
	defer rd.Close()
	for i := 1; i <= 10; i++ {
		b := rd.read()
		if len(b.chunks) != 1 || b.chunks[0].Seq != uint64(i) {
			t.Fatalf("with the budget spent: %d chunks", len(b.chunks))
		}
		b.release()
	}
}

// FuzzAppendJSONString: the STREAM events' hand-written string encoding
// is byte for byte what encoding/json writes.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "y\n", "<a href=\"x\">&amp;</a>", "\x00\x01\x1f\x7f\b\f\t\r\n\\",
		"caf\xc3\xa9 \xe2\x80\xa8 \xe2\x80\xa9", "\xff\xfe\xc3", "\xed\xa0\x80 surrogate", "日本語"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, _ := json.Marshal(string(data))
		if got := appendJSONString(nil, data); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, want %s", data, got, want)
		}
	})
}

// FuzzSSEPieces: an event written out piece by piece (as a feed does, so
// that a slow client holds one piece) is exactly the event appendSSE
// builds, and parses back to the data.
func FuzzSSEPieces(f *testing.F) {
	for _, s := range []string{"", "a", "a\n", "a\r\nb\rc\n\n", strings.Repeat("line\n", 10000), strings.Repeat("x", 40000) + "\r"} {
		f.Add([]byte(s), uint16(16))
	}
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		want := appendSSE(nil, "out", 7, data)
		b := appendSSEHead(nil, "out", 7)
		var got []byte
		rest := data
		for done := false; !done; {
			b, rest, done = appendSSEData(b, rest, int(limit)+1, hasCR(data))
			got, b = append(got, b...), b[:0]
		}
		got = append(append(got, b...), '\n')
		if !bytes.Equal(got, want) {
			t.Fatalf("pieces %q, whole %q", got, want)
		}
		var lines []string
		for _, l := range strings.Split(strings.TrimSuffix(string(want), "\n\n"), "\n")[2:] {
			lines = append(lines, strings.TrimPrefix(l, "data: "))
		}
		norm := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(string(data))
		if strings.Join(lines, "\n") != norm {
			t.Fatalf("%q parses back as %q", data, strings.Join(lines, "\n"))
		}
	})
}

func TestMaxSubscriberMemoryConfig(t *testing.T) {
	dir := cfgWrite(t, map[string]string{"gaffer.ini": "[gaffer]\nmax_subscriber_memory = 8MB\n"})
	cfg, err := LoadConfig(filepath.Join(dir, "gaffer.ini"))
	if err != nil || cfg.MaxSubscriberMemory != 8<<20 {
		t.Fatalf("8MB: %v %v", cfg, err)
	}
	for _, bad := range []string{"0", "100K", "lots"} {
		os.WriteFile(filepath.Join(dir, "gaffer.ini"), []byte("[gaffer]\nmax_subscriber_memory = "+bad+"\n"), 0o644)
		if _, err := LoadConfig(filepath.Join(dir, "gaffer.ini")); err == nil || !strings.Contains(err.Error(), "max_subscriber_memory: expected a size of at least 1MB") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
