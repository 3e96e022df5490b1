package gaffer

import (
	"fmt"
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
