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
// sessions and jobs (§4.1). Each route is a thin translation: the path
// and body are read in the 0.4 way, the Manager call is the one the
// modern route makes, and the answer is written in the 0.4 shape
// (lgReply). What differs from the modern API is stated once:
//
//   - a 0.4 name "web" is the job default.web, "app:web" is app.web, and
//     our own "app.web" is accepted too (lgSplit); a name segment made
//     only of digits is an internal pid (lgLocate);
//   - names are given back in the 0.4 form ("web", "app:web": lgName);
//   - a template's os_env defaults to true, and with args a cmd naming
//     an existing file is one word (lgConfig);
//   - every success answers 200, as 0.4 did; errors use the one error
//     shape with the 0.4 codes (lgReply, lgBody, and not_found,
//     invalid_process_info, bad_value, resource_not_found where they
//     arise);
//   - the stats objects and feeds have the 0.4 shapes (legacystats.go).
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
// The routes of a {name} take a pid too, except where they name the
// methods the pid form has instead.
func (s *Server) legacyRoutes() {
	mx := s.mux
	read, manage := (*Key).CanRead, (*Key).CanManage
	mx.HandleFunc("GET /processes", lgServe(s.lgListProcesses))
	mx.HandleFunc("POST /processes", s.audited(lgServe(s.lgCreate)))
	mx.HandleFunc("/processes", lgMethods("GET, HEAD, POST"))
	mx.HandleFunc("GET /processes/{name}", s.lgNamed(read, "", s.lgGetProcess))
	mx.HandleFunc("PUT /processes/{name}", s.audited(s.lgNamed(manage, "GET, HEAD, DELETE", s.lgUpdate)))
	mx.HandleFunc("DELETE /processes/{name}", s.audited(s.lgNamed(manage, "", s.lgDelete)))
	mx.HandleFunc("/processes/{name}", lgMethods("GET, HEAD, PUT, DELETE"))
	mx.HandleFunc("GET /processes/{name}/{action}", s.lgNamed(read, "POST", s.lgGetPids))
	mx.HandleFunc("POST /processes/{name}/{action}", s.audited(s.lgNamed(manage, "", s.lgAction)))
	mx.HandleFunc("/processes/{name}/{action}", lgMethods("GET, HEAD, POST"))
	mx.HandleFunc("POST /processes/{name}/{action}/{arg}", s.audited(s.lgNamed(manage, "", s.lgAction)))
	mx.HandleFunc("/processes/{name}/{action}/{arg}", lgMethods("POST"))
	mx.HandleFunc("GET /status/{name}", s.lgNamed(read, "", s.lgStatus))
	mx.HandleFunc("/status/{name}", lgMethods("GET, HEAD"))
	mx.HandleFunc("GET /groups", lgServe(s.lgGroups))
	mx.HandleFunc("/groups", lgMethods("GET, HEAD"))
	mx.HandleFunc("GET /groups/{g}", s.lgGroup(read, lgGroupNames))
	mx.HandleFunc("DELETE /groups/{g}", s.audited(s.lgGroup(manage, s.lgDeleteGroup)))
	mx.HandleFunc("/groups/{g}", lgMethods("GET, HEAD, DELETE"))
	mx.HandleFunc("POST /groups/{g}/{action}", s.audited(s.lgGroup(manage, s.lgGroupAction)))
	mx.HandleFunc("/groups/{g}/{action}", lgMethods("POST"))
	mx.HandleFunc("GET /stats", lgServe(s.lgStatsAll))
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

// lgOK is the answer of a 0.4 operation that returns nothing else.
var lgOK = map[string]any{"ok": true}

// lgReply writes the 0.4 answer of an operation: out with 200 (lgOK when
// out is nil), or err with the 0.4 code of its kind (lgManagerCodes).
func lgReply(w http.ResponseWriter, out any, err error) {
	if err != nil {
		writeError(w, lgRecode(err, lgManagerCodes))
		return
	}
	if out == nil {
		out = lgOK
	}
	writeJSON(w, 200, out)
}

// lgServe serves a 0.4 route with op (which checks the key itself).
func lgServe(op func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		out, err := op(r)
		lgReply(w, out, err)
	}
}

// lgTarget is what the {name} segment of a 0.4 path names.
type lgTarget struct {
	seg  string // the segment as written
	full string // the job, or the job of the process
	pid  int    // the internal pid when seg is all digits, else 0
}

// lgResolve reads the {name} of r and checks that the key may do need on
// its job. A pid answers 405 with pidAllow when that is set (the route has
// no pid form). When it returns false it has answered.
func (s *Server) lgResolve(w http.ResponseWriter, r *http.Request, need func(*Key, string) bool, pidAllow string) (lgTarget, bool) {
	t := lgTarget{seg: r.PathValue("name")}
	var err error
	t.full, t.pid, err = s.lgLocate(t.seg)
	switch {
	case err != nil:
	case t.pid > 0 && pidAllow != "":
		methodNotAllowed(w, pidAllow)
		return t, false
	case !need(caller(r), t.full):
		err = errDenied()
	}
	if err != nil {
		lgReply(w, nil, err)
		return t, false
	}
	return t, true
}

// lgNamed serves a route of a {name} with op, once lgResolve has found
// its target.
func (s *Server) lgNamed(need func(*Key, string) bool, pidAllow string, op func(r *http.Request, t lgTarget) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if t, ok := s.lgResolve(w, r, need, pidAllow); ok {
			out, err := op(r, t)
			lgReply(w, out, err)
		}
	}
}

// lgGroup serves a route of a group {g} (a session) with op: the key must
// allow need on the session, which must have jobs; op gets their names.
func (s *Server) lgGroup(need func(*Key, string) bool, op func(r *http.Request, jobs []string) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		g := r.PathValue("g")
		if !allow(w, need(caller(r), g)) {
			return
		}
		jobs, err := s.m.Jobs(g)
		var out any
		if err == nil {
			out, err = op(r, jobs)
		}
		lgReply(w, out, err)
	}
}

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

// lgBody reads the JSON object of a POST or PUT; a body that is not one
// is 0.4's invalid_json.
func lgBody(r *http.Request) (map[string]any, error) {
	body, err := decodeObject(r, false)
	if err != nil {
		return nil, lgRecode(err, map[string]string{CodeBadRequest: lgCodeInvalidJSON})
	}
	return body, nil
}

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

// lgMustExist answers 404 for a job that is not loaded.
func (s *Server) lgMustExist(t lgTarget) error {
	if !s.lgExists(t.full) {
		return errNotFound("job %q not found", t.seg)
	}
	return nil
}

func lgNames(jobs []string) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = lgName(j)
	}
	return out
}

// lgListProcesses serves GET /processes: the 0.4 names of every job, or
// with ?running=1 the pids of every live process.
func (s *Server) lgListProcesses(r *http.Request) (any, error) {
	if !caller(r).CanManageAll() {
		return nil, errDenied()
	}
	if v := r.URL.Query().Get("running"); v != "" {
		running, ok := ParseBool(v)
		if !ok {
			return nil, Errorf(CodeBadValue, 400, "running: expected 1, true, 0 or false, got %q", v)
		}
		if running {
			pids, _ := s.m.Pids("")
			return pids, nil
		}
	}
	jobs, _ := s.m.Jobs("")
	return lgNames(jobs), nil
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
func (s *Server) lgCreate(r *http.Request) (any, error) {
	body, err := lgBody(r)
	if err != nil {
		return nil, err
	}
	sid, cfg, err := lgConfig(body, "", "")
	if err != nil {
		return nil, err
	}
	return nil, s.loadJob(caller(r), sid, cfg)
}

// lgGetProcess serves GET and HEAD /processes/<name or pid>: the flat
// config of the job (the pid's job for a pid), with its 0.4 name.
func (s *Server) lgGetProcess(r *http.Request, t lgTarget) (any, error) {
	cfg, err := s.m.JobConfig(t.full)
	if err != nil {
		return nil, err
	}
	out := cfg.Map(caller(r).CanManage(t.full))
	out["name"] = lgName(t.full)
	if sid, _ := SplitName(t.full); sid != "default" {
		out["group"] = sid
	}
	return out, nil
}

// lgUpdate serves PUT /processes/<name>: the body replaces the config (as
// in POST; the name comes from the path) and the processes restart with
// it. "start": true also starts a stopped job.
func (s *Server) lgUpdate(r *http.Request, t lgTarget) (any, error) {
	if err := s.lgMustExist(t); err != nil {
		return nil, err
	}
	body, err := lgBody(r)
	if err != nil {
		return nil, err
	}
	sid, job := SplitName(t.full)
	_, cfg, err := lgConfig(body, sid, job)
	if err != nil {
		return nil, err
	}
	_, given := body["start"]
	return nil, s.m.Update(sid, cfg, nil, given && cfg.Start)
}

// lgDelete serves DELETE /processes/<name> (unload the job) and
// DELETE /processes/<pid> (stop that process; a kept-alive one is
// replaced).
func (s *Server) lgDelete(_ *http.Request, t lgTarget) (any, error) {
	if t.pid > 0 {
		return nil, s.m.StopProcess(t.pid)
	}
	return nil, s.m.Unload(t.full)
}

// lgGetPids serves GET /processes/<name>/_pids.
func (s *Server) lgGetPids(r *http.Request, t lgTarget) (any, error) {
	if a := r.PathValue("action"); a != "_pids" {
		return nil, Errorf(lgCodeResourceMissing, 404, "no action %q on GET; use _pids", a)
	}
	pids, err := s.m.Pids(t.full)
	if err != nil {
		return nil, err
	}
	return map[string]any{"ok": true, "pids": pids}, nil
}

// lgAction serves POST /processes/<name or pid>/<_action>[/<arg>]: on a
// job _start, _stop, _restart (lgJobOp), _add[/<n>], _sub[/<n>] and
// _signal/<sig>; on a pid _stop and _signal/<sig>.
func (s *Server) lgAction(r *http.Request, t lgTarget) (any, error) {
	action, arg := r.PathValue("action"), r.PathValue("arg") // {arg} never matches an empty segment
	switch {
	case action == "_signal":
		sig, err := lgSignal(action, arg)
		switch {
		case err != nil:
			return nil, err
		case t.pid > 0:
			return nil, s.m.Kill(t.pid, sig)
		}
		return nil, s.m.KillAll(t.full, sig)
	case (action == "_add" || action == "_sub") && t.pid == 0:
		return s.lgScale(t.full, action, arg)
	case arg != "":
	case t.pid > 0 && action == "_stop":
		return nil, s.m.StopProcess(t.pid)
	case t.pid == 0 && s.lgJobOp(action) != nil:
		return nil, s.lgJobOp(action)(t.full)
	}
	what, with := "job", ""
	if t.pid > 0 {
		what = "process"
	}
	if arg != "" {
		with = " with an argument"
	}
	return nil, Errorf(lgCodeResourceMissing, 404, "no %s action %q%s", what, action, with)
}

// lgJobOp is the operation of an action without argument on a job, for
// /processes/<name>/<action> and /groups/<g>/<action>; nil for another.
func (s *Server) lgJobOp(action string) func(full string) error {
	switch action {
	case "_start":
		return s.m.StartJob
	case "_stop":
		return s.m.StopJob
	case "_restart":
		return s.lgRestart
	}
	return nil
}

// lgScale serves _add[/<n>] and _sub[/<n>] (n defaults to 1).
func (s *Server) lgScale(full, action, arg string) (any, error) {
	n := 1
	if arg != "" {
		if !isDigits(arg) || len(arg) > 6 {
			return nil, Errorf(CodeBadValue, 400, "%s/%s: the count must be a whole number from 0 to 999999", action, arg)
		}
		n, _ = strconv.Atoi(arg)
	}
	if action == "_sub" {
		n = -n
	}
	t, err := s.m.Scale(full, ScaleOp{Value: n})
	if err != nil {
		return nil, err
	}
	return map[string]any{"ok": true, "numprocesses": t}, nil
}

// lgSignal parses the <sig> of _signal/<sig>: a number or a name
// ("HUP", "sighup", "15").
func lgSignal(action, arg string) (syscall.Signal, error) {
	if arg == "" {
		return 0, Errorf(CodeBadValue, 400, "%s: the signal is missing; use %s/<number or name>, e.g. %s/HUP", action, action, action)
	}
	return ParseSignal(arg)
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
func (s *Server) lgStatus(_ *http.Request, t lgTarget) (any, error) {
	info, err := s.m.JobInfo(t.full, false)
	if err != nil {
		return nil, err
	}
	return map[string]any{"active": info.Active, "running": info.Running, "max_processes": info.MaxProcesses}, nil
}

// lgGroups serves GET /groups: every session.
func (s *Server) lgGroups(r *http.Request) (any, error) {
	if !caller(r).CanManageAll() {
		return nil, errDenied()
	}
	return s.m.Sessions(), nil
}

// lgGroupNames serves GET /groups/<g>: the 0.4 names of the session's
// jobs.
func lgGroupNames(_ *http.Request, jobs []string) (any, error) {
	return lgNames(jobs), nil
}

// lgGroupAction serves POST /groups/<g>/_start|_stop|_restart.
func (s *Server) lgGroupAction(r *http.Request, jobs []string) (any, error) {
	a := r.PathValue("action")
	op := s.lgJobOp(a)
	if op == nil {
		return nil, Errorf(lgCodeResourceMissing, 404, "no group action %q; use _start, _stop or _restart", a)
	}
	return nil, lgEach(jobs, op)
}

// lgDeleteGroup serves DELETE /groups/<g>: every job of the session is
// unloaded.
func (s *Server) lgDeleteGroup(_ *http.Request, jobs []string) (any, error) {
	return nil, lgEach(jobs, s.m.Unload)
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
