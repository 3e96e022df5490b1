package gaffer

import (
	"fmt"
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
