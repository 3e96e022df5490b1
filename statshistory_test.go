package gaffer

import (
	"context"
	"encoding/json"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// shellJob is a job running /bin/sh -c script.
func shellJob(name, script string, n int) JobConfig {
	cfg := NewJobConfig(name, "/bin/sh")
	cfg.Args = []string{"-c", script}
	cfg.NumProcesses = n
	cfg.GracefulTimeout = 2 * time.Second
	return cfg
}

// lastPoint returns the last cpu and rss of a series.
func lastPoint(t *testing.T, what string, s seriesJSON) (float64, int64) {
	t.Helper()
	if len(s.T) == 0 || len(s.CPU) != len(s.T) || len(s.RSS) != len(s.T) {
		t.Fatalf("%s: series %+v has no point or uneven arrays", what, s)
	}
	return s.CPU[len(s.CPU)-1], s.RSS[len(s.RSS)-1]
}

func historyOf(t *testing.T, h *statsHistory, m *Manager, full string) historyJSON {
	t.Helper()
	procs, err := m.JobProcesses(full)
	if err != nil {
		t.Fatal(err)
	}
	return h.view(full, procs, h.slots.assign(full, procs), 0, time.Now())
}

// A child that burns cpu and an idle one, sampled twice with real
// processes: the busy one's cpu is the higher, each slot's series and the
// job's total agree, and the slot carries the process's pids and uptime.
func TestStatsHistoryBusyAndIdle(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("cpu and memory figures need /proc")
	}
	m := newTestManager(t)
	if err := m.Load("default", shellJob("busy", "while :; do :; done", 1), nil, true); err != nil {
		t.Fatal(err)
	}
	idle := NewJobConfig("idle", "sleep 300")
	idle.GracefulTimeout = 2 * time.Second
	if err := m.Load("default", idle, nil, true); err != nil {
		t.Fatal(err)
	}
	h := newStatsHistory(m, time.Second, 10)
	busy, _ := m.JobProcesses("default.busy")
	t0 := time.Now()
	h.sample(t0)
	cpu0 := readStats(busy[0].OSPid).cpuSeconds
	// Wait for the busy child to burn 0.3 s of cpu, and for at least a
	// second (so that the idle one's 10 ms clock tick, if any, stays
	// under 1 %).
	waitFor(t, 60*time.Second, "the busy child to burn cpu", func() bool {
		return readStats(busy[0].OSPid).cpuSeconds-cpu0 >= 0.3 && time.Since(t0) >= time.Second
	})
	h.sample(time.Now())

	hb := historyOf(t, h, m, "default.busy")
	hi := historyOf(t, h, m, "default.idle")
	if hb.Interval != 1 || hb.Window != 10 || len(hb.Job.T) != 2 || len(hi.Job.T) != 2 {
		t.Fatalf("interval %v window %v, %d and %d job points, want 1, 10, 2 and 2", hb.Interval, hb.Window, len(hb.Job.T), len(hi.Job.T))
	}
	busyCPU, busyRSS := lastPoint(t, "busy job", hb.Job)
	idleCPU, idleRSS := lastPoint(t, "idle job", hi.Job)
	if busyCPU <= idleCPU || busyCPU < 1 || idleCPU >= 1 {
		t.Fatalf("last cpu: busy %v%%, idle %v%%; want busy >= 1 > idle", busyCPU, idleCPU)
	}
	if busyRSS <= 0 || idleRSS <= 0 {
		t.Fatalf("rss: busy %d, idle %d", busyRSS, idleRSS)
	}
	if len(hb.Processes) != 1 {
		t.Fatalf("busy processes %+v, want one slot", hb.Processes)
	}
	p := hb.Processes[0]
	if p.Slot != 0 || p.Pid == nil || *p.Pid != busy[0].ID || p.OSPid == nil || *p.OSPid != busy[0].OSPid || p.Uptime == nil || *p.Uptime <= 0 || p.Started == nil {
		t.Fatalf("busy slot %+v, want slot 0 held by pid %d (os %d) with an uptime", p, busy[0].ID, busy[0].OSPid)
	}
	if pc, pr := lastPoint(t, "busy slot", p.seriesJSON); pc != busyCPU || pr != busyRSS || len(p.Pids) != 2 || p.Pids[1] != busy[0].ID {
		t.Fatalf("busy slot last point %v %v pids %v; want the job's %v %v and pid %d", pc, pr, p.Pids, busyCPU, busyRSS, busy[0].ID)
	}
	// GET …/stats keeps its own "since the previous sample": the sampler
	// did not reset it.
	if st := busy[0].Stats(); st.CPUPercent <= 0 {
		t.Fatalf("GET …/stats cpu %v after the sampler ran", st.CPUPercent)
	}
}

// The ring keeps the last points only; a slot no process holds any more
// stays for one window, then goes; an unloaded job's history goes at the
// next tick. The clock is injected: no waiting.
func TestStatsHistoryBoundedAndExpiring(t *testing.T) {
	m := newTestManager(t)
	cfg := NewJobConfig("two", "sleep 300")
	cfg.NumProcesses = 2
	cfg.GracefulTimeout = 2 * time.Second
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	const points = 3
	h := newStatsHistory(m, time.Second, points)
	base := time.Now()
	tick := 0
	next := func() time.Time {
		tick++
		now := base.Add(time.Duration(tick) * time.Second)
		h.sample(now)
		return now
	}
	for range 7 {
		next()
	}
	h.mu.Lock()
	jh := h.jobs["default.two"]
	if jh == nil || len(jh.slots) != 2 {
		h.mu.Unlock()
		t.Fatalf("job history %+v, want two slots", jh)
	}
	for s, r := range jh.slots {
		if len(r.pts) != points || cap(r.pts) != points {
			t.Errorf("slot %d holds %d points (cap %d), want %d", s, len(r.pts), cap(r.pts), points)
		}
	}
	if len(jh.total.pts) != points || cap(jh.total.pts) != points {
		t.Errorf("job total holds %d points (cap %d)", len(jh.total.pts), cap(jh.total.pts))
	}
	h.mu.Unlock()
	v := historyOf(t, h, m, "default.two")
	want := []float64{unixSeconds(base.Add(5 * time.Second)), unixSeconds(base.Add(6 * time.Second)), unixSeconds(base.Add(7 * time.Second))}
	if len(v.Job.T) != 3 || v.Job.T[0] != want[0] || v.Job.T[2] != want[2] {
		t.Fatalf("job times %v, want the last three ticks %v", v.Job.T, want)
	}
	procs, _ := m.JobProcesses("default.two")
	since := int64(want[1] * 1000)
	if sv := h.view("default.two", procs, h.slots.assign("default.two", procs), since, time.Now()); len(sv.Job.T) != 1 || sv.Job.T[0] != want[2] || len(sv.Processes[0].T) != 1 {
		t.Fatalf("since %v: job times %v, slot times %v; want only %v", want[1], sv.Job.T, sv.Processes[0].T, want[2])
	}

	// Scale down to one (the oldest goes): its slot stays, without a
	// process, for a window.
	if _, err := m.Scale("default.two", ScaleOp{Set: true, Value: 1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "one process left", func() bool { p, _ := m.JobProcesses("default.two"); return len(p) == 1 })
	next()
	v = historyOf(t, h, m, "default.two")
	if len(v.Processes) != 2 || v.Processes[0].Pid != nil || len(v.Processes[0].T) != points || v.Processes[1].Pid == nil {
		t.Fatalf("after scaling down: %+v, want slot 0 with its history and no pid, slot 1 live", v.Processes)
	}
	// Its last point (tick 7) is a window old at tick 10.
	next()
	if v = historyOf(t, h, m, "default.two"); len(v.Processes) != 2 || v.Processes[0].Pid != nil {
		t.Fatalf("at tick %d: %+v, want slot 0 still there", tick, v.Processes)
	}
	next()
	v = historyOf(t, h, m, "default.two")
	if len(v.Processes) != 1 || v.Processes[0].Slot != 1 {
		t.Fatalf("a window later: %+v, want slot 0 gone", v.Processes)
	}

	if err := m.Unload("default.two"); err != nil {
		t.Fatal(err)
	}
	next()
	h.mu.Lock()
	_, kept := h.jobs["default.two"]
	n := len(h.marks)
	h.mu.Unlock()
	if kept || n != 0 {
		t.Fatalf("after unload: history kept %v, %d cpu readings kept", kept, n)
	}
}

// The sampler's goroutine: it samples at start, records exits from the
// event bus (the job's and the slot's, with the signal and the uptime) and
// stops when told. A restarted process continues its slot's series.
func TestStatsHistoryRunRecordsExits(t *testing.T) {
	m := newTestManager(t)
	cfg := NewJobConfig("web", "sleep 300")
	cfg.GracefulTimeout = 2 * time.Second
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	h := newStatsHistory(m, time.Hour, 10) // only the first sample ticks
	done, finished := make(chan struct{}), make(chan struct{})
	go func() { defer close(finished); h.run(done, time.Now) }()
	defer func() { close(done); <-finished }()
	waitFor(t, 10*time.Second, "the first sample", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		jh := h.jobs["default.web"]
		return jh != nil && len(jh.slots[0].pts) == 1
	})
	old, _ := m.JobProcesses("default.web")
	if err := m.Kill(old[0].ID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the exit to be recorded", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.jobs["default.web"].lastExit != nil && h.jobs["default.web"].slotExit[0] != nil
	})
	waitFor(t, 10*time.Second, "the replacement", func() bool { p, _ := m.JobProcesses("default.web"); return len(p) == 1 && p[0].ID != old[0].ID })
	v := historyOf(t, h, m, "default.web")
	for where, e := range map[string]*exitJSON{"job": v.LastExit, "slot": v.Processes[0].LastExit} {
		if e == nil || e.Pid != old[0].ID || e.OSPid != old[0].OSPid || e.TermSignal != int(syscall.SIGKILL) || e.Signal != "SIGKILL" || e.Uptime == nil || *e.Uptime <= 0 || e.Time <= 0 {
			t.Fatalf("%s last exit %+v, want pid %d killed by SIGKILL with an uptime", where, e, old[0].ID)
		}
	}
	p := v.Processes[0]
	if p.Pid == nil || *p.Pid == old[0].ID || len(p.Pids) != 1 || p.Pids[0] != old[0].ID {
		t.Fatalf("slot 0 %+v: want the new process holding it, with the old one's sample", p)
	}
}

// GET /jobs/<sid>/<name>/history: the read right of the job, 404 for an
// unknown job, 400 for a bad since, and without a sampler the processes
// with no history.
func TestJobHistoryRoute(t *testing.T) {
	store, err := OpenAuthStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys := newKeyMatrix(t, store)
	a := newAPI(t, ServerOptions{Auth: store, RequireKey: true})
	if err := a.m.Load("app", childConfig(t, "web", "sleep", nil), nil, true); err != nil {
		t.Fatal(err)
	}
	names := []string{"no key", "read", "write", "manage", "other session", "admin"}
	want := []int{401, 200, 200, 200, 403, 200}
	for i, key := range []string{"", keys.read, keys.write, keys.manage, keys.other, keys.admin} {
		var hdr []string
		if key != "" {
			hdr = []string{"X-Api-Key", key}
		}
		if code, _, body := a.do("GET", "/jobs/app/web/history", "", hdr...); code != want[i] {
			t.Errorf("GET /jobs/app/web/history with %s: %d, want %d (%s)", names[i], code, want[i], body)
		}
	}
	adm := []string{"X-Api-Key", keys.admin}
	for path, code := range map[string]int{"/jobs/app/nope/history": 404, "/jobs/app/web/history?since=soon": 400, "/jobs/app/web/history?since=-1": 400} {
		if got, _, body := a.do("GET", path, "", adm...); got != code || !strings.Contains(string(body), `"errno":`+strconv.Itoa(code)) {
			t.Errorf("GET %s: %d %s, want %d in the error shape", path, got, body, code)
		}
	}

	// No sampler runs for this manager (gafferd starts one): the live
	// processes, no series.
	_, _, body := a.do("GET", "/jobs/app/web/history", "", adm...)
	var v historyJSON
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	pids, _ := a.m.Pids("app.web")
	if v.Name != "app.web" || v.Interval != 0 || len(v.Job.T) != 0 || len(v.Processes) != 1 || v.Processes[0].Pid == nil || *v.Processes[0].Pid != pids[0] {
		t.Fatalf("without a sampler: %s", body)
	}

	// With one: the samples.
	stop := startStatsHistory(a.m)
	defer stop()
	waitFor(t, 10*time.Second, "the first sample", func() bool {
		_, _, body := a.do("GET", "/jobs/app/web/history", "", adm...)
		var v historyJSON
		json.Unmarshal(body, &v)
		return v.Interval == statsHistoryInterval.Seconds() && len(v.Job.T) == 1 && len(v.Processes) == 1 && len(v.Processes[0].T) == 1
	})
	stop()
	if statsHistoryOf(a.m) != nil {
		t.Fatal("the sampler is still registered after stop")
	}
}

// FuzzHistRing: any capacity and any number of points keep the last
// min(n, cap) points in order, and since filters by time.
func FuzzHistRing(f *testing.F) {
	f.Add(uint8(3), uint16(7), int64(4))
	f.Add(uint8(1), uint16(0), int64(0))
	f.Add(uint8(180), uint16(500), int64(400))
	f.Fuzz(func(t *testing.T, size uint8, n uint16, since int64) {
		if size == 0 {
			return
		}
		r := newHistRing(int(size))
		for i := 1; i <= int(n); i++ {
			r.add(histPoint{t: int64(i), cpu: float32(i)})
		}
		if len(r.pts) > int(size) || cap(r.pts) != int(size) {
			t.Fatalf("ring of %d holds %d (cap %d)", size, len(r.pts), cap(r.pts))
		}
		keep := min(int(n), int(size))
		if n > 0 && r.newest() != int64(n) {
			t.Fatalf("newest %d, want %d", r.newest(), n)
		}
		var got []int64
		r.each(since, func(p histPoint) { got = append(got, p.t) })
		var want []int64
		for i := int(n) - keep + 1; i <= int(n); i++ {
			if int64(i) > since {
				want = append(want, int64(i))
			}
		}
		if len(got) != len(want) {
			t.Fatalf("size %d n %d since %d: got %v, want %v", size, n, since, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("size %d n %d since %d: got %v, want %v", size, n, since, got, want)
			}
		}
	})
}

// BenchmarkStatsHistorySample: one tick of the sampler over 50 processes,
// against the floor of reading their /proc figures (readStats) alone.
func BenchmarkStatsHistorySample(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("needs /proc")
	}
	m := NewManager(Options{})
	defer m.Shutdown(context.Background())
	cfg := NewJobConfig("many", "sleep 300")
	cfg.NumProcesses = 50
	cfg.GracefulTimeout = time.Second
	if err := m.Load("default", cfg, nil, true); err != nil {
		b.Fatal(err)
	}
	procs, _ := m.JobProcesses("default.many")
	b.Run("readStats", func(b *testing.B) {
		for b.Loop() {
			for _, p := range procs {
				readStats(p.OSPid)
			}
		}
	})
	b.Run("sample", func(b *testing.B) {
		h := newStatsHistory(m, time.Second, statsHistoryPoints)
		now := time.Now()
		for b.Loop() {
			now = now.Add(time.Second)
			h.sample(now)
		}
	})
}
