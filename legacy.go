package gaffer

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The 0.4 HTTP API (gafferctl-0.4.md §2) that gafferctl and the seed's
// pages use: /processes, /status, /groups and /stats, served on top of
// sessions and jobs (§4.1):
//
//   - a 0.4 name "web" is the job default.web, "app:web" is app.web, and
//     our own "app.web" is accepted too;
//   - a name segment made only of digits is an internal pid;
//   - names are given back in the 0.4 form ("web", "app:web");
//   - every success answers 200, as 0.4 did; errors use the one error
//     shape with the 0.4 codes (not_found, conflict, invalid_json,
//     invalid_process_info, bad_value, resource_not_found) in "error".
//
// Where 0.4 had a bug the Recommended behaviour of the reference is built:
// start after stop spawns, PUT updates, _sub clamps at 0, unknown actions
// are 404, signal names are accepted, a group delete removes every job and
// the /stats feeds stop when the client leaves.

// The 0.4 error codes that differ from ours.
const (
	lgCodeConflict        = "conflict"
	lgCodeInvalidJSON     = "invalid_json"
	lgCodeInvalidInfo     = "invalid_process_info"
	lgCodeResourceMissing = "resource_not_found"
)

// legacyRoutes registers the 0.4 routes. Each path also has a method-less
// pattern so that another method gets a JSON 405, not the catch-all 404.
func (s *Server) legacyRoutes() {
	mx := s.mux
	mx.HandleFunc("GET /processes", s.lgListProcesses)
	mx.HandleFunc("POST /processes", s.audited(s.lgCreate))
	mx.HandleFunc("/processes", lgMethods("GET, HEAD, POST"))
	mx.HandleFunc("GET /processes/{name}", s.lgGetProcess)
	mx.HandleFunc("PUT /processes/{name}", s.audited(s.lgUpdate))
	mx.HandleFunc("DELETE /processes/{name}", s.audited(s.lgDelete))
	mx.HandleFunc("/processes/{name}", lgMethods("GET, HEAD, PUT, DELETE"))
	mx.HandleFunc("GET /processes/{name}/{action}", s.lgGetAction)
	mx.HandleFunc("POST /processes/{name}/{action}", s.audited(s.lgAction))
	mx.HandleFunc("/processes/{name}/{action}", lgMethods("GET, HEAD, POST"))
	mx.HandleFunc("POST /processes/{name}/{action}/{arg}", s.audited(s.lgAction))
	mx.HandleFunc("/processes/{name}/{action}/{arg}", lgMethods("POST"))
	mx.HandleFunc("GET /status/{name}", s.lgStatus)
	mx.HandleFunc("/status/{name}", lgMethods("GET, HEAD"))
	mx.HandleFunc("GET /groups", s.lgGroups)
	mx.HandleFunc("/groups", lgMethods("GET, HEAD"))
	mx.HandleFunc("GET /groups/{g}", s.lgGroup)
	mx.HandleFunc("DELETE /groups/{g}", s.audited(s.lgDeleteGroup))
	mx.HandleFunc("/groups/{g}", lgMethods("GET, HEAD, DELETE"))
	mx.HandleFunc("POST /groups/{g}/{action}", s.audited(s.lgGroupAction))
	mx.HandleFunc("/groups/{g}/{action}", lgMethods("POST"))
	mx.HandleFunc("GET /stats", s.lgStatsAll)
	mx.HandleFunc("/stats", lgMethods("GET, HEAD"))
	mx.HandleFunc("GET /stats/{name}", s.lgStatsJob)
	mx.HandleFunc("/stats/{name}", lgMethods("GET, HEAD"))
	mx.HandleFunc("GET /stats/{name}/{pid}", s.lgStatsProcess)
	mx.HandleFunc("/stats/{name}/{pid}", lgMethods("GET, HEAD"))
}

// lgMethods answers 405 (JSON) for a method the route does not serve.
func lgMethods(allowed string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { methodNotAllowed(w, allowed) }
}

var lgOK = map[string]any{"ok": true}

// lgRecode gives err the 0.4 code of its kind: codes maps our codes to
// theirs; the others are kept.
func lgRecode(err error, codes map[string]string) error {
	e := AsError(err)
	if c, ok := codes[e.Code]; ok {
		return &Error{Code: c, Reason: e.Reason, Errno: e.Errno}
	}
	return e
}

// lgManagerCodes maps manager error codes to the 0.4 ones.
var lgManagerCodes = map[string]string{CodeConflict: lgCodeConflict, CodeBadSignal: CodeBadValue, CodeBadOperation: CodeBadValue}

// lgSplit maps a 0.4 name onto a session and a job: "g:n" is g.n,
// "s.n" is s.n and a bare "n" is default.n.
func lgSplit(name string) (sid, job string, err error) {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		sid, job = name[:i], name[i+1:]
	} else if strings.Contains(name, ".") {
		sid, job = SplitName(name)
	} else {
		sid, job = "default", name
	}
	if err := ValidateSession(sid); err != nil {
		return "", "", Errorf(CodeBadValue, 400, "name %q: %s", name, AsError(err).Reason)
	}
	if err := ValidateName(job, "name"); err != nil {
		return "", "", Errorf(CodeBadValue, 400, "name %q: %s", name, AsError(err).Reason)
	}
	return sid, job, nil
}

// lgName is the 0.4 form of a full job name: "web" for default.web,
// "app:web" for app.web, and the full name when the session holds a ':'
// (lgLocate reads all three back).
func lgName(full string) string {
	sid, job := SplitName(full)
	if sid == "default" && !strings.ContainsAny(job, ":.") && !isDigits(job) {
		return job
	}
	if !strings.Contains(sid, ":") {
		return sid + ":" + job
	}
	return full
}

// lgLocate resolves a name segment. An all-digit segment is a live
// process: its pid and job are returned (404 when it is gone). Otherwise
// the full job name is returned, whether or not the job exists (the
// manager answers 404 for a missing one). A name with both ':' and '.' is
// tried as group:name first, then as session.job.
func (s *Server) lgLocate(seg string) (full string, pid int, err error) {
	if isDigits(seg) {
		pid, err := parsePid(seg)
		if err != nil {
			return "", 0, err
		}
		p, ok := s.m.Process(pid)
		if !ok {
			return "", 0, errNotFound("process %d not found", pid)
		}
		return p.Job, pid, nil
	}
	sid, job, err := lgSplit(seg)
	if err != nil {
		return "", 0, err
	}
	full = sid + "." + job
	if strings.Contains(seg, ":") && strings.Contains(seg, ".") && !s.lgExists(full) && s.lgExists(seg) {
		return seg, 0, nil // session "a:b", job "c", written a:b.c
	}
	return full, 0, nil
}

func (s *Server) lgExists(full string) bool {
	_, err := s.m.Pids(full)
	return err == nil
}

// lgFail writes err; HEAD answers get the status only.
func lgFail(w http.ResponseWriter, r *http.Request, err error) {
	if r.Method == http.MethodHead {
		w.WriteHeader(AsError(err).Errno)
		return
	}
	writeError(w, err)
}

// lgListProcesses serves GET /processes: the 0.4 names of every job, or
// with ?running=1 the pids of every live process.
func (s *Server) lgListProcesses(w http.ResponseWriter, r *http.Request) {
	if !allow(w, caller(r).CanManageAll()) {
		return
	}
	if v := r.URL.Query().Get("running"); v != "" {
		running, ok := ParseBool(v)
		if !ok {
			writeError(w, Errorf(CodeBadValue, 400, "running: expected 1, true, 0 or false, got %q", v))
			return
		}
		if running {
			pids, _ := s.m.Pids("")
			writeJSON(w, 200, pids)
			return
		}
	}
	jobs, _ := s.m.Jobs("")
	writeJSON(w, 200, lgNames(jobs))
}

func lgNames(jobs []string) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = lgName(j)
	}
	return out
}

// lgConfig builds a job config from a 0.4 template object. job is the
// job name when it comes from the path (PUT); otherwise the body's name
// gives the session and the job. 0.4's defaults differ from ours where
// noted in §4.4: os_env is true, and with args a cmd naming an existing
// file is one word (lgIsFile).
func lgConfig(body map[string]any, sid, job string) (string, JobConfig, error) {
	bad := func(format string, args ...any) (string, JobConfig, error) {
		return "", JobConfig{}, Errorf(lgCodeInvalidInfo, 400, format, args...)
	}
	if job == "" {
		name, ok := body["name"].(string)
		if !ok || name == "" {
			return bad("name: missing; a string such as \"web\" or \"group:web\" is expected")
		}
		if isDigits(name) {
			return bad("name: %q is all digits and would be read as a pid; add a group (\"group:%s\")", name, name)
		}
		var err error
		if sid, job, err = lgSplit(name); err != nil {
			return bad("%s", AsError(err).Reason)
		}
	}
	if _, ok := body["cmd"]; !ok {
		return bad("cmd: missing")
	}
	m := make(map[string]any, len(body)+1)
	for k, v := range body {
		m[k] = v
	}
	m["name"] = job
	delete(m, "group")
	if _, ok := m["os_env"]; !ok {
		m["os_env"] = true
	}
	if cmd, ok := m["cmd"].(string); ok && m["shell"] != true && lgHasArgs(m["args"]) {
		cwd, _ := m["cwd"].(string)
		if lgIsFile(cmd, cwd) {
			m["cmd"] = shellQuote(cmd)
		}
	}
	cfg, err := JobConfigFromMap(m)
	if err != nil {
		return bad("%s", AsError(err).Reason)
	}
	return sid, cfg, nil
}

// lgHasArgs reports whether a 0.4 args value holds arguments.
func lgHasArgs(v any) bool {
	switch a := v.(type) {
	case string:
		return strings.TrimSpace(a) != ""
	case []any:
		return len(a) > 0
	}
	return false
}

// lgIsFile reports whether cmd, taken whole, names an existing file. With
// args, 0.4 ran cmd as one program path without splitting it: that is
// kept when the path exists ("/opt/my app/run"), and a cmd that is not a
// file ("python app.py") is split as our API does, which 0.4 could not run.
func lgIsFile(cmd, cwd string) bool {
	if !strings.ContainsRune(cmd, ' ') || !strings.ContainsRune(cmd, '/') {
		return false
	}
	if !filepath.IsAbs(cmd) && cwd != "" {
		cmd = filepath.Join(cwd, cmd)
	}
	st, err := os.Stat(cmd)
	return err == nil && st.Mode().IsRegular()
}

// lgCreate serves POST /processes.
func (s *Server) lgCreate(w http.ResponseWriter, r *http.Request) {
	body, err := decodeObject(r, false)
	if err != nil {
		writeError(w, lgRecode(err, map[string]string{CodeBadRequest: lgCodeInvalidJSON}))
		return
	}
	sid, cfg, err := lgConfig(body, "", "")
	if err != nil {
		writeError(w, err)
		return
	}
	if !allow(w, caller(r).CanManage(sid+"."+cfg.Name)) {
		return
	}
	if err := s.m.Load(sid, cfg, nil, cfg.Start); err != nil {
		writeError(w, lgRecode(err, lgManagerCodes))
		return
	}
	writeJSON(w, 200, lgOK)
}

// lgGetProcess serves GET and HEAD /processes/<name or pid>: the flat
// config of the job (the pid's job for a pid), with its 0.4 name.
func (s *Server) lgGetProcess(w http.ResponseWriter, r *http.Request) {
	full, _, err := s.lgLocate(r.PathValue("name"))
	if err != nil {
		lgFail(w, r, err)
		return
	}
	k := caller(r)
	if !k.CanRead(full) {
		lgFail(w, r, Errorf(CodeForbidden, 403, "the API key does not allow this"))
		return
	}
	cfg, err := s.m.JobConfig(full)
	if err != nil {
		lgFail(w, r, err)
		return
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(200)
		return
	}
	out := cfg.Map(k.CanManage(full))
	out["name"] = lgName(full)
	if sid, _ := SplitName(full); sid != "default" {
		out["group"] = sid
	}
	writeJSON(w, 200, out)
}

// lgUpdate serves PUT /processes/<name>: the body replaces the config (as
// in POST; the name comes from the path) and the processes restart with
// it. "start": true also starts a stopped job.
func (s *Server) lgUpdate(w http.ResponseWriter, r *http.Request) {
	full, pid, err := s.lgLocate(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	if pid > 0 {
		methodNotAllowed(w, "GET, HEAD, DELETE")
		return
	}
	if !allow(w, caller(r).CanManage(full)) {
		return
	}
	if !s.lgExists(full) {
		writeError(w, errNotFound("job %q not found", r.PathValue("name")))
		return
	}
	body, err := decodeObject(r, false)
	if err != nil {
		writeError(w, lgRecode(err, map[string]string{CodeBadRequest: lgCodeInvalidJSON}))
		return
	}
	sid, job := SplitName(full)
	_, cfg, err := lgConfig(body, sid, job)
	if err != nil {
		writeError(w, err)
		return
	}
	_, given := body["start"]
	if err := s.m.Update(sid, cfg, nil, given && cfg.Start); err != nil {
		writeError(w, lgRecode(err, lgManagerCodes))
		return
	}
	writeJSON(w, 200, lgOK)
}

// lgDelete serves DELETE /processes/<name> (unload the job) and
// DELETE /processes/<pid> (stop that process; a kept-alive one is
// replaced).
func (s *Server) lgDelete(w http.ResponseWriter, r *http.Request) {
	full, pid, err := s.lgLocate(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	if !allow(w, caller(r).CanManage(full)) {
		return
	}
	if pid > 0 {
		err = s.m.StopProcess(pid)
	} else {
		err = s.m.Unload(full)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, lgOK)
}

// lgGetAction serves GET /processes/<name>/_pids.
func (s *Server) lgGetAction(w http.ResponseWriter, r *http.Request) {
	full, pid, err := s.lgLocate(r.PathValue("name"))
	if err != nil {
		lgFail(w, r, err)
		return
	}
	if pid > 0 {
		methodNotAllowed(w, "POST")
		return
	}
	if !allow(w, caller(r).CanRead(full)) {
		return
	}
	if a := r.PathValue("action"); a != "_pids" {
		lgFail(w, r, Errorf(lgCodeResourceMissing, 404, "no action %q on GET; use _pids", a))
		return
	}
	pids, err := s.m.Pids(full)
	if err != nil {
		lgFail(w, r, err)
		return
	}
	writeJSON(w, 200, map[string]any{"ok": true, "pids": pids})
}

// lgAction serves POST /processes/<name or pid>/<_action>[/<arg>].
func (s *Server) lgAction(w http.ResponseWriter, r *http.Request) {
	full, pid, err := s.lgLocate(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	if !allow(w, caller(r).CanManage(full)) {
		return
	}
	action, arg := r.PathValue("action"), r.PathValue("arg")
	hasArg := arg != "" // {arg} never matches an empty segment
	unknown := func() {
		what, with := "job", ""
		if pid > 0 {
			what = "process"
		}
		if hasArg {
			with = " with an argument"
		}
		writeError(w, Errorf(lgCodeResourceMissing, 404, "no %s action %q%s", what, action, with))
	}
	var out any = lgOK
	switch {
	case pid > 0 && action == "_stop" && !hasArg:
		err = s.m.StopProcess(pid)
	case pid > 0 && action == "_signal":
		sig, serr := lgSignal(action, arg)
		if serr != nil {
			writeError(w, serr)
			return
		}
		err = s.m.Kill(pid, sig)
	case pid > 0:
		unknown()
		return
	case action == "_start" && !hasArg:
		err = s.m.StartJob(full)
	case action == "_stop" && !hasArg:
		err = s.m.StopJob(full)
	case action == "_restart" && !hasArg:
		err = s.lgRestart(full)
	case action == "_add" || action == "_sub":
		n := 1
		if hasArg {
			if !isDigits(arg) || len(arg) > 6 {
				writeError(w, Errorf(CodeBadValue, 400, "%s/%s: the count must be a whole number from 0 to 999999", action, arg))
				return
			}
			n, _ = strconv.Atoi(arg)
		}
		if action == "_sub" {
			n = -n
		}
		var t int
		if t, err = s.m.Scale(full, ScaleOp{Value: n}); err == nil {
			out = map[string]any{"ok": true, "numprocesses": t}
		}
	case action == "_signal":
		sig, serr := lgSignal(action, arg)
		if serr != nil {
			writeError(w, serr)
			return
		}
		err = s.m.KillAll(full, sig)
	default:
		unknown()
		return
	}
	if err != nil {
		writeError(w, lgRecode(err, lgManagerCodes))
		return
	}
	writeJSON(w, 200, out)
}

// lgSignal parses the <sig> of _signal/<sig>: a number or a name
// ("HUP", "sighup", "15").
func lgSignal(action, arg string) (syscall.Signal, error) {
	if arg == "" {
		return 0, Errorf(CodeBadValue, 400, "%s: the signal is missing; use %s/<number or name>, e.g. %s/HUP", action, action, action)
	}
	sig, err := ParseSignal(arg)
	if err != nil {
		return 0, lgRecode(err, lgManagerCodes)
	}
	return sig, nil
}

// lgRestart restarts a job's processes; a stopped job is started (the
// Recommended fix of §2.4).
func (s *Server) lgRestart(full string) error {
	info, err := s.m.JobInfo(full, false)
	if err != nil {
		return err
	}
	if info.State == JobStopped || info.State == JobNotStarted {
		return s.m.StartJob(full)
	}
	return s.m.ReloadJob(full)
}

// lgStatus serves GET /status/<name>.
func (s *Server) lgStatus(w http.ResponseWriter, r *http.Request) {
	full, _, err := s.lgLocate(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	if !allow(w, caller(r).CanRead(full)) {
		return
	}
	info, err := s.m.JobInfo(full, false)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, map[string]any{"active": info.Active, "running": info.Running, "max_processes": info.MaxProcesses})
}

// lgGroups serves GET /groups: every session.
func (s *Server) lgGroups(w http.ResponseWriter, r *http.Request) {
	if !allow(w, caller(r).CanManageAll()) {
		return
	}
	writeJSON(w, 200, s.m.Sessions())
}

// lgGroup serves GET /groups/<g>: the 0.4 names of the session's jobs.
func (s *Server) lgGroup(w http.ResponseWriter, r *http.Request) {
	g := r.PathValue("g")
	if !allow(w, caller(r).CanRead(g)) {
		return
	}
	jobs, err := s.m.Jobs(g)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, lgNames(jobs))
}

// lgGroupAction serves POST /groups/<g>/_start|_stop|_restart.
func (s *Server) lgGroupAction(w http.ResponseWriter, r *http.Request) {
	g := r.PathValue("g")
	if !allow(w, caller(r).CanManage(g)) {
		return
	}
	jobs, err := s.m.Jobs(g)
	if err != nil {
		writeError(w, err)
		return
	}
	var op func(string) error
	switch a := r.PathValue("action"); a {
	case "_start":
		op = s.m.StartJob
	case "_stop":
		op = s.m.StopJob
	case "_restart":
		op = s.lgRestart
	default:
		writeError(w, Errorf(lgCodeResourceMissing, 404, "no group action %q; use _start, _stop or _restart", a))
		return
	}
	if err := lgEach(jobs, op); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, lgOK)
}

// lgDeleteGroup serves DELETE /groups/<g>: every job of the session is
// unloaded.
func (s *Server) lgDeleteGroup(w http.ResponseWriter, r *http.Request) {
	g := r.PathValue("g")
	if !allow(w, caller(r).CanManage(g)) {
		return
	}
	jobs, err := s.m.Jobs(g)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := lgEach(jobs, s.m.Unload); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, lgOK)
}

// lgEach applies op to every job and returns the first error, ignoring
// jobs removed meanwhile.
func lgEach(jobs []string, op func(string) error) error {
	var first error
	for _, j := range jobs {
		if err := op(j); err != nil && AsError(err).Code != CodeNotFound && first == nil {
			first = err
		}
	}
	return first
}
