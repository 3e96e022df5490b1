package gaffer

// The control channel (reference §3): one JSON object per websocket text
// message, at /channel/websocket.
//
// Each connection has one reader (the handler's goroutine, which also runs
// the commands, one at a time, in order), one writer goroutine fed by a
// bounded queue (chWriter), and one forwarder goroutine per subscribed
// topic. Forwarders read from the event bus, from a process's output stream
// or from a stats ticker and only ever queue messages without waiting: a
// client that does not keep up overflows its queue and is disconnected
// (close 1008 "client too slow"), so neither the manager nor a process ever
// waits for a client. When the connection ends every subscription is
// removed and every forwarder has returned before the handler returns.

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of one websocket client's send queue (messages and bytes) and the
// time a client has to authenticate. Variables so that tests can shrink
// them.
var (
	chQueueLen    = 1024
	chQueueBytes  = int64(8 << 20)
	chAuthTimeout = 30 * time.Second
	// chMaxTopics bounds the distinct topics of one connection: each has
	// a forwarder goroutine and a bus or stream subscription. A SUB past
	// it is refused with "too_many_subscriptions".
	chMaxTopics = 100
)

// chDefaultStatsInterval is the sampling period of STATS topics (the
// original's 0.1 s); ?interval=<seconds> changes it per subscription.
const (
	chDefaultStatsInterval = 100 * time.Millisecond
	chMinStatsInterval     = 100 * time.Millisecond
	chMaxStatsInterval     = time.Hour
)

// E2-shaped reasons, JSON-encoded as the original sends them (reference
// §3.2, §3.4).
const (
	chReasonUnauthorized = `{"error": "unauthorized", "errno": 401}`
	chReasonForbidden    = `{"error": "forbidden", "errno": 403}`
	chReasonNotFound     = `{"error": "not_found", "errno": 404}`
)

// chTransport is what the control protocol runs over: a websocket
// (*WSConn, /channel/websocket) or a SockJS session (sjChannelConn, the
// other transports under /channel/).
type chTransport interface {
	ReadMessage() (WSOpcode, []byte, error)
	WriteMessage(op WSOpcode, data []byte) error
	WriteJSON(v any) error
	Close(code int, reason string) error
	CloseNow() error
	Request() *http.Request
}

// chFrame is one item of a writer's queue: a message, or the order to
// close the connection once what was queued before it is sent.
type chFrame struct {
	op     WSOpcode
	data   []byte
	close  bool
	code   int
	reason string
	sent   chan struct{} // closed once the message is written (nil: nobody waits)
}

// chWriter is the single writer of one websocket. send never blocks: when
// the queue is full the client is too slow, nothing more is sent and the
// connection is closed with 1008.
type chWriter struct {
	ws    chTransport
	log   *slog.Logger
	q     chan chFrame
	bytes atomic.Int64
	quit  chan struct{} // closed when nothing more may be sent
	once  sync.Once
	done  chan struct{} // closed when the writer goroutine has returned
}

func chNewWriter(ws chTransport, log *slog.Logger) *chWriter {
	w := &chWriter{ws: ws, log: log, q: make(chan chFrame, chQueueLen), quit: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *chWriter) run() {
	defer close(w.done)
	for {
		select {
		case <-w.quit:
			return
		case f := <-w.q:
			select {
			case <-w.quit:
				return
			default:
			}
			if f.close {
				w.stop()
				w.ws.Close(f.code, f.reason)
				return
			}
			w.bytes.Add(-int64(len(f.data)))
			if err := w.ws.WriteMessage(f.op, f.data); err != nil {
				w.stop()
				w.ws.CloseNow()
				return
			}
			if f.sent != nil {
				close(f.sent)
			}
		}
	}
}

// send queues one message; it reports false when the connection is going
// away (the message is then dropped).
func (w *chWriter) send(op WSOpcode, data []byte) bool {
	return w.sendFrame(chFrame{op: op, data: data})
}

// sendFrame queues one message frame.
func (w *chWriter) sendFrame(f chFrame) bool {
	select {
	case <-w.quit:
		return false
	default:
	}
	n := int64(len(f.data))
	// One message bigger than the byte limit still goes through alone.
	if total := w.bytes.Add(n); total > chQueueBytes && total != n {
		w.bytes.Add(-n)
		w.tooSlow()
		return false
	}
	select {
	case w.q <- f:
		return true
	default:
		w.bytes.Add(-n)
		w.tooSlow()
		return false
	}
}

// sendJSON queues v as a text message.
func (w *chWriter) sendJSON(v any) bool {
	data, err := json.Marshal(v)
	if err != nil {
		w.log.Error("channel: cannot encode a message", "err", err)
		return false
	}
	return w.send(WSText, data)
}

// closeAfter closes the connection with code once the messages already
// queued are sent.
func (w *chWriter) closeAfter(code int, reason string) {
	select {
	case <-w.quit:
		return
	default:
	}
	select {
	case w.q <- chFrame{close: true, code: code, reason: reason}:
	default:
		w.tooSlow()
	}
}

// tooSlow drops what is queued and closes the connection with 1008.
func (w *chWriter) tooSlow() {
	w.once.Do(func() {
		close(w.quit)
		remote := ""
		if r := w.ws.Request(); r != nil {
			remote = r.RemoteAddr
		}
		w.log.Warn("websocket client too slow; disconnecting it", "remote", remote, "queued_bytes", w.bytes.Load())
		go w.ws.Close(WSClosePolicy, "client too slow")
	})
}

// stop makes the writer send nothing more.
func (w *chWriter) stop() { w.once.Do(func() { close(w.quit) }) }

// chLogger returns the server's logger, or the default one.
func (s *Server) chLogger() *slog.Logger {
	if s.log != nil {
		return s.log
	}
	return slog.Default()
}

// chConn is one control channel connection.
type chConn struct {
	s    *Server
	m    *Manager
	ws   chTransport
	w    *chWriter
	key  *Key
	log  *slog.Logger
	subs map[string]*chSub // by normalised topic; only the reader touches it
	wg   sync.WaitGroup    // forwarders
	done chan struct{}     // closed when the connection ends
}

// chSub is one subscribed topic: its reference count and how to stop its
// forwarder.
type chSub struct {
	count int
	quit  chan struct{}
}

// serveControlChannel runs the control protocol of reference §3 on an
// upgraded websocket.
func (s *Server) serveControlChannel(w http.ResponseWriter, r *http.Request) {
	ws, err := WSUpgrade(w, r, &WSOptions{CheckOrigin: s.checkOrigin, keepalive: s.wsKeepalive})
	if err != nil {
		return
	}
	s.runControlChannel(ws, r)
}

// runControlChannel runs the control protocol on one connection until it
// ends; r is the request that opened it (for its key).
func (s *Server) runControlChannel(ws chTransport, r *http.Request) {
	c := &chConn{s: s, m: s.m, ws: ws, log: s.chLogger(), subs: map[string]*chSub{}, done: make(chan struct{})}
	key, needAuth := s.chInitialKey(r)
	c.key = key
	if needAuth && !c.authenticate() {
		return
	}
	c.w = chNewWriter(ws, c.log)
	defer c.cleanup()
	// Server.Shutdown cancels the request's context (a SockJS session's
	// never is: SockJS.Close ends those).
	stop := context.AfterFunc(r.Context(), func() { c.w.closeAfter(WSCloseGoingAway, "server shutting down") })
	defer stop()
	if needAuth {
		c.w.sendJSON(map[string]any{"event": "gaffer:auth_success"})
	}
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		c.handle(data)
	}
}

// cleanup stops every forwarder, waits for them, and closes the socket.
func (c *chConn) cleanup() {
	close(c.done)
	for t, sub := range c.subs {
		close(sub.quit)
		delete(c.subs, t)
	}
	c.wg.Wait()
	c.w.stop()
	c.ws.Close(WSCloseNormal, "")
	<-c.w.done
}

func (c *chConn) invalid(reason string) {
	c.w.sendJSON(map[string]any{"event": "gaffer:error", "data": map[string]any{"error": "invalid_msg", "reason": reason}})
}

// handle processes one client message (reference §3.3).
func (c *chConn) handle(data []byte) {
	if bytes.HasPrefix(data, []byte("AUTH:")) {
		c.lateAuth(string(data))
		return
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		c.invalid("invalid_json")
		return
	}
	msg, ok := v.(map[string]any)
	if !ok {
		c.invalid("invalid_json")
		return
	}
	event, _ := msg["event"].(string)
	if event == "" {
		c.invalid("event_missing")
		return
	}
	event = strings.ToUpper(event)
	if event == "NOP" {
		return
	}
	body, ok := msg["data"].(map[string]any)
	if !ok {
		c.invalid("data_missing")
		return
	}
	switch event {
	case "SUB", "UNSUB":
		topic, _ := body["topic"].(string)
		if topic == "" {
			c.invalid("topic_missing")
			return
		}
		if event == "SUB" {
			c.subscribe(topic)
		} else {
			c.unsubscribe(topic)
		}
	case "CMD":
		name, _ := body["name"].(string)
		if name == "" {
			c.invalid("cmd_name_mssing") // sic, as the original
			return
		}
		id, ok := body["identity"]
		if s, isStr := id.(string); !ok || id == nil || (isStr && s == "") {
			c.invalid("cmd_identity_missing")
			return
		}
		args, _ := body["args"].([]any)
		kwargs, _ := body["kwargs"].(map[string]any)
		run := func() {
			result, err := c.runCommand(name, args, kwargs)
			if err != nil {
				c.w.sendJSON(map[string]any{"event": "gaffer:command_error", "data": map[string]any{"id": id,
					"error": map[string]any{"errno": err.Errno, "reason": err.Code, "message": err.Reason}}})
				return
			}
			c.w.sendJSON(map[string]any{"event": "gaffer:command_success", "data": map[string]any{"id": id, "result": result}})
		}
		if name == "restart" {
			go run() // a rolling restart waits for readiness: the channel goes on meanwhile
			return
		}
		run()
	default:
		c.invalid("unknown_cmd")
	}
}

// chTopic is a parsed topic (reference §3.5).
type chTopic struct {
	name   string // normalised: SOURCE or SOURCE:target, target case kept
	source string
	target string // without ?options
	opts   url.Values
}

func chParseTopic(raw string) (chTopic, bool) {
	src, target, hasTarget := strings.Cut(strings.TrimSpace(raw), ":")
	t := chTopic{source: strings.ToUpper(strings.TrimSpace(src))}
	t.name = t.source
	if hasTarget {
		t.name += ":" + target
		if base, query, ok := strings.Cut(target, "?"); ok {
			q, err := url.ParseQuery(query)
			if err != nil {
				return t, false
			}
			t.opts, target = q, base
		}
		t.target = target
	}
	switch t.source {
	case "EVENTS":
		return t, true
	case "JOB", "PROCESS", "STATS", "STREAM":
		return t, t.target != ""
	}
	return t, false
}

func (c *chConn) subError(topic, reason string) {
	c.w.sendJSON(map[string]any{"event": "gaffer:subscription_error", "topic": topic, "data": map[string]any{"reason": reason}})
}

func (c *chConn) subSuccess(topic string) {
	c.w.sendJSON(map[string]any{"event": "gaffer:subscription_success", "topic": topic})
}

func (c *chConn) subscribe(raw string) {
	t, ok := chParseTopic(raw)
	if !ok {
		c.subError(t.name, "invalid_topic")
		return
	}
	if sub, ok := c.subs[t.name]; ok {
		sub.count++
		c.subSuccess(t.name)
		return
	}
	if len(c.subs) >= chMaxTopics {
		c.subError(t.name, "too_many_subscriptions")
		return
	}
	quit := make(chan struct{})
	run, reason := c.prepare(t, quit)
	if reason != "" {
		c.subError(t.name, reason)
		return
	}
	c.subs[t.name] = &chSub{count: 1, quit: quit}
	c.subSuccess(t.name) // queued before any delivery of the topic
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		run()
	}()
}

func (c *chConn) unsubscribe(raw string) {
	t, ok := chParseTopic(raw)
	if !ok {
		c.subError(t.name, "invalid_topic")
		return
	}
	sub, ok := c.subs[t.name]
	if !ok {
		c.subError(t.name, "not_subscribed")
		return
	}
	sub.count--
	if sub.count <= 0 {
		delete(c.subs, t.name)
		close(sub.quit)
	}
	c.subSuccess(t.name)
}

// chPid parses a pid target: digits only.
func chPid(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, _ := strconv.Atoi(s)
	return n, n > 0
}

// chFullName normalises a job name to session.job.
func chFullName(name string) string {
	sid, job := SplitName(name)
	return sid + "." + job
}

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

// chStreamData is the data of a STREAM event.
type chStreamData struct {
	Event string `json:"event"`
	Topic string `json:"topic"`
	Name  string `json:"name"`
	Pid   int    `json:"pid"`
	Data  string `json:"data"`
	Seq   uint64 `json:"seq"`
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

// Commands (reference §3.6).
