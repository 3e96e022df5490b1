package gaffer

import (
	"testing"
)

func TestMatchPattern(t *testing.T) {
	cases := []struct {
		p, e string
		want bool
	}{
		{"job.default.dummy", "job.default.dummy.exit", true},
		{"job.default.dummy.exit", "job.default.dummy.exit", true},
		{"job.default.dummy.exit", "job.default.dummy.spawn", false},
		{"a.b", "a.b.c", true},
		{"exit", "job.x.exit", false},
		{"job.def", "job.default.x", false},
		{"a.b.", "a.b.c", true},
		{".", "anything.at.all", true},
		{"", "spawn", true},
		{"job", "job.x.exit", true},
	}
	for _, c := range cases {
		if got := MatchPattern(c.p, c.e); got != c.want {
			t.Errorf("MatchPattern(%q, %q) = %v", c.p, c.e, got)
		}
	}
}

func TestBusDeliversOnceInOrderAndUnsubscribes(t *testing.T) {
	b := NewBus()
	s := b.Subscribe(0, "job", "job.x", ".")
	w := b.Subscribe(0, ".")
	for i := 0; i < 100; i++ {
		b.Publish("job.x.exit", map[string]any{"i": i})
	}
	for i := 0; i < 100; i++ {
		ev := <-s.C
		if ev.Data["i"] != i || ev.Data["event"] != "job.x.exit" {
			t.Fatalf("event %d: %v", i, ev.Data)
		}
	}
	select {
	case ev := <-s.C:
		t.Fatalf("delivered twice: %v", ev)
	default:
	}
	w.Unsubscribe()
	w.Unsubscribe()
	b.Publish("spawn", nil)
	n := 0
	for range w.C {
		n++
	}
	if n != 100 {
		t.Fatalf("wildcard got %d events, want 100 and then closed", n)
	}
}

func TestBusCutsOffSlowSubscriber(t *testing.T) {
	b := NewBus()
	slow := b.Subscribe(2, ".")
	fast := b.Subscribe(10, ".")
	for i := 0; i < 5; i++ {
		b.Publish("e", nil)
	}
	if !slow.Overflowed() || fast.Overflowed() {
		t.Fatal("overflow not reported on the slow one only")
	}
	n := 0
	for range slow.C {
		n++
	}
	if n != 2 || b.Drops() != 1 {
		t.Fatalf("slow got %d, drops %d", n, b.Drops())
	}
}
