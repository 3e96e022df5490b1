package gaffer

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzBusRing drives a small bus with publishes and resumed subscriptions
// and checks each backlog and gap against a model of every event
// published: the backlog is exactly the held events after the resume
// point that match, named as the rule says, and the gap is exactly what
// the ring no longer holds.
func FuzzBusRing(f *testing.F) {
	f.Add([]byte{3, 0, 1, 2, 6, 10, 3})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 255})
	f.Add([]byte{7, 1, 5, 9, 13, 2, 66, 130, 3, 7, 11, 194})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) == 0 {
			return
		}
		size := 1 + int(ops[0]%8)
		b := newBusRing(size)
		eventNames := [][]string{
			{"spawn", "job.default.web.spawn", "proc.web.spawn"},
			{"exit", "proc.3.exit", "proc.web.exit"},
			{"load", "create"},
			{"a.b.c"},
		}
		patterns := []string{".", "proc.web", "spawn", "create", "proc", "a.b", "nothing"}
		var model [][]string // model[i] is the names of event i+1
		for _, op := range ops[1:] {
			switch op % 3 {
			case 0, 1:
				names := eventNames[int(op>>2)%len(eventNames)]
				b.Publish(names[0], nil, names[1:]...)
				model = append(model, names)
			case 2:
				seq := uint64(len(model))
				after := uint64(op>>2) % (seq + 3)
				pat := patterns[int(op>>2)%len(patterns)]
				evs, gap, sub := b.subscribeAfter(after, true, 0, pat)
				sub.Unsubscribe()
				eff := after
				if eff > seq {
					eff = 0
				}
				oldest := uint64(1)
				if seq > uint64(size) {
					oldest = seq - uint64(size) + 1
				}
				var wantGap *Gap
				if eff+1 < oldest {
					wantGap = &Gap{From: eff + 1, To: oldest - 1}
				}
				if fmt.Sprint(gap) != fmt.Sprint(wantGap) {
					t.Fatalf("size %d seq %d after %d: gap %v, want %v", size, seq, after, gap, wantGap)
				}
				var want []string
				for s := max(eff+1, oldest); s <= seq; s++ {
					if n := modelPick(pat, model[s-1]); n != "" {
						want = append(want, fmt.Sprintf("%d:%s", s, n))
					}
				}
				var got []string
				for _, ev := range evs {
					if ev.Data["event"] != ev.Name {
						t.Fatalf("event %d named %s, payload %v", ev.seq, ev.Name, ev.Data["event"])
					}
					got = append(got, fmt.Sprintf("%d:%s", ev.seq, ev.Name))
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("size %d seq %d after %d %s: backlog %v, want %v", size, seq, after, pat, got, want)
				}
			}
		}
	})
}

// modelPick is the naming rule for one pattern, written plainly: "." sees
// the primary name, another pattern the first name it prefixes.
func modelPick(pattern string, names []string) string {
	if pattern == "." {
		return names[0]
	}
	for _, n := range names {
		if n == pattern || len(n) > len(pattern) && n[:len(pattern)+1] == pattern+"." {
			return n
		}
	}
	return ""
}

// FuzzBusIndex checks the bus's pattern index against the rule of the Bus
// doc written plainly: random subscriptions (patterns of a few segments,
// "." and "" among them, trailing dots too) and random events of several
// names; after each publish every live subscription holds exactly one
// event when one of its patterns matches one of the names, under the name
// the rule picks, and none otherwise. Unsubscribes are interleaved, and
// once every subscription is gone the index is empty.
func FuzzBusIndex(f *testing.F) {
	f.Add([]byte{5, 2, 1, 2, 3, 1, 0, 4, 1, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0})
	f.Add([]byte{12, 3, 4, 4, 4, 0, 1, 2, 3, 3, 17, 33, 65, 2, 1, 0, 0, 3, 3, 3, 3, 3, 2, 2})
	f.Add([]byte{1, 0, 1, 3, 200, 100, 50})
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			c := data[0]
			data = data[1:]
			return int(c)
		}
		segs := []string{"", "a", "b", "ab", "job", "7"}
		word := func(pattern bool) string {
			w := segs[next()%len(segs)]
			for n := next() % 4; n > 0; n-- {
				w += "." + segs[next()%len(segs)]
			}
			if pattern {
				switch next() % 8 {
				case 0:
					return "."
				case 1:
					return w + "."
				}
			}
			return w
		}
		b := newBusRing(4)
		nsub := 1 + next()%12
		subs := make([]*Subscription, nsub)
		pats := make([][]string, nsub)
		for i := range subs {
			for n := next() % 4; n > 0; n-- {
				pats[i] = append(pats[i], word(true))
			}
			subs[i] = b.Subscribe(0, pats[i]...)
		}
		for ops := 0; len(data) > 0 && ops < 500; ops++ {
			if next()%5 == 0 {
				subs[next()%nsub].Unsubscribe()
				continue
			}
			names := []string{word(false)}
			for n := next() % 4; n > 0; n-- {
				names = append(names, word(false))
			}
			b.Publish(names[0], map[string]any{"op": ops}, names[1:]...)
			for i, s := range subs {
				if s.closed {
					continue
				}
				want, match := naiveBusPick(pats[i], names)
				select {
				case ev := <-s.C:
					if !match || ev.Name != want || ev.Data["event"] != want || ev.Data["op"] != ops {
						t.Fatalf("patterns %q, names %q: got %s %v, want %q", pats[i], names, ev.Name, ev.Data, want)
					}
				default:
					if match {
						t.Fatalf("patterns %q, names %q: nothing delivered, want %q", pats[i], names, want)
					}
				}
				select {
				case ev := <-s.C:
					t.Fatalf("patterns %q, names %q: delivered twice (%s)", pats[i], names, ev.Name)
				default:
				}
			}
		}
		for _, s := range subs {
			s.Unsubscribe()
		}
		if len(b.subs) != 0 || len(b.every) != 0 || len(b.root.kids) != 0 {
			t.Fatalf("index not empty after every unsubscribe: %d subs, %d every, %d patterns",
				len(b.subs), len(b.every), len(b.root.kids))
		}
	})
}

// naiveBusPick is the Bus doc's rule over every pattern, without the
// index: the most specific pattern (most segments, the first of a tie)
// that matches one of the names sees the first name it matches; with
// none, "." (or no pattern at all) sees the primary name; false means no
// delivery.
func naiveBusPick(patterns []string, names []string) (string, bool) {
	best, bestSegs, all := "", -1, len(patterns) == 0
	for _, p := range patterns {
		if NormalizePattern(p) == "." {
			all = true
			continue
		}
		for _, n := range names {
			if MatchPattern(p, n) {
				if segs := strings.Count(NormalizePattern(p), "."); segs > bestSegs {
					best, bestSegs = n, segs
				}
				break
			}
		}
	}
	if bestSegs >= 0 {
		return best, true
	}
	return names[0], all
}
