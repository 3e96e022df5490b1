package gaffer

import (
	"math"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// GET /metrics: the Prometheus text exposition format (version 0.0.4),
// written by hand. Job and process figures are given for the jobs the
// caller's key can read; gafferd's own figures (goroutines, memory, event
// counters) for any key that passes authentication, as they name no job.

// MetricsContentType is the Content-Type of GET /metrics.
const MetricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// mtJobStates lists the states of the gaffer_job_state state set.
var mtJobStates = []string{JobRunning, JobStopped, JobNotStarted, JobFlapping, JobGaveUp}

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

// bytes renders every family that has samples.
func (mw *mtWriter) bytes() []byte {
	var b []byte
	for _, f := range mw.fams {
		if len(f.samples) == 0 {
			continue
		}
		b = append(b, "# HELP "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = mtEscape(b, f.help, false)
		b = append(b, "\n# TYPE "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = append(b, f.typ...)
		b = append(b, '\n')
		b = append(b, f.samples...)
	}
	return b
}

// mtEscape appends s escaped as the format wants: backslash and newline
// always, the double quote in label values. Invalid UTF-8 is replaced.
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

// handleMetrics serves GET /metrics.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	body := s.metrics(caller(r)).bytes()
	h := w.Header()
	h.Set("Content-Type", MetricsContentType)
	h.Set("Cache-Control", "no-cache")
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
	goroutines := mw.family("gaffer_goroutines", "gauge", "Goroutines of gafferd.")
	selfRSS := mw.family("gaffer_resident_memory_bytes", "gauge", "Resident memory of gafferd itself.")
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

	pinfo := mw.family("gaffer_process_info", "gauge", "One live process: its internal pid, OS pid and whether it is committed (always 1).")
	start := mw.family("gaffer_process_start_time_seconds", "gauge", "Start time of the process, in seconds since the Unix epoch.")
	cpu := mw.family("gaffer_process_cpu_seconds_total", "counter", "User and system CPU time of the process.")
	rss := mw.family("gaffer_process_resident_memory_bytes", "gauge", "Resident memory of the process.")
	vms := mw.family("gaffer_process_virtual_memory_bytes", "gauge", "Virtual memory of the process.")
	fds := mw.family("gaffer_process_open_fds", "gauge", "Open file descriptors of the process.")
	threads := mw.family("gaffer_process_threads", "gauge", "Threads of the process.")

	info.add(1, "version", Version, "compat", CompatVersion, "goversion", runtime.Version())
	goroutines.add(float64(runtime.NumGoroutine()))
	if mtResourceStats {
		if raw := readStats(os.Getpid()); raw.ok {
			selfRSS.add(float64(raw.rss))
		}
	}
	published.add(float64(s.m.Events().Published()))
	drops.add(float64(s.m.Events().Drops()))

	jobs := s.m.AllJobInfo(func(string) bool { return false })
	for _, j := range jobs {
		if !k.CanRead(j.Name) {
			continue
		}
		sid, _ := SplitName(j.Name)
		jl := []string{"session", sid, "job", j.Name}
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
			state.add(v, "session", sid, "job", j.Name, "state", st)
		}
		if !slices.Contains(mtJobStates, j.State) {
			state.add(1, "session", sid, "job", j.Name, "state", j.State)
		}
		failing := 0.0
		if j.SpawnError != "" {
			failing = 1
		}
		spawnErr.add(failing, jl...)

		procs, err := s.m.JobProcesses(j.Name)
		if err != nil {
			continue // unloaded meanwhile
		}
		sort.Slice(procs, func(a, b int) bool { return procs[a].ID < procs[b].ID })
		for _, p := range procs {
			pid := strconv.Itoa(p.ID)
			pl := []string{"session", sid, "job", j.Name, "pid", pid}
			pinfo.add(1, "session", sid, "job", j.Name, "pid", pid, "os_pid", strconv.Itoa(p.OSPid), "committed", strconv.FormatBool(p.Once))
			start.add(float64(p.Created.UnixNano())/1e9, pl...)
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
	return mw
}

// mtResourceStats tells whether readStats gives real figures (on other
// systems it only says whether the process is alive).
const mtResourceStats = runtime.GOOS == "linux"
