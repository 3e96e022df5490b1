package gaffer

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// routes registers every route. The pid routes (/<pid>…) cannot be
// ServeMux patterns (they would conflict with /jobs/<sid> and the
// others), so the catch-all "/" dispatches them by hand.
func (s *Server) routes() {
	mx := s.mux
	read, manage := (*Key).CanRead, (*Key).CanManage
	mx.HandleFunc("GET /{$}", s.handleWelcome)
	mx.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("OK"))
	})
	mx.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		// "version" is the interface this server speaks (0.5.2's, as its
		// clients check); "gaffer_version" is this implementation's.
		writeJSON(w, 200, map[string]any{"name": "gaffer", "version": CompatVersion, "gaffer_version": Version})
	})
	mx.HandleFunc("GET /pids", s.handlePids)
	mx.HandleFunc("GET /sessions", s.handleSessions)
	mx.HandleFunc("GET /jobs", s.handleJobs)
	mx.HandleFunc("GET /jobs/{sid}", s.handleSessionJobs)
	mx.HandleFunc("POST /jobs/{sid}", s.audited(s.handleLoad))
	mx.HandleFunc("GET /jobs/{sid}/{name}", s.handleJobInfo)
	mx.HandleFunc("PUT /jobs/{sid}/{name}", s.audited(s.jobRoute(manage, 201, s.handleUpdate)))
	mx.HandleFunc("DELETE /jobs/{sid}/{name}", s.audited(s.jobRoute(manage, 200, s.handleUnload)))
	mx.HandleFunc("GET /jobs/{sid}/{name}/stats", s.jobRoute(read, 200, s.handleJobStats))
	mx.HandleFunc("GET /jobs/{sid}/{name}/history", s.handleJobHistory)
	mx.HandleFunc("GET /jobs/{sid}/{name}/numprocesses", s.jobRoute(read, 200, s.handleGetNumProcesses))
	mx.HandleFunc("POST /jobs/{sid}/{name}/numprocesses", s.audited(s.jobRoute(manage, 200, s.handleScale)))
	mx.HandleFunc("POST /jobs/{sid}/{name}/signal", s.audited(s.jobRoute(manage, 202, s.handleJobSignal)))
	mx.HandleFunc("GET /jobs/{sid}/{name}/state", s.handleGetState)
	mx.HandleFunc("POST /jobs/{sid}/{name}/state", s.audited(s.jobRoute(manage, 202, s.handleSetState)))
	mx.HandleFunc("GET /jobs/{sid}/{name}/pids", s.jobRoute(read, 200, s.handleJobPids))
	mx.HandleFunc("POST /jobs/{sid}/{name}/commit", s.audited(s.jobRoute(manage, 200, s.handleCommit)))
	mx.HandleFunc("POST /jobs/{sid}/{name}/restart", s.audited(s.jobRoute(manage, 200, s.handleRestart)))
	mx.HandleFunc("POST /reload", s.audited(s.handleReload))
	if s.auth != nil {
		s.auth.RegisterRoutes(mx)
	} else {
		RegisterAuthOffRoutes(mx)
	}
	s.streamRoutes()
	s.legacyRoutes()
	s.metricsRoutes()
	s.openapiRoutes()
	mx.HandleFunc("/channel/websocket", s.serveControlChannel)
	s.sockjsRoutes()
	s.uiRoutes()
	mx.HandleFunc("/", s.handleFallback)
}

func (s *Server) handleWelcome(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{"welcome": "gaffer", "version": CompatVersion, "gaffer_version": Version}
	s.m.describeContainment(out) // "containment": cgroup2:<dir> or process-groups
	writeJSON(w, 200, out)
}

// handleFallback serves /<pid>, /<pid>/signal, /<pid>/stats and
// /<pid>/channel[/<stream>], and answers 404 in JSON for anything else.
func (s *Server) handleFallback(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segs) == 0 || !isDigits(segs[0]) {
		if allowed := s.allowedMethods(r); allowed != "" {
			methodNotAllowed(w, allowed)
			return
		}
		writeError(w, errNotFound("no route for %s %s", r.Method, r.URL.Path))
		return
	}
	pid, err := parsePid(segs[0])
	if err != nil {
		writeError(w, err)
		return
	}
	switch {
	case len(segs) == 1:
		switch r.Method {
		case http.MethodHead, http.MethodGet:
			s.handleProcessInfo(w, r, pid)
		case http.MethodDelete:
			s.audited(func(w http.ResponseWriter, r *http.Request) { s.handleStopProcess(w, r, pid) })(w, r)
		default:
			methodNotAllowed(w, "GET, HEAD, DELETE")
		}
	case len(segs) == 2 && segs[1] == "signal":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, "POST")
			return
		}
		s.audited(func(w http.ResponseWriter, r *http.Request) { s.handleProcessSignal(w, r, pid) })(w, r)
	case len(segs) == 2 && segs[1] == "stats":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		s.handleProcessStats(w, r, pid)
	case (len(segs) == 2 || len(segs) == 3) && segs[1] == "channel":
		stream := ""
		if len(segs) == 3 {
			stream = segs[2]
		}
		s.serveIOChannel(w, r, pid, stream)
	default:
		writeError(w, errNotFound("no route for %s %s", r.Method, r.URL.Path))
	}
}

// routeMethods are the methods the routes use, in the order an Allow
// header lists them.
var routeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete}

// allowedMethods lists the methods with which r's path has a route other
// than the catch-all: "" when the path is unknown. (The catch-all "/"
// matches every method, so the ServeMux never answers 405 by itself.)
func (s *Server) allowedMethods(r *http.Request) string {
	var out []string
	for _, m := range routeMethods {
		if m == r.Method {
			continue
		}
		probe := r.WithContext(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/" {
			out = append(out, m)
		}
	}
	return strings.Join(out, ", ")
}

func methodNotAllowed(w http.ResponseWriter, allowed string) {
	w.Header().Set("Allow", allowed)
	writeError(w, Errorf(CodeMethodNotAllow, 405, "method not allowed; use %s", allowed))
}

func (s *Server) handlePids(w http.ResponseWriter, r *http.Request) {
	if !allow(w, caller(r).CanManageAll()) {
		return
	}
	pids, _ := s.m.Pids("")
	writeJSON(w, 200, map[string]any{"pids": pids})
}

func (s *Server) handleSessions(w http.ResponseWriter, r *http.Request) {
	if !allow(w, caller(r).CanManageAll()) {
		return
	}
	writeJSON(w, 200, map[string]any{"sessions": s.m.Sessions()})
}

// handleJobs lists every job (manage-all). With ?details=1 it returns
// the info of every job the key can read instead (the console and the CLI
// use it).
func (s *Server) handleJobs(w http.ResponseWriter, r *http.Request) {
	k := caller(r)
	if q := r.URL.Query().Get("details"); q == "1" || q == "true" {
		data, err := s.m.allJobInfoJSON(k.CanManage, k.CanRead)
		if err != nil {
			writeError(w, err)
			return
		}
		h := w.Header()
		h["Content-Type"] = jsonContentType
		h["Content-Length"] = []string{strconv.Itoa(len(data))}
		w.Write(data)
		return
	}
	if !allow(w, k.CanManageAll()) {
		return
	}
	jobs, _ := s.m.Jobs("")
	writeJSON(w, 200, map[string]any{"jobs": jobs})
}

func (s *Server) handleSessionJobs(w http.ResponseWriter, r *http.Request) {
	sid := r.PathValue("sid")
	if !allow(w, caller(r).CanRead(sid)) {
		return
	}
	jobs, err := s.m.Jobs(sid)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, map[string]any{"sessionid": sid, "jobs": jobs})
}

// jobName returns session.name from the path.
func jobName(r *http.Request) string {
	return r.PathValue("sid") + "." + r.PathValue("name")
}

// jobRoute serves a route of /jobs/<sid>/<name>: the key must allow need
// on the job; op's answer is written with status, or its error.
func (s *Server) jobRoute(need func(*Key, string) bool, status int, op func(r *http.Request, full string) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		full := jobName(r)
		if !allow(w, need(caller(r), full)) {
			return
		}
		out, err := op(r, full)
		reply(w, status, out, err)
	}
}

// jobOK is the answer of a job route that returns nothing else.
var jobOK = map[string]any{"ok": true}

func (s *Server) handleLoad(w http.ResponseWriter, r *http.Request) {
	sid := r.PathValue("sid")
	if err := ValidateSession(sid); err != nil {
		writeError(w, err)
		return
	}
	body, err := decodeObject(r, false)
	if err != nil {
		writeError(w, err)
		return
	}
	cfg, err := JobConfigFromMap(body)
	if err != nil {
		writeError(w, err)
		return
	}
	reply(w, 200, map[string]any{"ok": true}, s.loadJob(caller(r), sid, cfg))
}

// loadJob loads cfg into session sid, as POST /jobs/<sid> and the 0.4
// POST /processes do, when the key may manage the job.
func (s *Server) loadJob(k *Key, sid string, cfg JobConfig) error {
	if !k.CanManage(sid + "." + cfg.Name) {
		return errDenied()
	}
	return s.m.Load(sid, cfg, nil, cfg.Start)
}

func (s *Server) handleJobInfo(w http.ResponseWriter, r *http.Request) {
	full := jobName(r)
	k := caller(r)
	if !allow(w, k.CanRead(full)) {
		return
	}
	data, err := s.m.JobInfoJSON(full, k.CanManage(full))
	if err != nil {
		writeError(w, err)
		return
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(data))}
	w.Write(data)
}

var jsonContentType = []string{"application/json; charset=utf-8"}

func (s *Server) handleUpdate(r *http.Request, full string) (any, error) {
	body, err := decodeObject(r, false)
	if err != nil {
		return nil, err
	}
	if n, ok := body["name"]; ok && n != r.PathValue("name") {
		return nil, errBadRequest("name: %v conflicts with the job name in the path (%s)", n, r.PathValue("name"))
	}
	body["name"] = r.PathValue("name")
	cfg, err := JobConfigFromMap(body)
	if err != nil {
		return nil, err
	}
	return jobOK, s.m.Update(r.PathValue("sid"), cfg, nil, cfg.Start)
}

func (s *Server) handleUnload(_ *http.Request, full string) (any, error) {
	return jobOK, s.m.Unload(full)
}

func (s *Server) handleJobStats(_ *http.Request, full string) (any, error) {
	return s.m.JobStats(full)
}

func (s *Server) handleGetNumProcesses(_ *http.Request, full string) (any, error) {
	info, err := s.m.JobInfo(full, false)
	if err != nil {
		return nil, err
	}
	return map[string]any{"numprocesses": info.MaxProcesses}, nil
}

func (s *Server) handleScale(r *http.Request, full string) (any, error) {
	body, err := decodeObject(r, false)
	if err != nil {
		return nil, err
	}
	v, ok := body["scale"]
	if !ok {
		return nil, errBadRequest("scale: missing (send {\"scale\": N | \"+N\" | \"-N\" | \"=N\"})")
	}
	op, err := ParseScale(v)
	if err != nil {
		return nil, err
	}
	n, err := s.m.Scale(full, op)
	if err != nil {
		return nil, err
	}
	return map[string]any{"numprocesses": n}, nil
}

func (s *Server) handleJobSignal(r *http.Request, full string) (any, error) {
	sig, err := bodySignal(r)
	if err != nil {
		return nil, err
	}
	return jobOK, s.m.KillAll(full, sig)
}

func (s *Server) handleGetState(w http.ResponseWriter, r *http.Request) {
	full := jobName(r)
	if !allow(w, caller(r).CanRead(full)) {
		return
	}
	info, err := s.m.JobInfo(full, false)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if info.Active {
		w.Write([]byte("1"))
	} else {
		w.Write([]byte("0"))
	}
}

func (s *Server) handleSetState(r *http.Request, full string) (any, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	switch string(bytes.Trim(bytes.TrimSpace(body), `"`)) {
	case "1":
		err = s.m.StartJob(full)
	case "0":
		err = s.m.StopJob(full)
	case "2":
		err = s.m.ReloadJob(full)
	default:
		err = errBadRequest("state: the body must be 1 (start), 0 (stop) or 2 (reload), got %q", body)
	}
	return jobOK, err
}

// handleRestart restarts a job's processes: at once, or with ?rolling=1
// one at a time (rolling.go); it answers once done.
func (s *Server) handleRestart(r *http.Request, full string) (any, error) {
	rolling := false
	if v := r.URL.Query().Get("rolling"); v != "" {
		b, ok := ParseBool(v)
		if !ok {
			return nil, errBadRequest("rolling: expected 1 or 0, got %q", v)
		}
		rolling = b
	}
	if !rolling {
		return jobOK, s.m.ReloadJob(full)
	}
	n, err := s.m.RollingRestart(full)
	return map[string]any{"ok": true, "replaced": n}, err
}

func (s *Server) handleJobPids(_ *http.Request, full string) (any, error) {
	// The kept-alive processes, then the committed ones, as job info
	// lists them.
	procs, err := s.m.JobProcesses(full)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(procs))
	for _, p := range procs {
		pids = append(pids, p.ID)
	}
	return map[string]any{"pids": pids}, nil
}

func (s *Server) handleCommit(r *http.Request, full string) (any, error) {
	body, err := decodeObject(r, true)
	if err != nil {
		return nil, err
	}
	var graceful time.Duration
	if v, ok := body["graceful_timeout"]; ok && v != nil {
		f, err := mapFloat("graceful_timeout", v)
		if err != nil || f < 0 {
			return nil, errBadRequest("graceful_timeout: expected a number of seconds >= 0")
		}
		graceful = secondsToDuration(f)
	}
	env, err := mapEnv("env", body["env"])
	if err != nil {
		return nil, err
	}
	pid, err := s.m.Commit(full, graceful, env)
	if err != nil {
		return nil, err
	}
	return map[string]any{"pid": pid}, nil
}

func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	if !allow(w, caller(r).CanManageAll()) {
		return
	}
	if s.reload == nil {
		writeError(w, Errorf(CodeUnavailable, 503, "this server has no configuration file to reload"))
		return
	}
	q := r.URL.Query().Get("dry_run")
	diff, err := s.reload(q == "1" || q == "true")
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, diff)
}

// processFor finds a live process and checks the key against its job.
func (s *Server) processFor(w http.ResponseWriter, r *http.Request, pid int, check func(*Key, string) bool) (*Process, bool) {
	p, ok := s.m.Process(pid)
	if !ok {
		if r.Method == http.MethodHead {
			w.WriteHeader(404)
		} else {
			writeError(w, errNotFound("process %d not found", pid))
		}
		return nil, false
	}
	if !check(caller(r), p.Job) {
		allow(w, false)
		return nil, false
	}
	return p, true
}

func (s *Server) handleProcessInfo(w http.ResponseWriter, r *http.Request, pid int) {
	p, ok := s.processFor(w, r, pid, (*Key).CanRead)
	if !ok {
		return
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(200)
		return
	}
	info, err := s.m.ProcessInfo(pid, caller(r).CanManage(p.Job))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, info)
}

func (s *Server) handleStopProcess(w http.ResponseWriter, r *http.Request, pid int) {
	if _, ok := s.processFor(w, r, pid, (*Key).CanManage); !ok {
		return
	}
	reply(w, 202, map[string]any{"ok": true}, s.m.StopProcess(pid))
}

func (s *Server) handleProcessSignal(w http.ResponseWriter, r *http.Request, pid int) {
	if _, ok := s.processFor(w, r, pid, (*Key).CanManage); !ok {
		return
	}
	sig, err := bodySignal(r)
	if err != nil {
		writeError(w, err)
		return
	}
	reply(w, 202, map[string]any{"ok": true}, s.m.Kill(pid, sig))
}

func (s *Server) handleProcessStats(w http.ResponseWriter, r *http.Request, pid int) {
	p, ok := s.processFor(w, r, pid, (*Key).CanRead)
	if !ok {
		return
	}
	writeJSON(w, 200, map[string]any{"stats": p.Stats()})
}

// reply writes err, or v with status when err is nil.
func reply(w http.ResponseWriter, status int, v any, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, status, v)
}

// bodySignal reads {"signal": N | "NAME"} from the request body.
func bodySignal(r *http.Request) (syscall.Signal, error) {
	body, err := decodeObject(r, false)
	if err != nil {
		return 0, err
	}
	return ParseSignal(body["signal"])
}
