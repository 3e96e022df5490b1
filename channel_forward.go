package gaffer

// The forwarders of the control channel's topics: EVENTS, JOB and PROCESS
// relay bus events, STATS samples processes, STREAM relays a process's
// output (chstream.go). prepare checks a SUB and subscribes to its source
// before the success reply is queued, so that nothing is missed; the
// forwarder then runs on its own goroutine until UNSUB or the end of the
// connection.

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"
)

// chDefaultStatsInterval is the sampling period of STATS topics (the
// original's 0.1 s); ?interval=<seconds> changes it per subscription.
const (
	chDefaultStatsInterval = 100 * time.Millisecond
	chMinStatsInterval     = 100 * time.Millisecond
	chMaxStatsInterval     = time.Hour
)

// prepare checks a new topic (permission, existence), subscribes to its
// source so that nothing is missed, and returns the forwarder to run, or
// the reason of the refusal.
func (c *chConn) prepare(t chTopic, quit chan struct{}) (run func(), reason string) {
	switch t.source {
	case "EVENTS":
		if !c.key.CanManageAll() {
			return nil, "forbidden"
		}
		sub := c.m.Events().Subscribe(0, NormalizePattern(t.target))
		return func() { c.forwardEvents(t, sub, quit, nil) }, ""
	case "JOB":
		full := chFullName(t.target)
		if !c.key.CanManage(full) {
			return nil, "forbidden"
		}
		if _, err := c.m.JobConfig(full); err != nil {
			return nil, chReasonNotFound
		}
		prefix := "job." + full + "."
		sub := c.m.Events().Subscribe(0, "job."+full)
		return func() { c.forwardEvents(t, sub, quit, chStripper(prefix)) }, ""
	case "PROCESS":
		pid, ok := chPid(t.target)
		if !ok {
			return nil, "invalid_process"
		}
		p, ok := c.m.Process(pid)
		if !ok {
			return nil, chReasonNotFound
		}
		if !c.key.CanManage(p.Job) {
			return nil, "forbidden"
		}
		sub := c.m.Events().Subscribe(0, "proc."+t.target)
		return func() { c.forwardEvents(t, sub, quit, chStripper("proc."+t.target+".")) }, ""
	case "STATS":
		return c.prepareStats(t, quit)
	case "STREAM":
		return c.prepareStream(t, quit)
	}
	return nil, "invalid_topic"
}

// chStripper returns a renamer that keeps the events directly under
// prefix, without the prefix ("job.default.web.exit" → "exit").
func chStripper(prefix string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok || rest == "" || strings.Contains(rest, ".") {
			return "", false
		}
		return rest, true
	}
}

// forwardEvents relays bus events to the client until the topic is
// unsubscribed or the connection ends.
func (c *chConn) forwardEvents(t chTopic, sub *Subscription, quit <-chan struct{}, rename func(string) (string, bool)) {
	defer sub.Unsubscribe()
	for {
		select {
		case <-quit:
			return
		case <-c.done:
			return
		case ev, ok := <-sub.C:
			if !ok {
				if sub.Overflowed() {
					c.w.tooSlow()
				}
				return
			}
			// An event read after UNSUB closed quit may have been published
			// after the client saw the UNSUB reply: drop it.
			select {
			case <-quit:
				return
			default:
			}
			name := ev.Name
			if rename != nil {
				if name, ok = rename(name); !ok {
					continue
				}
			}
			data := copyPayload(ev.Data)
			data["event"] = name
			data["topic"] = t.name
			if !c.w.sendJSON(map[string]any{"event": "gaffer:event", "data": data}) {
				return
			}
		}
	}
}

// chStatData is the data of a STATS event: the §8.1 fields (with pid and
// os_pid) and the job name.
type chStatData struct {
	procStatsWire
	Event string `json:"event"`
	Topic string `json:"topic"`
	Name  string `json:"name"`
}

func (c *chConn) prepareStats(t chTopic, quit chan struct{}) (func(), string) {
	interval := chDefaultStatsInterval
	if v := t.opts.Get("interval"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f != f {
			return nil, "invalid_topic"
		}
		interval = min(max(time.Duration(f*float64(time.Second)), chMinStatsInterval), chMaxStatsInterval)
	}
	procs := map[int]*Process{}
	if pid, ok := chPid(t.target); ok {
		p, ok := c.m.Process(pid)
		if !ok {
			return nil, chReasonNotFound
		}
		if !c.key.CanRead(p.Job) {
			return nil, "forbidden"
		}
		procs[pid] = p
		return func() { c.forwardStats(t, procs, "", nil, interval, quit) }, ""
	}
	full := chFullName(t.target)
	if !c.key.CanRead(full) {
		return nil, "forbidden"
	}
	// Watch spawns before listing, so that no process is missed.
	spawns := c.m.Events().Subscribe(0, "spawn")
	list, err := c.m.JobProcesses(full)
	if err != nil {
		spawns.Unsubscribe()
		return nil, chReasonNotFound
	}
	for _, p := range list {
		procs[p.ID] = p
	}
	return func() { c.forwardStats(t, procs, full, spawns, interval, quit) }, ""
}

// forwardStats samples procs every interval. For a job topic (full != ""),
// processes spawned later are added as their spawn events arrive; a pid
// topic ends when its process is gone.
func (c *chConn) forwardStats(t chTopic, procs map[int]*Process, full string, spawns *Subscription, interval time.Duration, quit <-chan struct{}) {
	var spawnC <-chan Event
	if spawns != nil {
		defer func() { spawns.Unsubscribe() }()
		spawnC = spawns.C
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-quit:
			return
		case <-c.done:
			return
		case ev, ok := <-spawnC:
			if !ok {
				// Fell behind on spawn events: watch again and re-list.
				spawns = c.m.Events().Subscribe(0, "spawn")
				spawnC = spawns.C
				list, _ := c.m.JobProcesses(full)
				for _, p := range list {
					procs[p.ID] = p
				}
				continue
			}
			if name, _ := ev.Data["name"].(string); name != full {
				continue
			}
			if pid, ok := ev.Data["pid"].(int); ok {
				if p, ok := c.m.Process(pid); ok {
					procs[pid] = p
				}
			}
		case <-ticker.C:
			pids := make([]int, 0, len(procs))
			for pid, p := range procs {
				select {
				case <-p.Exited():
					delete(procs, pid)
				default:
					pids = append(pids, pid)
				}
			}
			if full == "" && len(pids) == 0 {
				return
			}
			sort.Ints(pids)
			for _, pid := range pids {
				p := procs[pid]
				d := chStatData{procStatsWire: p.Stats().wire(), Event: "stat", Topic: t.name, Name: p.Job}
				if !c.w.sendJSON(map[string]any{"event": "gaffer:event", "data": d}) {
					return
				}
			}
		}
	}
}

// chStreamData is the data of a STREAM event: the chunk (data), its
// sequence number and its capture time (RFC 3339 in UTC with
// milliseconds; seq and time are additions to 0.5.2's event).
type chStreamData struct {
	Event string `json:"event"`
	Topic string `json:"topic"`
	Name  string `json:"name"`
	Pid   int    `json:"pid"`
	Data  string `json:"data"`
	Seq   uint64 `json:"seq"`
	Time  string `json:"time"`
}

func (c *chConn) prepareStream(t chTopic, quit chan struct{}) (func(), string) {
	pidStr, label, _ := strings.Cut(t.target, ".")
	pid, ok := chPid(pidStr)
	if !ok {
		return nil, "invalid_process"
	}
	p, ok := c.m.Process(pid)
	if !ok {
		return nil, chReasonNotFound
	}
	if !c.key.CanRead(p.Job) {
		return nil, "forbidden"
	}
	st, ok := p.Stream(label)
	if !ok {
		return nil, "stream_not_found"
	}
	since, backlog := uint64(0), false
	if v := t.opts.Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, "invalid_topic"
		}
		since, backlog = n, true
	}
	// Positioned now, so that nothing written after the SUB is missed.
	rd := st.reader(since, backlog)
	event := st.Label
	if p.IsCustomStream(st.Label) {
		event = "READ"
	}
	return func() { c.forwardStream(t, p, rd, event, quit) }, ""
}

// forwardStream relays a process's output at the client's pace, reading
// the ring by sequence number (chstream.go): a client that falls further
// behind than the ring holds is told what it lost by a "gap" event
// ({"from": N, "to": M}), and nothing piles up for it.
func (c *chConn) forwardStream(t chTopic, p *Process, rd *StreamSub, event string, quit <-chan struct{}) {
	defer rd.Close()
	head, _ := json.Marshal(chStreamData{Event: event, Topic: t.name, Name: p.Job, Pid: p.ID})
	// head ends with "data":"","seq":0}: keep it up to "data":.
	prefix := append([]byte(`{"data":`), head[:bytes.LastIndex(head, []byte(`"data":`))+len(`"data":`)]...)
	enc := &chStreamEncoder{prefix: prefix, gapFor: func(g Gap) any {
		return map[string]any{"event": "gap", "topic": t.name, "name": p.Job, "pid": p.ID, "from": g.From, "to": g.To}
	}}
	relayFrames(rd, c.w, quit, enc)
}
