package gaffer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// LookupNode is a gafferd node as a lookupd knows it (reference §11.4).
type LookupNode struct {
	Name    string `json:"name"`
	Origin  string `json:"origin"`
	Version string `json:"version"`
}

// LookupSource is one node running a job, with the job's pids there.
type LookupSource struct {
	Name     string     `json:"name"`
	Pids     []int      `json:"pids"`
	NodeInfo LookupNode `json:"node_info"`
}

// LookupJob is a job and the nodes that run it.
type LookupJob struct {
	Name    string         `json:"name"`
	Sources []LookupSource `json:"sources"`
}

// LookupSession is a session and its jobs, in the lookupd's order.
type LookupSession struct {
	SessionID string      `json:"sessionid"`
	Jobs      []LookupJob `json:"jobs"`
}

// UnmarshalJSON reads {"sessionid": …, "jobs": {"<job>": [<source>…]}},
// keeping the order of the jobs.
func (s *LookupSession) UnmarshalJSON(data []byte) error {
	var raw struct {
		SessionID string          `json:"sessionid"`
		Jobs      json.RawMessage `json:"jobs"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	s.SessionID, s.Jobs = raw.SessionID, nil
	if len(raw.Jobs) == 0 || string(raw.Jobs) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw.Jobs))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errors.New("lookup session: jobs: expected an object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := t.(string)
		var srcs []LookupSource
		if err := dec.Decode(&srcs); err != nil {
			return fmt.Errorf("lookup session: job %q: %v", name, err)
		}
		s.Jobs = append(s.Jobs, LookupJob{Name: name, Sources: srcs})
	}
	return nil
}

// LookupEvent is one message of a lookupd's event feed (reference §11.5):
// Event is add_node, identify, remove_node, add_job, remove_job,
// add_process or remove_process. Lookupd is the address it came from.
type LookupEvent struct {
	Event   string
	Node    LookupNode // the node concerned
	JobName string     // for job and process events
	Pid     int        // for process events
	Lookupd string
}

// LookupClient queries one or more gaffer_lookupd servers (reference
// §11.4) and merges their answers: a node, job or source known to several
// lookupds is listed once. It is safe for concurrent use.
type LookupClient struct {
	clients []*Client
}

// NewLookupClient returns a client of the lookupds at addrs (the address
// forms of NewClient; lookupd listens on port 5010 by default).
func NewLookupClient(addrs []string, opts ClientOptions) (*LookupClient, error) {
	if len(addrs) == 0 {
		return nil, errors.New("no lookupd address (use -L ADDR)")
	}
	lc := &LookupClient{}
	for _, a := range addrs {
		if !strings.Contains(a, "://") && !strings.HasPrefix(a, "unix:") && !strings.Contains(a, ":") && !strings.HasPrefix(a, "/") {
			a += ":5010"
		}
		c, err := NewClient(a, opts)
		if err != nil {
			return nil, err
		}
		lc.clients = append(lc.clients, c)
	}
	return lc, nil
}

// Addresses returns the lookupd addresses as shown in messages.
func (lc *LookupClient) Addresses() []string {
	out := make([]string, len(lc.clients))
	for i, c := range lc.clients {
		out[i] = c.Address()
	}
	return out
}

// each queries every lookupd in parallel and returns the answers in
// address order; it fails only when every lookupd fails.
func lookupEach[T any](ctx context.Context, lc *LookupClient, path string, q url.Values) ([]T, error) {
	res := make([]T, len(lc.clients))
	errs := make([]error, len(lc.clients))
	var wg sync.WaitGroup
	for i, c := range lc.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.do(ctx, http.MethodGet, path, q, nil, &res[i])
		}()
	}
	wg.Wait()
	var ok []T
	for i := range res {
		if errs[i] == nil {
			ok = append(ok, res[i])
		}
	}
	if len(ok) == 0 {
		return nil, errors.Join(errs...)
	}
	return ok, nil
}

// clMergeSources adds srcs to dst, skipping sources already there (same
// node name and origin); pids of a known source are merged.
func clMergeSources(dst, srcs []LookupSource) []LookupSource {
	for _, s := range srcs {
		found := false
		for i := range dst {
			if dst[i].Name == s.Name && dst[i].NodeInfo.Origin == s.NodeInfo.Origin {
				found = true
				for _, p := range s.Pids {
					if !clContainsInt(dst[i].Pids, p) {
						dst[i].Pids = append(dst[i].Pids, p)
					}
				}
				break
			}
		}
		if !found {
			s.Pids = append([]int{}, s.Pids...)
			dst = append(dst, s)
		}
	}
	return dst
}

func clContainsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// clMergeJobs merges job lists, keeping the order of first appearance.
func clMergeJobs(dst, jobs []LookupJob) []LookupJob {
	for _, j := range jobs {
		found := false
		for i := range dst {
			if dst[i].Name == j.Name {
				dst[i].Sources = clMergeSources(dst[i].Sources, j.Sources)
				found = true
				break
			}
		}
		if !found {
			dst = append(dst, LookupJob{Name: j.Name, Sources: clMergeSources(nil, j.Sources)})
		}
	}
	return dst
}

// Nodes lists the identified nodes of every lookupd (GET /nodes).
func (lc *LookupClient) Nodes(ctx context.Context) ([]LookupNode, error) {
	answers, err := lookupEach[struct{ Nodes []LookupNode }](ctx, lc, "/nodes", nil)
	if err != nil {
		return nil, err
	}
	out := []LookupNode{}
	seen := map[LookupNode]bool{}
	for _, a := range answers {
		for _, n := range a.Nodes {
			if n.Name == "" && n.Origin == "" {
				continue // connected but not identified yet
			}
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out, nil
}

// Jobs lists every job and the nodes that run it (GET /jobs).
func (lc *LookupClient) Jobs(ctx context.Context) ([]LookupJob, error) {
	answers, err := lookupEach[struct{ Jobs []LookupJob }](ctx, lc, "/jobs", nil)
	if err != nil {
		return nil, err
	}
	out := []LookupJob{}
	for _, a := range answers {
		out = clMergeJobs(out, a.Jobs)
	}
	return out, nil
}

// Sessions lists the sessions and their jobs (GET /sessions, or
// GET /sessions/<node> when node is not "").
func (lc *LookupClient) Sessions(ctx context.Context, node string) ([]LookupSession, error) {
	path := "/sessions"
	if node != "" {
		path = clPath("sessions", node)
	}
	answers, err := lookupEach[struct{ Sessions []LookupSession }](ctx, lc, path, nil)
	if err != nil {
		return nil, err
	}
	out := []LookupSession{}
	for _, a := range answers {
		for _, s := range a.Sessions {
			found := false
			for i := range out {
				if out[i].SessionID == s.SessionID {
					out[i].Jobs = clMergeJobs(out[i].Jobs, s.Jobs)
					found = true
					break
				}
			}
			if !found {
				out = append(out, LookupSession{SessionID: s.SessionID, Jobs: clMergeJobs(nil, s.Jobs)})
			}
		}
	}
	return out, nil
}

// FindJob lists the nodes running a job ("session.job")
// (GET /findJob?name=…); none is an empty list, not an error.
func (lc *LookupClient) FindJob(ctx context.Context, name string) ([]LookupSource, error) {
	answers, err := lookupEach[struct{ Sources []LookupSource }](ctx, lc, "/findJob", url.Values{"name": {name}})
	if err != nil {
		return nil, err
	}
	out := []LookupSource{}
	for _, a := range answers {
		out = clMergeSources(out, a.Sources)
	}
	return out, nil
}

// FindSession lists the jobs of a session across the nodes
// (GET /findSession?sessionid=…).
func (lc *LookupClient) FindSession(ctx context.Context, sid string) ([]LookupJob, error) {
	answers, err := lookupEach[struct{ Jobs []LookupJob }](ctx, lc, "/findSession", url.Values{"sessionid": {sid}})
	if err != nil {
		return nil, err
	}
	out := []LookupJob{}
	for _, a := range answers {
		out = clMergeJobs(out, a.Jobs)
	}
	return out, nil
}

// Watch follows the event feed of every lookupd (the raw websocket
// /lookup/websocket, reference §11.5). The channel is closed when ctx
// ends or every feed has closed. Dialling fails only if no lookupd can be
// reached.
func (lc *LookupClient) Watch(ctx context.Context) (<-chan LookupEvent, error) {
	var conns []*WSConn
	var addrs []string
	var errs []error
	for _, c := range lc.clients {
		ws, err := c.dialWS(ctx, "/lookup/websocket", nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		conns = append(conns, ws)
		addrs = append(addrs, c.Address())
	}
	if len(conns) == 0 {
		return nil, errors.Join(errs...)
	}
	out := make(chan LookupEvent, 64)
	var wg sync.WaitGroup
	for i, ws := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stop := context.AfterFunc(ctx, func() { ws.CloseNow() })
			defer stop()
			defer ws.CloseNow()
			for {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					return
				}
				ev, ok := clParseLookupEvent(msg)
				if !ok {
					continue
				}
				ev.Lookupd = addrs[i]
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(out)
	}()
	return out, nil
}

// clParseLookupEvent decodes one lookupd feed message.
func clParseLookupEvent(msg []byte) (LookupEvent, bool) {
	var m struct {
		Event   string      `json:"event"`
		Name    *string     `json:"name"`
		Origin  *string     `json:"origin"`
		Version *string     `json:"version"`
		Node    *LookupNode `json:"node"`
		JobName string      `json:"job_name"`
		Pid     int         `json:"pid"`
	}
	if json.Unmarshal(msg, &m) != nil || m.Event == "" {
		return LookupEvent{}, false
	}
	ev := LookupEvent{Event: m.Event, JobName: m.JobName, Pid: m.Pid}
	if m.Node != nil {
		ev.Node = *m.Node
	} else {
		str := func(p *string) string {
			if p == nil {
				return ""
			}
			return *p
		}
		ev.Node = LookupNode{Name: str(m.Name), Origin: str(m.Origin), Version: str(m.Version)}
	}
	return ev, true
}
