package gaffer

import (
	"math"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The figures behind the console's graphs. One goroutine samples the cpu
// and resident memory of every process every statsHistoryInterval and keeps
// the last statsHistoryPoints samples (15 minutes) per job and per process
// slot: the slot numbering of GET /metrics (mtSlots), so a process restarted
// in its slot continues the series of the one it replaced. Memory is
// bounded by construction: each series is a ring of fixed size, a job's
// series go with the job, and a slot's series once no process has held the
// slot for a whole window. The sampler reads /proc once per process per
// tick (readStats) and keeps its own cpu reading per process, so it does not
// disturb the "cpu since the previous sample" of GET …/stats. It also
// remembers each job's and each slot's last exit (from the exit events),
// so a page opened late shows it. GET /jobs/<sid>/<name>/history serves it.

const (
	statsHistoryInterval = 5 * time.Second
	statsHistoryPoints   = 180 // 15 minutes at 5 s
)

// statsHistory is the sampler of one manager.
type statsHistory struct {
	m        *Manager
	slots    *mtSlots
	interval time.Duration
	points   int

	mu    sync.Mutex
	jobs  map[string]*jobHistory
	marks map[int]cpuMark // internal pid → its last cpu reading
	// The slot of each process seen at the last two ticks: an exit event
	// handled after the tick that no longer saw the process still finds it.
	curSlots, prevSlots map[int]slotRef
}

type cpuMark struct {
	cpu float64 // seconds
	at  time.Time
}

type slotRef struct {
	job     string
	slot    int
	started time.Time
}

// jobHistory is the history of one job: its totals and its slots.
type jobHistory struct {
	total    histRing
	slots    map[int]*histRing
	slotExit map[int]*exitRecord // last exit of the process that held the slot
	lastExit *exitRecord
}

// histPoint is one sample. pid is the internal pid the sample was read
// from (0 for a job total).
type histPoint struct {
	t   int64 // Unix milliseconds
	rss int64
	cpu float32
	pid int32
}

// histRing keeps the last cap(pts) points, oldest first from head.
type histRing struct {
	pts  []histPoint
	head int
}

func newHistRing(n int) histRing { return histRing{pts: make([]histPoint, 0, n)} }

func (r *histRing) add(p histPoint) {
	if len(r.pts) < cap(r.pts) {
		r.pts = append(r.pts, p)
		return
	}
	r.pts[r.head] = p
	r.head = (r.head + 1) % len(r.pts)
}

// newest returns the time of the last point (0 when empty).
func (r *histRing) newest() int64 {
	if len(r.pts) == 0 {
		return 0
	}
	return r.pts[(r.head+len(r.pts)-1)%len(r.pts)].t
}

// each calls f on the points after since (Unix ms), oldest first.
func (r *histRing) each(since int64, f func(histPoint)) {
	n := len(r.pts)
	for i := range n {
		if p := r.pts[(r.head+i)%n]; p.t > since {
			f(p)
		}
	}
}

// exitRecord is one exit as the exit event told it.
type exitRecord struct {
	pid, osPid, status, signal int
	at                         time.Time
	uptime                     time.Duration // 0 when the start is unknown
}

func newStatsHistory(m *Manager, interval time.Duration, points int) *statsHistory {
	return &statsHistory{m: m, slots: mtSlotsOf(m), interval: interval, points: points,
		jobs: map[string]*jobHistory{}, marks: map[int]cpuMark{}, curSlots: map[int]slotRef{}, prevSlots: map[int]slotRef{}}
}

// The running samplers, by manager: the history route finds its own.
var (
	statsHistoriesMu sync.Mutex
	statsHistories   = map[*Manager]*statsHistory{}
)

// startStatsHistory starts sampling m's processes (gafferd does it at
// start-up); the function it returns stops the sampler and waits for it.
func startStatsHistory(m *Manager) (stop func()) {
	h := newStatsHistory(m, statsHistoryInterval, statsHistoryPoints)
	statsHistoriesMu.Lock()
	statsHistories[m] = h
	statsHistoriesMu.Unlock()
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		h.run(done, time.Now)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
			statsHistoriesMu.Lock()
			if statsHistories[m] == h {
				delete(statsHistories, m)
			}
			statsHistoriesMu.Unlock()
		})
	}
}

// statsHistoryOf returns the running sampler of m, nil when none runs.
func statsHistoryOf(m *Manager) *statsHistory {
	statsHistoriesMu.Lock()
	defer statsHistoriesMu.Unlock()
	return statsHistories[m]
}

// run samples at once, then every interval until done, and records the
// exits in between.
func (h *statsHistory) run(done <-chan struct{}, now func() time.Time) {
	sub := h.m.Events().Subscribe(256, "exit")
	defer func() { sub.Unsubscribe() }()
	t := time.NewTicker(h.interval)
	defer t.Stop()
	h.sample(now())
	for {
		select {
		case <-done:
			return
		case <-t.C:
			h.sample(now())
		case ev, ok := <-sub.C:
			if !ok {
				// Cut off after a burst of exits: the next ones still count.
				sub = h.m.Events().Subscribe(256, "exit")
				continue
			}
			h.recordExit(ev)
		}
	}
}

// window is the span of time the history covers.
func (h *statsHistory) window() time.Duration { return h.interval * time.Duration(h.points) }

type sampleReading struct {
	slot int
	p    *Process
	rss  int64
	cpu  float64
}

// sample reads every process once and adds a point to each series.
func (h *statsHistory) sample(now time.Time) {
	names, _ := h.m.Jobs("")
	infos := make([]JobInfo, len(names))
	for i, n := range names {
		infos[i].Name = n
	}
	h.slots.keepJobs(infos)

	h.mu.Lock()
	oldMarks := h.marks
	h.mu.Unlock()
	marks := make(map[int]cpuMark, len(oldMarks))
	byJob := make(map[string][]sampleReading, len(names))
	for _, name := range names {
		procs, err := h.m.JobProcesses(name)
		if err != nil {
			continue // unloaded meanwhile
		}
		sort.Slice(procs, func(a, b int) bool { return procs[a].ID < procs[b].ID })
		slot := h.slots.assign(name, procs)
		rs := make([]sampleReading, 0, len(procs))
		for _, p := range procs {
			raw := readStats(p.OSPid)
			if !raw.ok {
				continue // exited meanwhile
			}
			cpu := 0.0
			if mk, ok := oldMarks[p.ID]; ok {
				if d := now.Sub(mk.at).Seconds(); d > 0 {
					cpu = (raw.cpuSeconds - mk.cpu) / d * 100
				}
			} else if age := now.Sub(p.Created).Seconds(); age > 0 {
				cpu = raw.cpuSeconds / age * 100 // first reading: the average so far
			}
			marks[p.ID] = cpuMark{cpu: raw.cpuSeconds, at: now}
			rs = append(rs, sampleReading{slot: slot[p.ID], p: p, rss: raw.rss, cpu: roundTenth(cpu)})
		}
		byJob[name] = rs
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	h.marks = marks
	h.prevSlots, h.curSlots = h.curSlots, make(map[int]slotRef, len(h.curSlots))
	t := now.UnixMilli()
	oldest := t - h.window().Milliseconds()
	for name, rs := range byJob {
		jh := h.jobLocked(name)
		var cpu float64
		var rss int64
		live := make(map[int]bool, len(rs))
		for _, r := range rs {
			cpu += r.cpu
			rss += r.rss
			ring := jh.slots[r.slot]
			if ring == nil {
				nr := newHistRing(h.points)
				ring = &nr
				jh.slots[r.slot] = ring
			}
			ring.add(histPoint{t: t, rss: r.rss, cpu: float32(r.cpu), pid: int32(r.p.ID)})
			live[r.slot] = true
			h.curSlots[r.p.ID] = slotRef{job: name, slot: r.slot, started: r.p.Created}
		}
		jh.total.add(histPoint{t: t, rss: rss, cpu: float32(roundTenth(cpu))})
		for s, ring := range jh.slots {
			if !live[s] && ring.newest() <= oldest {
				delete(jh.slots, s)
				delete(jh.slotExit, s)
			}
		}
	}
	for name := range h.jobs {
		if _, ok := byJob[name]; !ok {
			delete(h.jobs, name)
		}
	}
}

func (h *statsHistory) jobLocked(name string) *jobHistory {
	jh := h.jobs[name]
	if jh == nil {
		jh = &jobHistory{total: newHistRing(h.points), slots: map[int]*histRing{}, slotExit: map[int]*exitRecord{}}
		h.jobs[name] = jh
	}
	return jh
}

// recordExit remembers an exit as its job's last and, when the sampler
// saw the process, as its slot's last.
func (h *statsHistory) recordExit(ev Event) {
	name, _ := ev.Data["name"].(string)
	if name == "" {
		return
	}
	rec := &exitRecord{pid: anyInt(ev.Data["pid"]), osPid: anyInt(ev.Data["os_pid"]),
		status: anyInt(ev.Data["exit_status"]), signal: anyInt(ev.Data["term_signal"]), at: ev.Time}
	h.mu.Lock()
	defer h.mu.Unlock()
	jh := h.jobLocked(name) // a job not sampled yet; the next tick drops it if it is gone
	ref, ok := h.curSlots[rec.pid]
	if !ok {
		ref, ok = h.prevSlots[rec.pid]
	}
	if ok && ref.job == name {
		rec.uptime = max(rec.at.Sub(ref.started), 0)
		if _, has := jh.slots[ref.slot]; has {
			jh.slotExit[ref.slot] = rec
		}
	}
	jh.lastExit = rec
}

// anyInt reads an integer of an event payload.
func anyInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	return 0
}

func roundTenth(f float64) float64 { return math.Round(max(f, 0)*10) / 10 }

// historyJSON is the answer of GET /jobs/<sid>/<name>/history.
type historyJSON struct {
	Name      string            `json:"name"`
	Interval  float64           `json:"interval"` // seconds between samples; 0 when no sampler runs
	Window    float64           `json:"window"`   // seconds the history covers
	Now       float64           `json:"now"`      // the server's clock, seconds since the Unix epoch
	Job       seriesJSON        `json:"job"`
	LastExit  *exitJSON         `json:"last_exit"`
	Processes []procHistoryJSON `json:"processes"`
}

// seriesJSON is one series: sample times (seconds since the Unix epoch),
// cpu (percent of one core over the interval) and resident memory (bytes).
type seriesJSON struct {
	T   []float64 `json:"t"`
	CPU []float64 `json:"cpu"`
	RSS []int64   `json:"rss"`
}

func (s *seriesJSON) add(p histPoint) {
	s.T = append(s.T, float64(p.t)/1000)
	s.CPU = append(s.CPU, roundTenth(float64(p.cpu)))
	s.RSS = append(s.RSS, p.rss)
}

// procHistoryJSON is one slot: the process holding it now (none when
// pid is null) and the series of the processes that held it.
type procHistoryJSON struct {
	Slot     int       `json:"slot"`
	Pid      *int      `json:"pid"`
	OSPid    *int      `json:"os_pid"`
	Started  *float64  `json:"started"` // seconds since the Unix epoch
	Uptime   *float64  `json:"uptime"`  // seconds
	Once     bool      `json:"once"`    // a committed (one-off) process
	Pids     []int     `json:"pids"`    // the internal pid each sample was read from
	LastExit *exitJSON `json:"last_exit"`
	seriesJSON
}

// exitJSON is an exit: the process, its status or signal, when, and how
// long it had run (null when the sampler never saw it).
type exitJSON struct {
	Pid        int      `json:"pid"`
	OSPid      int      `json:"os_pid"`
	ExitStatus int      `json:"exit_status"`
	TermSignal int      `json:"term_signal"`
	Signal     string   `json:"signal,omitempty"`
	Time       float64  `json:"time"`
	Uptime     *float64 `json:"uptime"`
}

func exitView(r *exitRecord) *exitJSON {
	if r == nil {
		return nil
	}
	e := &exitJSON{Pid: r.pid, OSPid: r.osPid, ExitStatus: r.status, TermSignal: r.signal, Time: unixSeconds(r.at)}
	if r.signal > 0 {
		e.Signal = SignalName(syscall.Signal(r.signal))
	}
	if r.uptime > 0 {
		u := math.Round(r.uptime.Seconds()*1000) / 1000
		e.Uptime = &u
	}
	return e
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// view describes the job full: the series after since (Unix ms) and procs,
// its live processes, in their slots. h may be nil (no sampler runs): the
// processes without history.
func (h *statsHistory) view(full string, procs []*Process, slot map[int]int, since int64, now time.Time) historyJSON {
	out := historyJSON{Name: full, Now: unixSeconds(now), Job: seriesJSON{T: []float64{}, CPU: []float64{}, RSS: []int64{}}, Processes: []procHistoryJSON{}}
	bySlot := map[int]*procHistoryJSON{}
	entry := func(s int) *procHistoryJSON {
		e := bySlot[s]
		if e == nil {
			e = &procHistoryJSON{Slot: s, Pids: []int{}, seriesJSON: seriesJSON{T: []float64{}, CPU: []float64{}, RSS: []int64{}}}
			bySlot[s] = e
		}
		return e
	}
	for _, p := range procs {
		e := entry(slot[p.ID])
		pid, osPid := p.ID, p.OSPid
		started := unixSeconds(p.Created)
		up := math.Round(max(now.Sub(p.Created).Seconds(), 0)*1000) / 1000
		e.Pid, e.OSPid, e.Started, e.Uptime, e.Once = &pid, &osPid, &started, &up, p.Once
	}
	if h != nil {
		out.Interval, out.Window = h.interval.Seconds(), h.window().Seconds()
		since = max(since, now.Add(-h.window()).UnixMilli())
		h.mu.Lock()
		if jh := h.jobs[full]; jh != nil {
			jh.total.each(since, out.Job.add)
			out.LastExit = exitView(jh.lastExit)
			for s, ring := range jh.slots {
				e := entry(s)
				ring.each(since, func(p histPoint) {
					e.add(p)
					e.Pids = append(e.Pids, int(p.pid))
				})
				e.LastExit = exitView(jh.slotExit[s])
			}
		}
		h.mu.Unlock()
	}
	for _, e := range bySlot {
		out.Processes = append(out.Processes, *e)
	}
	sort.Slice(out.Processes, func(a, b int) bool { return out.Processes[a].Slot < out.Processes[b].Slot })
	return out
}

// handleJobHistory serves GET /jobs/<sid>/<name>/history[?since=T]: the
// job's cpu and memory over the last 15 minutes, per job and per process
// slot, with uptimes, OS pids and last exits; since (seconds since the
// Unix epoch) keeps only the later samples.
func (s *Server) handleJobHistory(w http.ResponseWriter, r *http.Request) {
	full := jobName(r)
	if !allow(w, caller(r).CanRead(full)) {
		return
	}
	var since int64
	if v := r.URL.Query().Get("since"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
			writeError(w, Errorf(CodeBadValue, 400, "since: expected a time in seconds since the Unix epoch, got %q", v))
			return
		}
		since = int64(f * 1000)
	}
	procs, err := s.m.JobProcesses(full)
	if err != nil {
		writeError(w, err)
		return
	}
	sort.Slice(procs, func(a, b int) bool { return procs[a].ID < procs[b].ID })
	slot := mtSlotsOf(s.m).assign(full, procs)
	writeJSON(w, 200, statsHistoryOf(s.m).view(full, procs, slot, since, time.Now()))
}

// oaHistorySchema is the JobHistory schema of GET /openapi.json.
func oaHistorySchema() oaObj {
	series := func(what string) oaObj {
		return oaObject(oaObj{
			"t":   oaObj{"type": "array", "items": oaObj{"type": "number"}, "description": "sample times, seconds since the Unix epoch, oldest first"},
			"cpu": oaObj{"type": "array", "items": oaObj{"type": "number"}, "description": "cpu of " + what + ", percent of one core over the interval"},
			"rss": oaObj{"type": "array", "items": oaObj{"type": "integer"}, "description": "resident memory of " + what + " in bytes"},
		}, "t", "cpu", "rss")
	}
	orNull := func(typ, desc string) oaObj { return oaObj{"type": []string{typ, "null"}, "description": desc} }
	exit := oaObj{"description": "the last exit (null when none was seen)", "oneOf": []any{oaObj{"type": "null"}, oaObject(oaObj{
		"pid": oaInt("internal pid"), "os_pid": oaInt("OS pid"), "exit_status": oaInt("exit status (0 after a signal)"),
		"term_signal": oaInt("the signal that ended it, 0 for none"), "signal": oaStr("its name, SIGTERM…"),
		"time": oaNum("when, seconds since the Unix epoch"), "uptime": orNull("number", "seconds it had run, null when unknown"),
	}, "pid", "exit_status", "term_signal", "time")}}
	proc := oaObject(oaObj{
		"slot": oaInt("the slot (as the slot label of GET /metrics): a restarted process takes the slot of the one it replaces"),
		"pid":  orNull("integer", "internal pid of the process in the slot now, null when none"), "os_pid": orNull("integer", "its OS pid"),
		"started": orNull("number", "its start, seconds since the Unix epoch"), "uptime": orNull("number", "seconds it has run"),
		"once": oaBool("a committed (one-off) process"), "pids": oaArr(oaObj{"type": "integer"}),
		"last_exit": exit,
		"t":         oaArr(oaObj{"type": "number"}), "cpu": oaArr(oaObj{"type": "number"}), "rss": oaArr(oaObj{"type": "integer"}),
	}, "slot", "pid", "t", "cpu", "rss")
	return oaObject(oaObj{
		"name": oaStr("session.job"), "interval": oaNum("seconds between two samples (0 when gafferd samples nothing)"),
		"window": oaNum("seconds the history covers"), "now": oaNum("the server's clock, seconds since the Unix epoch"),
		"job": series("all the job's processes"), "last_exit": exit, "processes": oaArr(proc),
	}, "name", "interval", "window", "now", "job", "last_exit", "processes")
}
