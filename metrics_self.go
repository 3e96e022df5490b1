package gaffer

import (
	"os"
	"runtime"
	"sync"
	"time"
	"weak"

	"golang.org/x/sys/unix"
)

// gafferd's own figures, under the names the Prometheus client libraries
// give them (process_*, go_*), so that the usual dashboards find them;
// the process slots of the per-process series; the webhook counters.

// mtProcessStart is when gafferd started (taken as the package initialises).
var mtProcessStart = time.Now()

// mtSelfFigures adds the process_* and go_* families. The client
// libraries' go_memstats_alloc_bytes_total is left out: in OpenMetrics its
// family name would be go_memstats_alloc_bytes, the gauge's.
func mtSelfFigures(mw *mtWriter) {
	cpu := mw.family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
	rss := mw.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
	vms := mw.family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.")
	openFDs := mw.family("process_open_fds", "gauge", "Number of open file descriptors.")
	maxFDs := mw.family("process_max_fds", "gauge", "Maximum number of open file descriptors.")
	startTime := mw.family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.")

	goInfo := mw.family("go_info", "gauge", "Information about the Go environment.")
	goroutines := mw.family("go_goroutines", "gauge", "Number of goroutines that currently exist.")
	goThreads := mw.family("go_threads", "gauge", "Number of OS threads created.")
	alloc := mw.family("go_memstats_alloc_bytes", "gauge", "Number of bytes allocated and still in use.")
	sys := mw.family("go_memstats_sys_bytes", "gauge", "Number of bytes obtained from system.")
	mallocs := mw.family("go_memstats_mallocs_total", "counter", "Total number of mallocs.")
	frees := mw.family("go_memstats_frees_total", "counter", "Total number of frees.")
	heapAlloc := mw.family("go_memstats_heap_alloc_bytes", "gauge", "Number of heap bytes allocated and still in use.")
	heapSys := mw.family("go_memstats_heap_sys_bytes", "gauge", "Number of heap bytes obtained from system.")
	heapIdle := mw.family("go_memstats_heap_idle_bytes", "gauge", "Number of heap bytes waiting to be used.")
	heapInuse := mw.family("go_memstats_heap_inuse_bytes", "gauge", "Number of heap bytes that are in use.")
	heapReleased := mw.family("go_memstats_heap_released_bytes", "gauge", "Number of heap bytes released to OS.")
	heapObjects := mw.family("go_memstats_heap_objects", "gauge", "Number of allocated objects.")
	stackInuse := mw.family("go_memstats_stack_inuse_bytes", "gauge", "Number of bytes in use by the stack allocator.")
	nextGC := mw.family("go_memstats_next_gc_bytes", "gauge", "Number of heap bytes when next garbage collection will take place.")
	lastGC := mw.family("go_memstats_last_gc_time_seconds", "gauge", "Number of seconds since 1970 of last garbage collection.")
	gcCount := mw.family("go_gc_cycles_total", "counter", "Completed garbage collection cycles.")

	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
		cpu.add(float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9)
	}
	if mtResourceStats {
		if raw := readStats(os.Getpid()); raw.ok {
			rss.add(float64(raw.rss))
			vms.add(float64(raw.vms))
			openFDs.add(float64(raw.fds))
		}
	}
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil {
		maxFDs.add(float64(lim.Cur))
	}
	startTime.add(float64(mtProcessStart.UnixNano()) / 1e9)

	goInfo.add(1, "version", runtime.Version())
	goroutines.add(float64(runtime.NumGoroutine()))
	n, _ := runtime.ThreadCreateProfile(nil)
	goThreads.add(float64(n))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	alloc.add(float64(ms.Alloc))
	sys.add(float64(ms.Sys))
	mallocs.add(float64(ms.Mallocs))
	frees.add(float64(ms.Frees))
	heapAlloc.add(float64(ms.HeapAlloc))
	heapSys.add(float64(ms.HeapSys))
	heapIdle.add(float64(ms.HeapIdle))
	heapInuse.add(float64(ms.HeapInuse))
	heapReleased.add(float64(ms.HeapReleased))
	heapObjects.add(float64(ms.HeapObjects))
	stackInuse.add(float64(ms.StackInuse))
	nextGC.add(float64(ms.NextGC))
	lastGC.add(float64(ms.LastGC) / 1e9)
	gcCount.add(float64(ms.NumGC))
}

// mtSlots gives each live process of a job a small, stable number: the
// lowest slot no live process of the job holds, kept for the process's
// life. A restarted process takes the slot of the one it replaces, so the
// per-process series stay as many as the job's processes.
type mtSlots struct {
	mu   sync.Mutex
	jobs map[string]map[int]int // job → internal pid → slot
}

var (
	mtSlotsMu  sync.Mutex
	mtSlotsFor = map[weak.Pointer[Manager]]*mtSlots{}
)

// mtSlotsOf returns the slot table of a manager's jobs (dropped when the
// manager is garbage collected).
func mtSlotsOf(m *Manager) *mtSlots {
	mtSlotsMu.Lock()
	defer mtSlotsMu.Unlock()
	wp := weak.Make(m)
	t := mtSlotsFor[wp]
	if t == nil {
		t = &mtSlots{jobs: map[string]map[int]int{}}
		mtSlotsFor[wp] = t
		runtime.AddCleanup(m, func(wp weak.Pointer[Manager]) {
			mtSlotsMu.Lock()
			delete(mtSlotsFor, wp)
			mtSlotsMu.Unlock()
		}, wp)
	}
	return t
}

// keepJobs forgets the jobs that are no longer loaded.
func (t *mtSlots) keepJobs(jobs []JobInfo) {
	t.mu.Lock()
	defer t.mu.Unlock()
	live := make(map[string]bool, len(jobs))
	for _, j := range jobs {
		live[j.Name] = true
	}
	for name := range t.jobs {
		if !live[name] {
			delete(t.jobs, name)
		}
	}
}

// assign returns the slot of each of procs (the job's live processes, in
// the order they were created), forgetting the processes that are gone.
func (t *mtSlots) assign(job string, procs []*Process) map[int]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.jobs[job]
	cur := make(map[int]int, len(procs))
	used := map[int]bool{}
	for _, p := range procs {
		if s, ok := old[p.ID]; ok {
			cur[p.ID] = s
			used[s] = true
		}
	}
	free := 0
	for _, p := range procs {
		if _, ok := cur[p.ID]; ok {
			continue
		}
		for used[free] {
			free++
		}
		cur[p.ID] = free
		used[free] = true
	}
	t.jobs[job] = cur
	return cur
}

// mtDaemons maps a running daemon's API server to the daemon, so that
// GET /metrics can report the daemon's apps (its webhooks).
var (
	mtDaemonsMu sync.Mutex
	mtDaemons   = map[*Server]*Daemon{}
)

// mtAttach makes d's apps visible to its server's GET /metrics.
func mtAttach(d *Daemon) {
	mtDaemonsMu.Lock()
	defer mtDaemonsMu.Unlock()
	if d.Server != nil {
		mtDaemons[d.Server] = d
	}
}

// mtDetach undoes mtAttach.
func mtDetach(d *Daemon) {
	mtDaemonsMu.Lock()
	defer mtDaemonsMu.Unlock()
	if d.Server != nil && mtDaemons[d.Server] == d {
		delete(mtDaemons, d.Server)
	}
}

// mtWebhookFigures adds the delivery counters of the webhooks of the
// daemon that runs s, summed per receiver as Webhooks.Stats names it
// (scheme and host only).
func mtWebhookFigures(mw *mtWriter, s *Server) {
	mtDaemonsMu.Lock()
	d := mtDaemons[s]
	mtDaemonsMu.Unlock()
	if d == nil {
		return
	}
	d.mu.Lock()
	apps := append([]App(nil), d.apps...)
	d.mu.Unlock()
	type sums struct{ delivered, failed, dropped, queued float64 }
	per := map[string]*sums{}
	var order []string
	for _, a := range apps {
		w, ok := a.(*Webhooks)
		if !ok {
			continue
		}
		for _, st := range w.Stats() {
			sm := per[st.URL]
			if sm == nil {
				sm = &sums{}
				per[st.URL] = sm
				order = append(order, st.URL)
			}
			sm.delivered += float64(st.Delivered)
			sm.failed += float64(st.Failed)
			sm.dropped += float64(st.Dropped)
			sm.queued += float64(st.Queued)
			if st.InFlight {
				sm.queued++
			}
		}
	}
	deliveries := mw.family("gaffer_webhook_deliveries_total", "counter",
		"Webhook deliveries by receiver (scheme://host) and result: delivered (2xx), failed (given up or refused), dropped (pushed out of a full queue).")
	pending := mw.family("gaffer_webhook_pending_events", "gauge", "Events waiting for delivery to the receiver, the one being attempted included.")
	for _, u := range order {
		sm := per[u]
		deliveries.add(sm.delivered, "url", u, "result", "delivered")
		deliveries.add(sm.failed, "url", u, "result", "failed")
		deliveries.add(sm.dropped, "url", u, "result", "dropped")
		pending.add(sm.queued, "url", u)
	}
}
