package gaffer

import (
	"fmt"
	"strings"
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

// One happening, several names: each subscription gets it once, under
// the name its most specific pattern matched, with the payload saying
// the same name; "." sees the primary name.
func TestBusOneEventManyNames(t *testing.T) {
	b := NewBus()
	names := []string{"exit", "job.default.web.exit", "proc.default.web.exit", "proc.3.exit", "job.web.exit", "proc.web.exit"}
	cases := []struct {
		patterns []string
		want     string
	}{
		{[]string{"."}, "exit"},
		{nil, "exit"},
		{[]string{"exit"}, "exit"},
		{[]string{"proc.web"}, "proc.web.exit"},
		{[]string{"proc.web.exit"}, "proc.web.exit"},
		{[]string{"job"}, "job.default.web.exit"},
		{[]string{"proc"}, "proc.default.web.exit"},
		{[]string{"proc.3"}, "proc.3.exit"},
		{[]string{".", "exit", "proc.web", "job.default"}, "proc.web.exit"}, // the most specific, in order
		{[]string{"job.default", "proc.web"}, "job.default.web.exit"},
		{[]string{"exit", "."}, "exit"},
		{[]string{"spawn", "job.other", "proc.we"}, ""},
	}
	subs := make([]*Subscription, len(cases))
	for i, c := range cases {
		subs[i] = b.Subscribe(0, c.patterns...)
	}
	b.Publish(names[0], map[string]any{"pid": 3}, names[1:]...)
	b.Publish("after", nil, "job.after", "proc.after", "spawn.after", "proc.web.after", "proc.we.after")
	for i, c := range cases {
		var got []Event
		for ev := range drain(subs[i]) {
			got = append(got, ev)
		}
		if c.want == "" {
			if len(got) != 1 || got[0].Data["pid"] != nil {
				t.Errorf("%v: got %v, want only the second event", c.patterns, got)
			}
			continue
		}
		if len(got) < 1 || got[0].Name != c.want || got[0].Data["event"] != c.want || got[0].Data["pid"] != 3 {
			t.Errorf("%v: got %+v, want one event named %s", c.patterns, got, c.want)
		}
		if len(got) > 2 || (len(got) == 2 && got[1].Data["pid"] != nil) {
			t.Errorf("%v: delivered more than once: %+v", c.patterns, got)
		}
	}
	if b.Published() != 2 {
		t.Fatalf("published %d", b.Published())
	}
}

// drain returns what the subscription holds now, then unsubscribes.
func drain(s *Subscription) <-chan Event {
	out := make(chan Event, len(s.C))
	for n := len(s.C); n > 0; n-- {
		out <- <-s.C
	}
	close(out)
	s.Unsubscribe()
	return out
}

// The ring: numbered events, the backlog after a number under the same
// lock as the subscription, a gap for what the ring lost.
func TestBusSubscribeAfter(t *testing.T) {
	ten := func() *Bus {
		b := newBusRing(4)
		for i := 1; i <= 10; i++ {
			b.Publish("spawn", map[string]any{"i": i}, "proc.web.spawn")
		}
		return b
	}
	seqs := func(evs []Event) string {
		var s []string
		for _, ev := range evs {
			s = append(s, fmt.Sprintf("%d:%s:%v", ev.seq, ev.Name, ev.Data["event"]))
		}
		return strings.Join(s, " ")
	}
	cases := []struct {
		after   uint64
		pattern string
		backlog string
		gap     *Gap
	}{
		{0, ".", "7:spawn:spawn 8:spawn:spawn 9:spawn:spawn 10:spawn:spawn", &Gap{From: 1, To: 6}},
		{3, ".", "7:spawn:spawn 8:spawn:spawn 9:spawn:spawn 10:spawn:spawn", &Gap{From: 4, To: 6}},
		{6, "proc.web", "7:proc.web.spawn:proc.web.spawn 8:proc.web.spawn:proc.web.spawn 9:proc.web.spawn:proc.web.spawn 10:proc.web.spawn:proc.web.spawn", nil},
		{8, ".", "9:spawn:spawn 10:spawn:spawn", nil},
		{10, ".", "", nil},
		{99, ".", "7:spawn:spawn 8:spawn:spawn 9:spawn:spawn 10:spawn:spawn", &Gap{From: 1, To: 6}}, // an earlier run's number
		{8, "exit", "", nil},
	}
	for _, c := range cases {
		b := ten()
		evs, gap, sub := b.subscribeAfter(c.after, true, 0, c.pattern)
		if got := seqs(evs); got != c.backlog {
			t.Errorf("after %d %s: backlog %q, want %q", c.after, c.pattern, got, c.backlog)
		}
		if fmt.Sprint(gap) != fmt.Sprint(c.gap) {
			t.Errorf("after %d %s: gap %v, want %v", c.after, c.pattern, gap, c.gap)
		}
		b.Publish("spawn", nil, "proc.web.spawn")
		b.mu.Lock()
		last := b.seq
		b.mu.Unlock()
		select {
		case ev := <-sub.C:
			if ev.seq != last || c.pattern == "exit" {
				t.Errorf("after %d: live event %d, want %d", c.after, ev.seq, last)
			}
		default:
			if c.pattern != "exit" {
				t.Errorf("after %d: no live event", c.after)
			}
		}
		sub.Unsubscribe()
	}
	// No backlog asked: nothing but the live events.
	evs, gap, sub := ten().subscribeAfter(0, false, 0, ".")
	defer sub.Unsubscribe()
	if evs != nil || gap != nil {
		t.Fatalf("no backlog asked: %v %v", evs, gap)
	}
	// Nothing lost on an empty bus.
	if evs, gap, s := newBusRing(4).subscribeAfter(0, true, 0, "."); evs != nil || gap != nil {
		t.Fatalf("empty bus: %v %v", evs, gap)
	} else {
		s.Unsubscribe()
	}
}
