package gaffer

// The lookupd registry (reference §11.1): the connected nodes, the jobs
// each one registered and the pids of each job, plus the subscribers of the
// event feed (§11.5). It is a plain data structure behind one mutex: every
// method takes the lock, changes or reads the maps, publishes its events
// while holding the lock (so subscribers see them in the order the changes
// happened) and returns. Nothing under the lock blocks: event sends are
// non-blocking and a subscriber that falls behind is cut off. Closing a
// replaced node's connection is left to the caller, outside the lock.

import (
	"encoding/json"
	"slices"
	"sync"
	"time"
)

// LookupdProtocolVersion is the node protocol version gafferd announces
// in IDENTIFY.
const LookupdProtocolVersion = "0.1"

// Limits that keep one misbehaving node from exhausting the lookupd.
const (
	lkMaxJobsPerNode = 1 << 16
	lkMaxPidsPerJob  = 1 << 16
	lkSubQueue       = 1024
)

// LookupdEvent is one event of a Lookupd's feed (reference §11.5), as the
// server publishes it (LookupEvent is the client's view of it). Event is
// add_node, identify, remove_node, add_job, remove_job, add_process or
// remove_process. Node is the node concerned; Identified is false for the
// add_node of a fresh connection (and the remove_node of one that never
// identified), whose fields are then sent as null. JobName is set for the
// job and process events, Pid for the process events.
type LookupdEvent struct {
	Event      string
	Node       LookupNode
	Identified bool
	JobName    string
	Pid        int
}

// MarshalJSON gives the wire shapes of §11.5: node events carry name,
// origin and version at the top level; job and process events carry them
// under "node".
func (e LookupdEvent) MarshalJSON() ([]byte, error) {
	var name, origin, version any
	if e.Identified {
		name, origin, version = e.Node.Name, e.Node.Origin, e.Node.Version
	}
	switch e.Event {
	case "add_node", "identify", "remove_node":
		return json.Marshal(map[string]any{"event": e.Event, "name": name, "origin": origin, "version": version})
	}
	m := map[string]any{"event": e.Event, "node": map[string]any{"name": name, "origin": origin, "version": version},
		"job_name": e.JobName}
	if e.Event == "add_process" || e.Event == "remove_process" {
		m["pid"] = e.Pid
	}
	return json.Marshal(m)
}

// lkNode is one node connection; it becomes a listed node once it sent
// IDENTIFY. Fields are guarded by lkRegistry.mu.
type lkNode struct {
	id         uint64
	conn       *WSConn // nil in unit tests of the registry alone
	identified bool
	info       LookupNode
	jobs       map[string][]int // job name → sorted pids
	jobOrder   []string
	updated    time.Time
	// keyOK: the connection proved the node key in its upgrade header.
	// Read and written only by the connection's own goroutine.
	keyOK bool
}

// lkError is a protocol error reply: errno and a machine reason; detail is
// a human sentence sent as an extra field; noMsgID sends msgid null (the
// message could not be parsed far enough to trust it); hangUp closes the
// connection after the reply.
type lkError struct {
	errno   int
	reason  string
	detail  string
	noMsgID bool
	hangUp  bool
}

func (e *lkError) Error() string { return e.reason + ": " + e.detail }

// lkRegistry is the registry of one Lookupd.
type lkRegistry struct {
	mu     sync.Mutex
	nextID uint64
	nodes  []*lkNode // connection order
	subs   map[*lkSub]struct{}
	closed bool
}

type lkSub struct {
	c      chan LookupdEvent
	closed bool
}

func newLkRegistry() *lkRegistry {
	return &lkRegistry{subs: map[*lkSub]struct{}{}}
}

// publishLocked sends ev to every subscriber without blocking; one whose
// queue is full is cut off (its channel is closed).
func (g *lkRegistry) publishLocked(ev LookupdEvent) {
	for s := range g.subs {
		select {
		case s.c <- ev:
		default:
			s.closed = true
			delete(g.subs, s)
			close(s.c)
		}
	}
}

// subscribe registers an event subscriber.
func (g *lkRegistry) subscribe() (<-chan LookupdEvent, func()) {
	s := &lkSub{c: make(chan LookupdEvent, lkSubQueue)}
	g.mu.Lock()
	if g.closed {
		close(s.c)
		g.mu.Unlock()
		return s.c, func() {}
	}
	g.subs[s] = struct{}{}
	g.mu.Unlock()
	return s.c, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if !s.closed {
			s.closed = true
			delete(g.subs, s)
			close(s.c)
		}
	}
}

// connect adds a node connection, not yet identified; nil when the
// registry is closed.
func (g *lkRegistry) connect(conn *WSConn) *lkNode {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.nextID++
	n := &lkNode{id: g.nextID, conn: conn, jobs: map[string][]int{}, updated: time.Now()}
	g.nodes = append(g.nodes, n)
	g.publishLocked(LookupdEvent{Event: "add_node"})
	return n
}

// disconnect removes n (and its jobs) if it is still registered, and
// reports whether it was.
func (g *lkRegistry) disconnect(n *lkNode) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.removeLocked(n)
}

func (g *lkRegistry) removeLocked(n *lkNode) bool {
	i := slices.Index(g.nodes, n)
	if i < 0 {
		return false
	}
	g.nodes = slices.Delete(g.nodes, i, i+1)
	g.publishLocked(LookupdEvent{Event: "remove_node", Node: n.info, Identified: n.identified})
	return true
}

// close empties the registry, ends every subscription and returns the
// connections that were open.
func (g *lkRegistry) close() []*lkNode {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	nodes := g.nodes
	g.nodes = nil
	for s := range g.subs {
		s.closed = true
		close(s.c)
	}
	g.subs = map[*lkSub]struct{}{}
	return nodes
}

// ping records that n is alive.
func (g *lkRegistry) ping(n *lkNode) {
	g.mu.Lock()
	n.updated = time.Now()
	g.mu.Unlock()
}

// identify names n. A live identified node with the same name and origin
// is a stale connection of the same gafferd (it reconnected before we
// noticed the old socket die): it is removed and returned so that the
// caller closes it.
func (g *lkRegistry) identify(n *lkNode, info LookupNode) (stale *lkNode, err *lkError) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if n.identified {
		return nil, &lkError{errno: 409, reason: "already_identified", detail: "this connection already sent IDENTIFY"}
	}
	if !slices.Contains(g.nodes, n) {
		return nil, &lkError{errno: 410, reason: "node_removed", detail: "this connection was replaced or timed out"}
	}
	for _, o := range g.nodes {
		if o != n && o.identified && o.info.Name == info.Name && o.info.Origin == info.Origin {
			stale = o
			g.removeLocked(o)
			break
		}
	}
	n.identified = true
	n.info = info
	n.updated = time.Now()
	g.publishLocked(LookupdEvent{Event: "identify", Node: info, Identified: true})
	return stale, nil
}

func lkNeedIdentify() *lkError {
	return &lkError{errno: 404, reason: "need to send IDENTIFY message first", detail: "job and process messages need an identified node"}
}

// registerJob adds a job to n.
func (g *lkRegistry) registerJob(n *lkNode, job string) *lkError {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !n.identified {
		return lkNeedIdentify()
	}
	if _, ok := n.jobs[job]; ok {
		return &lkError{errno: 409, reason: "job '" + job + "' is already registered", detail: "REGISTER_JOB was already received for this job"}
	}
	if len(n.jobs) >= lkMaxJobsPerNode {
		return &lkError{errno: 413, reason: "too_many_jobs", detail: "a node may register at most 65536 jobs"}
	}
	n.jobs[job] = []int{}
	n.jobOrder = append(n.jobOrder, job)
	n.updated = time.Now()
	g.publishLocked(LookupdEvent{Event: "add_job", Node: n.info, Identified: true, JobName: job})
	return nil
}

// unregisterJob removes a job from n; an unknown job is a success and
// still publishes remove_job (reference §11.3).
func (g *lkRegistry) unregisterJob(n *lkNode, job string) *lkError {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !n.identified {
		return lkNeedIdentify()
	}
	if _, ok := n.jobs[job]; ok {
		delete(n.jobs, job)
		n.jobOrder = slices.DeleteFunc(n.jobOrder, func(s string) bool { return s == job })
	}
	n.updated = time.Now()
	g.publishLocked(LookupdEvent{Event: "remove_job", Node: n.info, Identified: true, JobName: job})
	return nil
}

// registerProcess adds pid to a job of n; a repeated pid publishes
// add_process again (reference §11.3).
func (g *lkRegistry) registerProcess(n *lkNode, job string, pid int) *lkError {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !n.identified {
		return lkNeedIdentify()
	}
	pids, ok := n.jobs[job]
	if !ok {
		return &lkError{errno: 404, reason: "job_not_found", detail: "job '" + job + "' is not registered by this node"}
	}
	if i, found := slices.BinarySearch(pids, pid); !found {
		if len(pids) >= lkMaxPidsPerJob {
			return &lkError{errno: 413, reason: "too_many_processes", detail: "a job may register at most 65536 pids"}
		}
		n.jobs[job] = slices.Insert(pids, i, pid)
	}
	n.updated = time.Now()
	g.publishLocked(LookupdEvent{Event: "add_process", Node: n.info, Identified: true, JobName: job, Pid: pid})
	return nil
}

// unregisterProcess removes pid from a job of n; an unknown pid is a
// success without event.
func (g *lkRegistry) unregisterProcess(n *lkNode, job string, pid int) *lkError {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !n.identified {
		return lkNeedIdentify()
	}
	pids, ok := n.jobs[job]
	if !ok {
		return &lkError{errno: 404, reason: "job_not_found", detail: "job '" + job + "' is not registered by this node"}
	}
	n.updated = time.Now()
	if i, found := slices.BinarySearch(pids, pid); found {
		n.jobs[job] = slices.Delete(pids, i, i+1)
		g.publishLocked(LookupdEvent{Event: "remove_process", Node: n.info, Identified: true, JobName: job, Pid: pid})
	}
	return nil
}

// identifiedNodes returns the identified nodes, in connection order.
func (g *lkRegistry) identifiedNodes() []LookupNode {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := []LookupNode{}
	for _, n := range g.nodes {
		if n.identified {
			out = append(out, n.info)
		}
	}
	return out
}

// jobs lists the jobs of the identified nodes that keep(node) accepts and
// whose name keepJob accepts (nil: all), grouped by job in order of first
// appearance (nodes in connection order, each node's jobs in registration
// order).
func (g *lkRegistry) jobs(keepNode func(LookupNode) bool, keepJob func(string) bool) []LookupJob {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := []LookupJob{}
	index := map[string]int{}
	for _, n := range g.nodes {
		if !n.identified || (keepNode != nil && !keepNode(n.info)) {
			continue
		}
		for _, job := range n.jobOrder {
			if keepJob != nil && !keepJob(job) {
				continue
			}
			src := LookupSource{Name: n.info.Name, Pids: slices.Clone(n.jobs[job]), NodeInfo: n.info}
			i, ok := index[job]
			if !ok {
				i = len(out)
				index[job] = i
				out = append(out, LookupJob{Name: job})
			}
			out[i].Sources = append(out[i].Sources, src)
		}
	}
	return out
}

// lkSession is one entry of /sessions: its jobs as a JSON object whose
// keys keep the order of first appearance.
type lkSession struct {
	SessionID string     `json:"sessionid"`
	Jobs      lkJobsJSON `json:"jobs"`
}

type lkJobsJSON []LookupJob

// MarshalJSON writes {"<job>": [<source>…], …} in slice order.
func (js lkJobsJSON) MarshalJSON() ([]byte, error) {
	buf := []byte{'{'}
	for i, j := range js {
		if i > 0 {
			buf = append(buf, ',')
		}
		k, err := json.Marshal(j.Name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(j.Sources)
		if err != nil {
			return nil, err
		}
		buf = append(append(append(buf, k...), ':'), v...)
	}
	return append(buf, '}'), nil
}

// lkGroupSessions groups jobs by session, in order of first appearance.
func lkGroupSessions(jobs []LookupJob) []lkSession {
	out := []lkSession{}
	index := map[string]int{}
	for _, j := range jobs {
		sid, _ := SplitName(j.Name)
		i, ok := index[sid]
		if !ok {
			i = len(out)
			index[sid] = i
			out = append(out, lkSession{SessionID: sid})
		}
		out[i].Jobs = append(out[i].Jobs, j)
	}
	return out
}
