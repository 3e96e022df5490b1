package gaffer

import (
	"math"
	"mime"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// GET /metrics: the Prometheus text exposition format (version 0.0.4), or
// OpenMetrics 1.0 when the Accept header prefers it, written by hand.
//
// Job and process figures are given for the jobs the caller's key can
// read, labelled session and name (not "job", which is the label a
// Prometheus server gives its scrape target). Per-process figures carry a
// "slot" label, the process's place in its job (0 to numprocesses-1, a
// replacement takes the slot of the process it replaces), never its pid:
// a pid label would make a new series at every restart. gafferd's own
// figures use the standard process_* and go_* names (metrics_self.go);
// they and the event counters are given to any key that passes
// authentication, as they name no job; the webhook counters, which name
// receivers, to keys that can manage every job.

// MetricsContentType is the Content-Type of GET /metrics in the text format.
const MetricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// mtOpenMetricsType is the Content-Type of GET /metrics in OpenMetrics.
const mtOpenMetricsType = "application/openmetrics-text; version=1.0.0; charset=utf-8"

// mtJobStates lists the states of the gaffer_job_state state set.
var mtJobStates = []string{JobRunning, JobStopped, JobNotStarted, JobFlapping, JobGaveUp,
	jobWaiting, jobStarting, jobReady, jobUnhealthy, jobBackoff, jobCompleted}

func (s *Server) metricsRoutes() {
	s.mux.HandleFunc("GET /metrics", s.handleMetrics)
	s.mux.HandleFunc("/metrics", lgMethods("GET, HEAD"))
}

// mtFamily is one metric family: its HELP and TYPE lines, then its
// samples, which are written together as the format requires.
type mtFamily struct {
	name, typ, help string
	samples         []byte
}

// mtWriter collects families in the order they are first declared.
type mtWriter struct {
	fams []*mtFamily
}

func (mw *mtWriter) family(name, typ, help string) *mtFamily {
	f := &mtFamily{name: name, typ: typ, help: help}
	mw.fams = append(mw.fams, f)
	return f
}

// add appends a sample; labels are name, value pairs.
func (f *mtFamily) add(v float64, labels ...string) {
	b := append(f.samples, f.name...)
	if len(labels) > 0 {
		b = append(b, '{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, labels[i]...)
			b = append(b, '=', '"')
			b = mtEscape(b, labels[i+1], true)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = mtAppendValue(b, v)
	f.samples = append(b, '\n')
}

// bytes renders every family that has samples in the text format, or in
// OpenMetrics: there a counter family is named without its _total suffix
// (its samples keep it), HELP escapes double quotes too, and the
// exposition ends with "# EOF".
func (mw *mtWriter) bytes(openMetrics bool) []byte {
	var b []byte
	for _, f := range mw.fams {
		if len(f.samples) == 0 {
			continue
		}
		name := f.name
		if openMetrics && f.typ == "counter" {
			name = strings.TrimSuffix(name, "_total")
		}
		b = append(b, "# HELP "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = mtEscape(b, f.help, openMetrics)
		b = append(b, "\n# TYPE "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = append(b, f.typ...)
		b = append(b, '\n')
		b = append(b, f.samples...)
	}
	if openMetrics {
		b = append(b, "# EOF\n"...)
	}
	return b
}

// mtEscape appends s escaped as the format wants: backslash and newline
// always, the double quote in label values (and in OpenMetrics HELP).
// Invalid UTF-8 is replaced.
func mtEscape(b []byte, s string, quote bool) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '"' && quote:
			b = append(b, '\\', '"')
		default:
			b = append(b, c)
		}
	}
	return b
}

func mtAppendValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// mtWantsOpenMetrics tells whether an Accept header prefers OpenMetrics to
// the text format: its q is above zero and not below that of text/plain
// (or of the wildcards that stand for it).
func mtWantsOpenMetrics(accept string) bool {
	om, text := -1.0, -1.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		switch mt {
		case "application/openmetrics-text":
			om = max(om, q)
		case "text/plain", "text/*", "*/*":
			text = max(text, q)
		}
	}
	return om > 0 && om >= text
}

// handleMetrics serves GET /metrics.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	om := mtWantsOpenMetrics(r.Header.Get("Accept"))
	body := s.metrics(caller(r)).bytes(om)
	h := w.Header()
	if om {
		h.Set("Content-Type", mtOpenMetricsType)
	} else {
		h.Set("Content-Type", MetricsContentType)
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("Vary", "Accept")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(200)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// metrics gathers the figures k may see.
func (s *Server) metrics(k *Key) *mtWriter {
	mw := &mtWriter{}
	info := mw.family("gaffer_build_info", "gauge", "Version of gafferd (always 1).")
	published := mw.family("gaffer_events_published_total", "counter", "Events published on the event bus.")
	drops := mw.family("gaffer_events_dropped_total", "counter", "Events lost because a subscriber's queue was full (the subscriber is cut off).")

	desired := mw.family("gaffer_job_desired_processes", "gauge", "Number of kept-alive processes the job wants (its numprocesses target).")
	running := mw.family("gaffer_job_running_processes", "gauge", "Live processes of the job, committed ones included.")
	committed := mw.family("gaffer_job_committed_processes", "gauge", "Live one-off (committed) processes of the job.")
	restarts := mw.family("gaffer_job_restarts_total", "counter", "Processes of the job restarted after an unexpected exit.")
	flaps := mw.family("gaffer_job_flaps_total", "counter", "Times the job was found flapping.")
	lastExit := mw.family("gaffer_job_last_exit_code", "gauge", "Exit status of the job's last exited process (0 when a signal ended it).")
	state := mw.family("gaffer_job_state", "gauge", "State of the job: 1 for the current state, 0 for the others.")
	spawnErr := mw.family("gaffer_job_spawn_failing", "gauge", "1 while the job's processes cannot be spawned (see spawn_error in the job info).")
	readyProcs := mw.family("gaffer_job_ready_processes", "gauge", "Kept-alive processes of the job that are ready (their ready condition held).")
	nextTry := mw.family("gaffer_job_backoff_next_try_seconds", "gauge", "While the job waits restart_delay: the time of its next spawn, in seconds since the Unix epoch.")

	start := mw.family("gaffer_process_start_time_seconds", "gauge", "Start time of the process in its slot, in seconds since the Unix epoch.")
	cpu := mw.family("gaffer_process_cpu_seconds_total", "counter", "User and system CPU time of the process in its slot (restarts from 0 with a new process).")
	rss := mw.family("gaffer_process_resident_memory_bytes", "gauge", "Resident memory of the process in its slot.")
	vms := mw.family("gaffer_process_virtual_memory_bytes", "gauge", "Virtual memory of the process in its slot.")
	fds := mw.family("gaffer_process_open_fds", "gauge", "Open file descriptors of the process in its slot.")
	threads := mw.family("gaffer_process_threads", "gauge", "Threads of the process in its slot.")
	procReadyF := mw.family("gaffer_process_ready", "gauge", "1 when the process in its slot is ready, else 0.")
	procHealthy := mw.family("gaffer_process_healthy", "gauge", "1 when the process in its slot passed its last health check, else 0 (jobs with a health setting).")

	info.add(1, "version", Version, "compat", CompatVersion, "goversion", runtime.Version())
	published.add(float64(s.m.Events().Published()))
	drops.add(float64(s.m.Events().Drops()))

	jobs := s.m.AllJobInfo(func(string) bool { return false })
	slots := mtSlotsOf(s.m)
	slots.keepJobs(jobs)
	for _, j := range jobs {
		procs, err := s.m.JobProcesses(j.Name)
		if err != nil {
			continue // unloaded meanwhile
		}
		sort.Slice(procs, func(a, b int) bool { return procs[a].ID < procs[b].ID })
		slot := slots.assign(j.Name, procs)
		if !k.CanRead(j.Name) {
			continue
		}
		sid, name := SplitName(j.Name)
		jl := []string{"session", sid, "name", name}
		desired.add(float64(j.MaxProcesses), jl...)
		running.add(float64(j.Running), jl...)
		committed.add(float64(j.RunningOut), jl...)
		restarts.add(float64(j.Restarts), jl...)
		flaps.add(float64(j.Flaps), jl...)
		if j.LastExit != nil {
			lastExit.add(float64(*j.LastExit), jl...)
		}
		for _, st := range mtJobStates {
			v := 0.0
			if st == j.State {
				v = 1
			}
			state.add(v, "session", sid, "name", name, "state", st)
		}
		if !slices.Contains(mtJobStates, j.State) {
			state.add(1, "session", sid, "name", name, "state", j.State)
		}
		failing := 0.0
		if j.SpawnError != "" {
			failing = 1
		}
		spawnErr.add(failing, jl...)
		readyProcs.add(float64(j.Ready), jl...)
		if j.NextTry != nil {
			nextTry.add(float64(j.NextTry.UnixNano())/1e9, jl...)
		}
		lifeOf := map[int]ProcessState{}
		for _, ps := range j.ProcessStates {
			lifeOf[ps.Pid] = ps
		}

		for _, p := range procs {
			pl := []string{"session", sid, "name", name, "slot", strconv.Itoa(slot[p.ID])}
			start.add(float64(p.Created.UnixNano())/1e9, pl...)
			if ps, ok := lifeOf[p.ID]; ok {
				procReadyF.add(mtBool(ps.Ready), pl...)
				if ps.Health != "" {
					procHealthy.add(mtBool(ps.Health == healthHealthy), pl...)
				}
			}
			if !mtResourceStats {
				continue
			}
			raw := readStats(p.OSPid)
			if !raw.ok {
				continue
			}
			cpu.add(raw.cpuSeconds, pl...)
			rss.add(float64(raw.rss), pl...)
			vms.add(float64(raw.vms), pl...)
			fds.add(float64(raw.fds), pl...)
			threads.add(float64(raw.threads), pl...)
		}
	}
	if k.CanManageAll() {
		mtWebhookFigures(mw, s)
	}
	mtSelfFigures(mw)
	return mw
}

func mtBool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// mtResourceStats tells whether readStats gives real figures (on other
// systems it only says whether the process is alive).
const mtResourceStats = runtime.GOOS == "linux"
