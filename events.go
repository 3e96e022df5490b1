package gaffer

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Event is one manager event, one per happening. Name is the name the
// subscriber sees (see Bus) and Data the JSON payload, whose "event" key
// is that same name. Data is shared: copy it before changing it.
type Event struct {
	Name string
	Data map[string]any
	Time time.Time

	names []string // every name of the happening, primary first (shared, read-only)
	seq   uint64   // the bus's sequence number of the happening (1, 2, …)
}

// DefaultSubscriptionSize is the queue length of a subscription made with
// size 0.
const DefaultSubscriptionSize = 4096

// busRingSize is the number of recent events the bus keeps for clients
// that resume (subscribeAfter).
const busRingSize = 1024

// Bus is the event bus: publishers call Publish, subscribers read from
// bounded channels.
//
// One happening is one event, published under a primary name and its
// aliases (an exit is "exit", "job.default.web.exit",
// "proc.default.web.exit", "proc.3.exit" and, for a job of the default
// session, "job.web.exit" and "proc.web.exit"). Matching is by
// dot-separated segment prefix (reference §7.2): the pattern
// "job.default" matches "job.default.web.exit" but "job.def" does not;
// the pattern "." (or "") matches everything. A subscription receives the
// event once when any of its patterns matches any of its names, and sees
// it under one name: the first name (in the order above) that its most
// specific matching pattern matches (the pattern with the most segments;
// "." counts none). So "." sees the primary name ("exit"),
// "proc.web" sees "proc.web.exit", "job" sees "job.default.web.exit",
// and the payload's "event" says the same name.
//
// Events reach a subscription in publish order. A subscription whose
// queue is full is cut off: its channel is closed and Overflowed reports
// true. Publish never blocks; its cost is proportional to the segments of
// its names and the subscriptions that match, whatever the number of
// subscriptions on other topics: subscriptions are indexed by pattern in
// a trie of segments (busNode), and a publish walks only the paths of its
// names. Every event gets a sequence number and the last
// busRingSize events are kept so that a client can resume
// (subscribeAfter). A Bus is safe for concurrent use.
type Bus struct {
	mu    sync.Mutex
	subs  map[*Subscription]struct{} // every live subscription
	every map[*Subscription]struct{} // those with the pattern "." (or none)
	root  busNode                    // the others, by pattern
	hits  []*Subscription            // scratch of publish: the matching subscriptions
	seq   uint64
	ring  []Event // the last events, ring[(head+i)%len] for i < n
	head  int
	n     int
	drops atomic.Int64
	count atomic.Int64
}

// NewBus returns an empty bus.
func NewBus() *Bus { return newBusRing(busRingSize) }

func newBusRing(size int) *Bus {
	if size < 1 {
		size = 1
	}
	return &Bus{subs: map[*Subscription]struct{}{}, every: map[*Subscription]struct{}{}, ring: make([]Event, size)}
}

// busNode is a node of the bus's pattern trie: the node reached from the
// root by the segments of a pattern ("job.default" = kids["job"],
// then kids["default"]) holds the subscriptions with that pattern. An
// event name matches exactly the patterns of the nodes on its own path
// (the segment-prefix rule), so a publish visits those and nothing else.
type busNode struct {
	kids map[string]*busNode
	subs map[*Subscription]struct{}
}

// nextSegment splits a name or pattern at its first '.': the segment
// before it, the rest after it, and whether there was a '.'.
func nextSegment(s string) (seg, rest string, more bool) {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// add indexes s under the normalised pattern p (not ".").
func (n *busNode) add(p string, s *Subscription) {
	for more := true; more; {
		var seg string
		seg, p, more = nextSegment(p)
		k := n.kids[seg]
		if k == nil {
			if n.kids == nil {
				n.kids = map[string]*busNode{}
			}
			k = &busNode{}
			n.kids[seg] = k
		}
		n = k
	}
	if n.subs == nil {
		n.subs = map[*Subscription]struct{}{}
	}
	n.subs[s] = struct{}{}
}

// remove takes s out of the node of pattern p and prunes the nodes left
// empty, so that the trie holds only the patterns in use.
func (n *busNode) remove(p string, s *Subscription) {
	seg, rest, more := nextSegment(p)
	k := n.kids[seg]
	if k == nil {
		return
	}
	if more {
		k.remove(rest, s)
	} else {
		delete(k.subs, s)
	}
	if len(k.subs) == 0 && len(k.kids) == 0 {
		delete(n.kids, seg)
	}
}

// collect appends to hits the subscriptions of the patterns on the path
// of name, each once per publish (mark is the publish's number).
func (n *busNode) collect(name string, mark uint64, hits []*Subscription) []*Subscription {
	for more := true; more; {
		var seg string
		seg, name, more = nextSegment(name)
		if n = n.kids[seg]; n == nil {
			break
		}
		for s := range n.subs {
			if s.mark != mark {
				s.mark = mark
				hits = append(hits, s)
			}
		}
	}
	return hits
}

// Subscription is one subscriber of a Bus. Read events from C.
type Subscription struct {
	// C delivers the events; it is closed by Unsubscribe or on overflow.
	C          <-chan Event
	c          chan Event
	bus        *Bus
	patterns   evPatterns
	closed     bool
	mark       uint64 // the last publish that collected it (Bus.mu)
	overflowed atomic.Bool
}

// NormalizePattern strips a trailing dot; "." and "" mean every event.
func NormalizePattern(p string) string {
	if p == "." || p == "" {
		return "."
	}
	return strings.TrimSuffix(p, ".")
}

// MatchPattern reports whether event name matches pattern under the
// segment-prefix rule.
func MatchPattern(pattern, name string) bool {
	return matchNormalized(NormalizePattern(pattern), name)
}

func matchNormalized(pattern, name string) bool {
	if pattern == "." {
		return true
	}
	return name == pattern || (len(name) > len(pattern) && name[len(pattern)] == '.' && name[:len(pattern)] == pattern)
}

// evPatterns is a set of normalised patterns, most specific (most
// segments) first, without ".": all says whether "." was among them.
type evPatterns struct {
	list []string
	all  bool
}

// newEvPatterns normalises and orders patterns; none means every event.
func newEvPatterns(patterns []string) evPatterns {
	ps := evPatterns{all: len(patterns) == 0}
	for _, p := range patterns {
		p = NormalizePattern(p)
		if p == "." {
			ps.all = true
			continue
		}
		ps.list = append(ps.list, p)
	}
	// Stable insertion sort by segment count, descending: the lists are
	// short and a tie keeps the caller's order.
	for i := 1; i < len(ps.list); i++ {
		for k := i; k > 0 && strings.Count(ps.list[k], ".") > strings.Count(ps.list[k-1], "."); k-- {
			ps.list[k], ps.list[k-1] = ps.list[k-1], ps.list[k]
		}
	}
	return ps
}

// pick returns the index in names (primary first) of the name under which
// these patterns see the event, or -1 when none matches (the rule of the
// Bus doc).
func (ps *evPatterns) pick(names []string) int {
	for _, p := range ps.list {
		for i, n := range names {
			if matchNormalized(p, n) {
				return i
			}
		}
	}
	if ps.all {
		return 0
	}
	return -1
}

// Subscribe returns a subscription to every event matching any of
// patterns (no pattern means every event), with a queue of size events
// (DefaultSubscriptionSize when size <= 0).
func (b *Bus) Subscribe(size int, patterns ...string) *Subscription {
	_, _, s := b.subscribeAfter(0, false, size, patterns...)
	return s
}

// subscribeAfter is Subscribe for a client that resumes after the event
// numbered after. With backlog set it also returns, taken under the same
// lock as the subscription (so nothing is missed or doubled), the events
// numbered after `after` that the ring still holds and the patterns match
// (named as the subscription would see them), and a gap for the numbers
// after `after` the ring no longer holds (some of which may not have
// matched). A number beyond the last published (a client of an earlier
// run of gafferd) counts as 0: everything held is sent.
func (b *Bus) subscribeAfter(after uint64, backlog bool, size int, patterns ...string) ([]Event, *Gap, *Subscription) {
	if size <= 0 {
		size = DefaultSubscriptionSize
	}
	c := make(chan Event, size)
	s := &Subscription{C: c, c: c, bus: b, patterns: newEvPatterns(patterns)}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.index(s)
	if !backlog {
		return nil, nil, s
	}
	if after > b.seq {
		after = 0
	}
	oldest := b.seq + 1 - uint64(b.n)
	var gap *Gap
	if after+1 < oldest {
		gap = &Gap{From: after + 1, To: oldest - 1}
	}
	var out []Event
	for i := 0; i < b.n; i++ {
		ev := b.ring[(b.head+i)%len(b.ring)]
		if ev.seq <= after {
			continue
		}
		if k := s.patterns.pick(ev.names); k >= 0 {
			out = append(out, ev.as(k))
		}
	}
	return out, gap, s
}

// as returns the event as seen under its k-th name (its payload copied
// when the name changes).
func (ev Event) as(k int) Event {
	if ev.Name != ev.names[k] {
		ev.Name = ev.names[k]
		ev.Data = copyPayload(ev.Data)
		ev.Data["event"] = ev.Name
	}
	return ev
}

// Unsubscribe removes the subscription and closes its channel. It may be
// called more than once.
func (s *Subscription) Unsubscribe() {
	b := s.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.closed {
		return
	}
	b.unindex(s)
	close(s.c)
}

// index adds s to the bus (b.mu held).
func (b *Bus) index(s *Subscription) {
	b.subs[s] = struct{}{}
	if s.patterns.all {
		b.every[s] = struct{}{}
	}
	for _, p := range s.patterns.list {
		b.root.add(p, s)
	}
}

// unindex removes s from the bus and marks it closed (b.mu held).
func (b *Bus) unindex(s *Subscription) {
	s.closed = true
	delete(b.subs, s)
	delete(b.every, s)
	for _, p := range s.patterns.list {
		b.root.remove(p, s)
	}
}

// Overflowed reports whether the subscription was cut off because its
// reader fell behind.
func (s *Subscription) Overflowed() bool { return s.overflowed.Load() }

// Publish sends one event, named name and aliases, to every subscription
// that matches one of its names. data may be nil; "event" is set in it
// (to the name each subscriber sees).
func (b *Bus) Publish(name string, data map[string]any, aliases ...string) {
	names := []string{name}
	if len(aliases) > 0 {
		names = append(names, aliases...)
	}
	b.publish(names, data)
}

// publish is Publish with the names in one slice (primary first), which
// the bus keeps: the caller must not change it afterwards.
func (b *Bus) publish(names []string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	data["event"] = names[0]
	ev := Event{Name: names[0], Data: data, Time: time.Now(), names: names}
	// The payload as seen under each alias, made once per alias seen.
	var views [8]map[string]any
	var more []map[string]any
	b.count.Add(1)
	b.mu.Lock()
	b.seq++
	ev.seq = b.seq
	if b.n < len(b.ring) {
		b.ring[(b.head+b.n)%len(b.ring)] = ev
		b.n++
	} else {
		b.ring[b.head] = ev
		b.head = (b.head + 1) % len(b.ring)
	}
	hits := b.hits[:0]
	for s := range b.every {
		s.mark = ev.seq
		hits = append(hits, s)
	}
	for _, n := range names {
		hits = b.root.collect(n, ev.seq, hits)
	}
	for _, s := range hits {
		k := s.patterns.pick(names)
		if k < 0 {
			continue
		}
		e := ev
		if k > 0 {
			var v *map[string]any
			if k < len(views) {
				v = &views[k]
			} else {
				if more == nil {
					more = make([]map[string]any, len(names))
				}
				v = &more[k]
			}
			if *v == nil {
				*v = copyPayload(data)
				(*v)["event"] = names[k]
			}
			e.Name, e.Data = names[k], *v
		}
		select {
		case s.c <- e:
		default:
			s.overflowed.Store(true)
			b.unindex(s)
			close(s.c)
			b.drops.Add(1)
		}
	}
	clear(hits) // keep no unsubscribed subscription alive
	b.hits = hits[:0]
	b.mu.Unlock()
}

// Drops returns the number of subscriptions cut off because they fell
// behind.
func (b *Bus) Drops() int64 { return b.drops.Load() }

// Published returns the number of events published so far.
func (b *Bus) Published() int64 { return b.count.Load() }

// copyPayload returns a shallow copy of an event payload, so that a
// subscriber may add keys (such as "topic") without touching what others
// see.
func copyPayload(m map[string]any) map[string]any {
	c := make(map[string]any, len(m)+2)
	for k, v := range m {
		c[k] = v
	}
	return c
}
