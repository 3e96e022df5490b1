package gaffer

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// chPerm is the permission a command needs from a key that is not
// manage-all.
type chPerm int

const (
	chPermManageArg  chPerm = iota // can_manage(args[0])
	chPermManageAll                // listing commands
	chPermAdmin                    // load, unload, reload, update
	chPermManageProc               // can_manage(job of the pid in args[0])
	chPermWriteProc                // can_write(job of the pid in args[0])
)

// chCommand describes one command: its parameter names (positional order;
// each may also be given in kwargs), how many are required, the permission
// it needs and what it runs.
type chCommand struct {
	params []string
	min    int
	perm   chPerm
	run    func(c *chConn, a chArgs) (any, error)
}

var chOK = map[string]any{"ok": true}

// chJobCmd adapts a command on the job named by args[0].
func chJobCmd(f func(c *chConn, full string, a chArgs) (any, error)) func(*chConn, chArgs) (any, error) {
	return func(c *chConn, a chArgs) (any, error) {
		full, err := a.job(0)
		if err != nil {
			return nil, err
		}
		return f(c, full, a)
	}
}

// chPidCmd adapts a command on the process whose pid is args[0].
func chPidCmd(f func(c *chConn, pid int, a chArgs) (any, error)) func(*chConn, chArgs) (any, error) {
	return func(c *chConn, a chArgs) (any, error) {
		pid, err := a.pid(0)
		if err != nil {
			return nil, err
		}
		return f(c, pid, a)
	}
}

// chResult wraps a manager result as {key: v}, or returns its error.
func chResult[T any](key string, v T, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return map[string]any{key: v}, nil
}

// chOKResult is {"ok": true} or the error.
func chOKResult(err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return chOK, nil
}

// chList runs the listing commands jobs and pids: without an argument
// everything, else {"sessionid": arg, key: …} (for pids the argument is a
// job name, but the key is "sessionid", as in the original).
func chList[T any](key string, list func(string) ([]T, error), normalize func(string) string) func(*chConn, chArgs) (any, error) {
	return func(c *chConn, a chArgs) (any, error) {
		if _, ok := a.get(0); !ok {
			v, err := list("")
			return chResult(key, v, err)
		}
		arg, err := a.str(0)
		if err != nil {
			return nil, err
		}
		v, err := list(normalize(arg))
		if err != nil {
			return nil, err
		}
		return map[string]any{"sessionid": arg, key: v}, nil
	}
}

var chCommands = map[string]chCommand{
	"sessions": {nil, 0, chPermManageAll, func(c *chConn, a chArgs) (any, error) {
		return map[string]any{"sessions": c.m.Sessions()}, nil
	}},
	"jobs": {[]string{"sessionid"}, 0, chPermManageAll, func(c *chConn, a chArgs) (any, error) {
		return chList("jobs", c.m.Jobs, func(s string) string { return s })(c, a)
	}},
	"pids": {[]string{"name"}, 0, chPermManageAll, func(c *chConn, a chArgs) (any, error) {
		return chList("pids", c.m.Pids, chFullName)(c, a)
	}},
	"load":   {[]string{"config", "sessionid", "env", "start"}, 0, chPermAdmin, func(c *chConn, a chArgs) (any, error) { return c.loadOrUpdate(a, false) }},
	"update": {[]string{"config", "sessionid", "env", "start"}, 0, chPermAdmin, func(c *chConn, a chArgs) (any, error) { return c.loadOrUpdate(a, true) }},
	"unload": {[]string{"name", "sessionid"}, 1, chPermAdmin, func(c *chConn, a chArgs) (any, error) {
		return chDo(c.m.Unload)(a.sessionJob())
	}},
	"reload": {[]string{"name", "sessionid"}, 1, chPermAdmin, func(c *chConn, a chArgs) (any, error) {
		return chDo(c.m.ReloadJob)(a.sessionJob())
	}},
	"restart": {[]string{"name", "rolling"}, 1, chPermManageArg, chJobCmd(func(c *chConn, full string, a chArgs) (any, error) {
		rolling := false
		if v, ok := a.get(1); ok {
			b, isBool := v.(bool)
			if !isBool {
				return nil, chBadCommand("rolling must be true or false")
			}
			rolling = b
		}
		if !rolling {
			return chOKResult(c.m.ReloadJob(full))
		}
		n, err := c.m.RollingRestart(full)
		return chResult("replaced", n, err)
	})},
	"start_job": {[]string{"name"}, 1, chPermManageArg, func(c *chConn, a chArgs) (any, error) { return chDo(c.m.StartJob)(a.job(0)) }},
	"stop_job":  {[]string{"name"}, 1, chPermManageArg, func(c *chConn, a chArgs) (any, error) { return chDo(c.m.StopJob)(a.job(0)) }},
	"stopall":   {[]string{"name"}, 1, chPermManageArg, func(c *chConn, a chArgs) (any, error) { return chDo(c.m.StopAll)(a.job(0)) }},
	"scale": {[]string{"name", "n"}, 2, chPermManageArg, chJobCmd(func(c *chConn, full string, a chArgs) (any, error) {
		v, _ := a.get(1)
		op, err := ParseScale(v)
		if err != nil {
			return nil, err
		}
		n, err := c.m.Scale(full, op)
		return chResult("numprocesses", n, err)
	})},
	"info": {[]string{"name"}, 1, chPermManageArg, chJobCmd(func(c *chConn, full string, a chArgs) (any, error) {
		v, err := c.m.JobInfo(full, true)
		return chResult("info", v, err)
	})},
	"stats": {[]string{"name"}, 1, chPermManageArg, chJobCmd(func(c *chConn, full string, a chArgs) (any, error) {
		v, err := c.m.JobStats(full)
		return chResult("stats", v, err)
	})},
	"killall": {[]string{"name", "sig"}, 2, chPermManageArg, chJobCmd(func(c *chConn, full string, a chArgs) (any, error) {
		v, _ := a.get(1)
		sig, err := ParseSignal(v)
		if err != nil {
			return nil, err
		}
		return chOKResult(c.m.KillAll(full, sig))
	})},
	"commit": {[]string{"name", "graceful_timeout", "env"}, 1, chPermManageArg, chJobCmd(func(c *chConn, full string, a chArgs) (any, error) {
		var graceful time.Duration
		if v, ok := a.get(1); ok {
			f, err := mapFloat("graceful_timeout", v)
			if err != nil || f < 0 {
				return nil, chBadCommand("graceful_timeout must be a number of seconds")
			}
			graceful = secondsToDuration(f)
		}
		v, _ := a.get(2)
		env, err := mapEnv("env", v)
		if err != nil {
			return nil, err
		}
		pid, err := c.m.Commit(full, graceful, env)
		if err != nil {
			return nil, err
		}
		return map[string]any{"ok": true, "pid": pid}, nil
	})},
	"process_info": {[]string{"pid"}, 1, chPermManageProc, chPidCmd(func(c *chConn, pid int, a chArgs) (any, error) {
		v, err := c.m.ProcessInfo(pid, true)
		return chResult("info", v, err)
	})},
	"process_stats": {[]string{"pid"}, 1, chPermManageProc, chPidCmd(func(c *chConn, pid int, a chArgs) (any, error) {
		v, err := c.m.ProcessStats(pid)
		return chResult("stats", v, err)
	})},
	"stop_process": {[]string{"pid"}, 1, chPermManageProc, chPidCmd(func(c *chConn, pid int, a chArgs) (any, error) {
		return chOKResult(c.m.StopProcess(pid))
	})},
	"kill": {[]string{"pid", "sig"}, 2, chPermManageProc, chPidCmd(func(c *chConn, pid int, a chArgs) (any, error) {
		v, _ := a.get(1)
		sig, err := ParseSignal(v)
		if err != nil {
			return nil, err
		}
		return chOKResult(c.m.Kill(pid, sig))
	})},
	"send": {[]string{"pid", "lines", "stream"}, 2, chPermWriteProc, chPidCmd(func(c *chConn, pid int, a chArgs) (any, error) {
		var data []byte
		switch v, _ := a.get(1); x := v.(type) {
		case string:
			data = []byte(x)
		case []any:
			for _, l := range x {
				s, ok := l.(string)
				if !ok {
					return nil, chBadCommand("data must be a string or a list of strings")
				}
				data = append(append(data, s...), '\n')
			}
		default:
			return nil, chBadCommand("data must be a string or a list of strings")
		}
		stream := ""
		if _, ok := a.get(2); ok {
			var err error
			if stream, err = a.str(2); err != nil {
				return nil, err
			}
		}
		return chOKResult(c.m.Send(pid, data, stream))
	})},
}

// chDo returns a function that runs op on a job name unless getting the
// name failed: chDo(op)(a.job(0)).
func chDo(op func(string) error) func(string, error) (any, error) {
	return func(full string, err error) (any, error) {
		if err != nil {
			return nil, err
		}
		return chOKResult(op(full))
	}
}

// chArgs are a command's arguments: positional, or by keyword.
type chArgs struct {
	pos   []any
	kw    map[string]any
	names []string
}

// get returns argument i; a JSON null counts as absent.
func (a chArgs) get(i int) (any, bool) {
	var v any
	if i < len(a.pos) {
		v = a.pos[i]
	} else if i < len(a.names) {
		v = a.kw[a.names[i]]
	}
	return v, v != nil
}

func (a chArgs) name(i int) string {
	if i < len(a.names) {
		return a.names[i]
	}
	return "#" + strconv.Itoa(i+1)
}

func chBadCommand(format string, args ...any) *Error {
	return Errorf("bad_command", 400, format, args...)
}

// str returns argument i, which must be a non-empty string.
func (a chArgs) str(i int) (string, error) {
	v, _ := a.get(i)
	s, ok := v.(string)
	if !ok || s == "" {
		return "", chBadCommand("argument %s must be a non-empty string", a.name(i))
	}
	return s, nil
}

// job returns argument i as a full job name.
func (a chArgs) job(i int) (string, error) {
	s, err := a.str(i)
	if err != nil {
		return "", err
	}
	return chFullName(s), nil
}

// sessionJob returns the full name of the job of unload and reload: with
// a "sessionid" the name is taken as is (the original's rule), without
// it the name may be "session.job".
func (a chArgs) sessionJob() (string, error) {
	name, err := a.str(0)
	if err != nil {
		return "", err
	}
	if _, ok := a.get(1); !ok {
		return chFullName(name), nil
	}
	sid, err := a.str(1)
	if err != nil {
		return "", err
	}
	return sid + "." + name, nil
}

// pid returns argument i, which must be a JSON integer.
func (a chArgs) pid(i int) (int, error) {
	v, _ := a.get(i)
	var n int64
	ok := false
	switch x := v.(type) {
	case json.Number:
		var err error
		n, err = x.Int64()
		ok = err == nil
	case float64:
		n, ok = int64(x), x == float64(int64(x))
	case int:
		n, ok = int64(x), true
	}
	if !ok || n <= 0 || n > 1<<31 {
		return 0, chBadCommand("argument %s must be a process id (an integer)", a.name(i))
	}
	return int(n), nil
}

// loadOrUpdate runs load or update: [config, sessionid, env, start].
func (c *chConn) loadOrUpdate(a chArgs, update bool) (any, error) {
	v, ok := a.get(0)
	if !ok {
		return nil, Errorf("config_missing", 400, "the job config is missing")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, Errorf(CodeInvalidConfig, 400, "the job config must be an object")
	}
	cfg, err := JobConfigFromMap(obj)
	if err != nil {
		return nil, Errorf(CodeInvalidConfig, 400, "%s", AsError(err).Reason)
	}
	sid := "default"
	if _, ok := a.get(1); ok {
		if sid, err = a.str(1); err != nil {
			return nil, err
		}
	}
	v, _ = a.get(2)
	env, err := mapEnv("env", v)
	if err != nil {
		return nil, err
	}
	start := cfg.Start && !update
	if v, ok := a.get(3); ok {
		if start, ok = v.(bool); !ok {
			return nil, chBadCommand("start must be true or false")
		}
	}
	if update {
		err = c.m.Update(sid, cfg, env, start)
	} else {
		err = c.m.Load(sid, cfg, env, start)
	}
	if err != nil {
		return nil, err
	}
	return chOK, nil
}

// chStateChanging lists the commands that change something: each one
// leaves an audit line, whether it runs or is refused.
var chStateChanging = map[string]bool{
	"load": true, "update": true, "unload": true, "reload": true, "start_job": true, "stop_job": true,
	"stopall": true, "restart": true, "scale": true, "killall": true, "commit": true, "stop_process": true, "kill": true, "send": true,
}

// runCommand checks and runs one command. A command the key may not run is
// refused and not run. State-changing commands are audited (chAudit).
func (c *chConn) runCommand(name string, pos []any, kw map[string]any) (result any, e *Error) {
	cmd, ok := chCommands[name]
	if !ok {
		return nil, Errorf("command_not_found", 404, "unknown command %q", name)
	}
	a := chArgs{pos: pos, kw: kw, names: cmd.params}
	if chStateChanging[name] {
		defer func() { c.audit("CMD "+name, chAuditTarget(name, a), e) }()
	}
	for i := 0; i < cmd.min; i++ {
		if _, ok := a.get(i); !ok {
			return nil, chBadCommand("%s needs the arguments %s", name, strings.Join(cmd.params[:cmd.min], ", "))
		}
	}
	if err := c.authorize(cmd.perm, a); err != nil {
		return nil, AsError(err)
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("channel: command panicked", "command", name, "panic", r)
			result, e = nil, Errorf(CodeInternal, 500, "%v", r)
		}
	}()
	res, err := cmd.run(c, a)
	if err != nil {
		return nil, AsError(err)
	}
	return res, nil
}

// authorize applies reference §3.6 "Command authorisation".
func (c *chConn) authorize(perm chPerm, a chArgs) error {
	k := c.key
	if k.CanManageAll() {
		return nil
	}
	forbidden := Errorf(CodeForbidden, 403, "the API key does not allow this command")
	switch perm {
	case chPermManageAll:
		return forbidden
	case chPermAdmin:
		if k.IsAdmin() {
			return nil
		}
		return forbidden
	case chPermManageProc, chPermWriteProc:
		pid, err := a.pid(0)
		if err != nil {
			return err
		}
		p, ok := c.m.Process(pid)
		if !ok {
			return errNotFound("process %d not found", pid)
		}
		if (perm == chPermManageProc && k.CanManage(p.Job)) || (perm == chPermWriteProc && k.CanWrite(p.Job)) {
			return nil
		}
		return forbidden
	}
	full, err := a.job(0)
	if err != nil {
		return err
	}
	if k.CanManage(full) {
		return nil
	}
	return forbidden
}

// chAuditTarget names what a command acts on, for the audit line: the job
// or the pid as given, never other arguments (a config may hold secrets).
func chAuditTarget(name string, a chArgs) string {
	switch name {
	case "load", "update":
		v, _ := a.get(0)
		cfg, _ := v.(map[string]any)
		job, _ := cfg["name"].(string)
		sid := "default"
		if v, ok := a.get(1); ok {
			sid, _ = v.(string)
		}
		return sid + "." + job
	case "unload", "reload":
		full, _ := a.sessionJob()
		return full
	}
	v, _ := a.get(0)
	switch x := v.(type) {
	case string:
		return chFullName(x)
	case json.Number:
		return "pid " + x.String()
	}
	return ""
}

// audit logs one state-changing action of the connection as the HTTP
// layer does (who, what, result), with the transport and the client's
// address; err nil is success (result 200).
func (c *chConn) audit(action, target string, err *Error) {
	who, keyID := "anonymous", ""
	if k := c.key; k != nil && !k.IsAnonymous() {
		who = k.Label
		if who == "" {
			who = "unlabelled key"
		}
		if k.Key != "" {
			keyID = authFingerprint(k.Key)
		}
	}
	transport, remote := "websocket", ""
	if _, ok := c.ws.(sjChannelConn); ok {
		transport = "sockjs"
	}
	if r := c.ws.Request(); r != nil {
		remote = r.RemoteAddr
	}
	attrs := []any{"who", who}
	if keyID != "" {
		attrs = append(attrs, "key_id", keyID)
	}
	attrs = append(attrs, "action", action, "target", target, "transport", transport, "remote", remote)
	if err != nil {
		attrs = append(attrs, "result", err.Errno, "error", err.Code)
	} else {
		attrs = append(attrs, "result", 200)
	}
	c.log.Info("audit", attrs...)
}
