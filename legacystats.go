package gaffer

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// The 0.4 /stats routes (gafferctl-0.4.md §2.7, §2.8): job and process
// stats objects in the 0.4 form, and the longpoll, continuous and
// eventsource feeds, which stop when the client leaves.

// lgStatsInterval is the default time between two samples of a /stats
// feed (0.4 sampled every 0.1 s; ?interval= changes it).
const lgStatsInterval = time.Second

// lgProcStats is a process's stats object in the 0.4 form: pid is the OS
// pid and id the internal one (our os_pid is kept). Its children (OS
// processes, with no internal id) get their OS pid as pid too.
func lgProcStats(st ProcStats) map[string]any {
	buf, _ := json.Marshal(st)
	m := map[string]any{}
	json.Unmarshal(buf, &m)
	m["id"], m["pid"], m["os_pid"] = st.Pid, st.OSPid, st.OSPid
	lgChildPids(m)
	return m
}

// lgChildPids sets pid to os_pid in every child of a stats object.
func lgChildPids(m map[string]any) {
	kids, _ := m["children"].([]any)
	for _, k := range kids {
		if c, ok := k.(map[string]any); ok {
			c["pid"] = c["os_pid"]
			lgChildPids(c)
		}
	}
}

// lgJobStats is a job's stats object in the 0.4 form.
func (s *Server) lgJobStats(full string) (map[string]any, error) {
	js, err := s.m.JobStats(full)
	if err != nil {
		return nil, err
	}
	stats := make([]map[string]any, len(js.Stats))
	for i, st := range js.Stats {
		stats[i] = lgProcStats(st)
	}
	w := js.wire()
	return map[string]any{"name": lgName(full), "stats": stats, "mem": w.Mem, "max_mem": w.MaxMem,
		"min_mem": w.MinMem, "cpu": w.CPU, "max_cpu": w.MaxCPU, "min_cpu": w.MinCPU}, nil
}

// lgStatsAll serves GET /stats: the stats of every job the key can read.
func (s *Server) lgStatsAll(r *http.Request) (any, error) {
	k := caller(r)
	jobs, _ := s.m.Jobs("")
	out := []map[string]any{}
	for _, full := range jobs {
		if !k.CanRead(full) {
			continue
		}
		if st, err := s.lgJobStats(full); err == nil {
			out = append(out, st)
		}
	}
	return out, nil
}

// lgFeedMode is the ?feed= of a /stats route: "" for one answer (normal).
func lgFeedMode(r *http.Request) string {
	if f := r.URL.Query().Get("feed"); f != "normal" {
		return f
	}
	return ""
}

// lgStatsJob serves GET /stats/<name>[?feed=normal|longpoll|continuous|eventsource].
func (s *Server) lgStatsJob(w http.ResponseWriter, r *http.Request) {
	t, ok := s.lgResolve(w, r, (*Key).CanRead, "")
	if !ok {
		return
	}
	if lgFeedMode(r) == "" {
		st, err := s.lgJobStats(t.full)
		lgReply(w, st, err)
		return
	}
	if err := s.lgMustExist(t); err != nil {
		lgReply(w, nil, err)
		return
	}
	s.lgStatsFeed(w, r, func() ([]*Process, bool) {
		procs, err := s.m.JobProcesses(t.full)
		return procs, err == nil
	})
}

// lgStatsProcess serves GET /stats/<name>/<pid>[?feed=…]; the process must
// belong to the named job.
func (s *Server) lgStatsProcess(w http.ResponseWriter, r *http.Request) {
	p, err := s.lgStatsTarget(r)
	if err == nil && !caller(r).CanRead(p.Job) {
		err = errDenied()
	}
	if err != nil {
		lgReply(w, nil, err)
		return
	}
	if lgFeedMode(r) == "" {
		lgReply(w, lgProcStats(p.Stats()), nil)
		return
	}
	s.lgStatsFeed(w, r, func() ([]*Process, bool) {
		select {
		case <-p.Exited():
			return nil, false
		default:
			return []*Process{p}, true
		}
	})
}

// lgStatsTarget is the live process of /stats/<name>/<pid>, which must
// belong to the job <name>.
func (s *Server) lgStatsTarget(r *http.Request) (*Process, error) {
	pid, err := parsePid(r.PathValue("pid"))
	if err != nil {
		return nil, err
	}
	p, ok := s.m.Process(pid)
	if !ok {
		return nil, errNotFound("process %d not found", pid)
	}
	if full, _, err := s.lgLocate(r.PathValue("name")); err != nil || full != p.Job {
		return nil, errNotFound("process %d is not a process of %q (it belongs to %s)", pid, r.PathValue("name"), lgName(p.Job))
	}
	return p, nil
}

// lgStatsFeed streams stat samples of the processes procs returns, every
// ?interval= seconds (default 1): longpoll sends one sample (waiting for a
// process if there is none) and ends; continuous sends JSON lines and
// eventsource "stat" events until the target goes away or the client
// leaves.
func (s *Server) lgStatsFeed(w http.ResponseWriter, r *http.Request, procs func() ([]*Process, bool)) {
	mode := lgFeedMode(r)
	if mode != "longpoll" && mode != "continuous" && mode != "eventsource" {
		writeError(w, Errorf(CodeBadValue, 400, "feed: expected normal, longpoll, continuous or eventsource, got %q", mode))
		return
	}
	interval := lgStatsInterval
	if v := r.URL.Query().Get("interval"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0.1 || f > 3600 {
			writeError(w, Errorf(CodeBadValue, 400, "interval: expected a number of seconds from 0.1 to 3600, got %q", v))
			return
		}
		interval = secondsToDuration(f)
	}
	hb, err := heartbeatInterval(r)
	if err != nil {
		writeError(w, err)
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var hbc <-chan time.Time
	if hb > 0 {
		t := time.NewTicker(hb)
		defer t.Stop()
		hbc = t.C
	}
	if mode == "longpoll" {
		for {
			list, alive := procs()
			if !alive {
				writeError(w, errNotFound("the job or process went away"))
				return
			}
			if len(list) > 0 {
				js, _ := json.Marshal(lgProcStats(list[0].Stats()))
				w.Header().Set("Content-Type", "application/json")
				w.Write(append(js, '\r', '\n'))
				return
			}
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
		}
	}
	sse := mode == "eventsource"
	ct := "application/x-ndjson"
	if sse {
		ct = "text/event-stream; charset=utf-8"
	}
	f := newFeed(w, ct)
	var buf []byte
	for {
		list, alive := procs()
		buf = buf[:0]
		for _, p := range list {
			js, _ := json.Marshal(lgProcStats(p.Stats()))
			if sse {
				buf = appendSSE(buf, "stat", 0, js)
			} else {
				buf = append(append(buf, js...), '\n')
			}
		}
		if len(buf) > 0 && (f.write(buf) != nil || f.flush() != nil) {
			return
		}
		if !alive {
			if sse {
				f.write([]byte("event: eof\ndata: {}\n\n"))
				f.flush()
			}
			return
		}
	wait:
		for {
			select {
			case <-tick.C:
				break wait
			case <-hbc:
				msg := []byte("\n")
				if sse {
					msg = []byte(": heartbeat\n\n")
				}
				if f.write(msg) != nil || f.flush() != nil {
					return
				}
			case <-r.Context().Done():
				return
			}
		}
	}
}
