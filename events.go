package gaffer

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Event is one manager event: Name is the full dotted name ("spawn",
// "job.default.web.exit", "proc.3.kill"…) and Data the JSON payload, which
// always holds "event": Name.
type Event struct {
	Name string
	Data map[string]any
	Time time.Time
}

// DefaultSubscriptionSize is the queue length of a subscription made with
// size 0.
const DefaultSubscriptionSize = 4096

// Bus is the event bus: publishers call Publish, subscribers read from
// bounded channels. Matching is by dot-separated segment prefix (reference
// §7.2): a subscription to "job.default" receives "job.default.web.exit"
// but "job.def" does not; the pattern "." (or "") receives everything. Each
// event reaches a subscription once, in publish order. A subscription whose
// queue is full is cut off: its channel is closed and Overflowed reports
// true. Publish never blocks. A Bus is safe for concurrent use.
type Bus struct {
	mu    sync.Mutex
	subs  map[*Subscription]struct{}
	drops atomic.Int64
	count atomic.Int64
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{subs: map[*Subscription]struct{}{}} }

// Subscription is one subscriber of a Bus. Read events from C.
type Subscription struct {
	// C delivers the events; it is closed by Unsubscribe or on overflow.
	C          <-chan Event
	c          chan Event
	bus        *Bus
	patterns   []string
	all        bool
	closed     bool
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
	pattern = NormalizePattern(pattern)
	if pattern == "." {
		return true
	}
	return name == pattern || (len(name) > len(pattern) && name[len(pattern)] == '.' && name[:len(pattern)] == pattern)
}

// Subscribe returns a subscription to every event matching any of
// patterns (no pattern means every event), with a queue of size events
// (DefaultSubscriptionSize when size <= 0).
func (b *Bus) Subscribe(size int, patterns ...string) *Subscription {
	if size <= 0 {
		size = DefaultSubscriptionSize
	}
	c := make(chan Event, size)
	s := &Subscription{C: c, c: c, bus: b}
	if len(patterns) == 0 {
		s.all = true
	}
	for _, p := range patterns {
		p = NormalizePattern(p)
		if p == "." {
			s.all = true
		}
		s.patterns = append(s.patterns, p)
	}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
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
	s.closed = true
	delete(b.subs, s)
	close(s.c)
}

// Overflowed reports whether the subscription was cut off because its
// reader fell behind.
func (s *Subscription) Overflowed() bool { return s.overflowed.Load() }

func (s *Subscription) matches(name string) bool {
	if s.all {
		return true
	}
	for _, p := range s.patterns {
		if MatchPattern(p, name) {
			return true
		}
	}
	return false
}

// Publish sends an event to every matching subscription. data may be nil;
// "event" is set in it.
func (b *Bus) Publish(name string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	data["event"] = name
	ev := Event{Name: name, Data: data, Time: time.Now()}
	b.count.Add(1)
	b.mu.Lock()
	for s := range b.subs {
		if !s.matches(name) {
			continue
		}
		select {
		case s.c <- ev:
		default:
			s.overflowed.Store(true)
			s.closed = true
			delete(b.subs, s)
			close(s.c)
			b.drops.Add(1)
		}
	}
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
