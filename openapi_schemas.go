package gaffer

// The schemas of GET /openapi.json: the bodies the routes read and write.

type oaObj = map[string]any

func oaStr(desc string) oaObj  { return oaObj{"type": "string", "description": desc} }
func oaInt(desc string) oaObj  { return oaObj{"type": "integer", "description": desc} }
func oaNum(desc string) oaObj  { return oaObj{"type": "number", "description": desc} }
func oaBool(desc string) oaObj { return oaObj{"type": "boolean", "description": desc} }
func oaArr(items oaObj) oaObj  { return oaObj{"type": "array", "items": items} }

// oaObject is an object schema; required lists the fields always present.
func oaObject(props oaObj, required ...string) oaObj {
	o := oaObj{"type": "object", "properties": props}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

// oaNumOrNA is a figure that is "N/A" when it cannot be read.
func oaNumOrNA(desc string) oaObj {
	return oaObj{"description": desc, "oneOf": []any{oaObj{"type": "number"}, oaObj{"type": "string", "const": "N/A"}}}
}

func oaSchemas() oaObj {
	strs := oaArr(oaObj{"type": "string"})
	ints := oaArr(oaObj{"type": "integer"})
	procStats := oaObject(oaObj{
		"mem_info1": oaObj{"description": "resident memory, human-readable (12M), or N/A"},
		"mem_info2": oaObj{"description": "virtual memory, human-readable, or N/A"},
		"cpu":       oaNumOrNA("percent of one core since the previous sample"),
		"mem":       oaNumOrNA("resident memory as a percent of physical memory"),
		"ctime":     oaStr("total CPU time, M:SS.cc"),
		"rss_bytes": oaInt("resident memory in bytes"), "vms_bytes": oaInt("virtual memory in bytes"),
		"cpu_percent": oaNum("percent of one core since the previous sample"), "cpu_seconds": oaNum("total CPU time in seconds"),
		"num_threads": oaInt("threads"), "num_fds": oaInt("open file descriptors"),
		"children":     oaArr(oaObj{"type": "object", "description": "the same figures for each child process (no pid, its own children nested)"}),
		"num_children": oaInt("child processes"),
		"username":     oaStr("the process's owner"), "nice": oaObj{"description": "nice value, or N/A"},
		"cmdline": oaStr("command line (secret-looking variables masked)"),
		"pid":     oaInt("internal pid"), "os_pid": oaInt("OS pid"),
		"cgroup": oaStr("the process's cgroup, when it has one: cpu, ctime and cpu_seconds (and the memory figures where a memory controller accounts it) are then the cgroup's, every descendant included"),
	})
	permissions := oaObject(oaObj{
		"admin": oaBool("every right"), "create_key": oaBool("may create keys"), "create_user": oaBool("may create users"),
		"manage": strs, "write": strs, "read": strs,
	})
	key := oaObject(oaObj{"key": oaStr("the key"), "label": oaStr("its label"), "permissions": oaRef("Permissions"), "parent": oaStr("the key that created it")}, "key", "permissions")
	user := oaObject(oaObj{"username": oaStr("name"), "user_type": oaInt("0 admin, 1 user, other values are the caller's"), "key": oaStr("linked API key")}, "username")
	return oaObj{
		"Error": oaObject(oaObj{
			"error":  oaStr("a machine-readable code: not_found, bad_request, unauthorized, forbidden, conflict, method_not_allowed…"),
			"reason": oaStr("a sentence that says what was wrong and where"),
			"errno":  oaInt("the HTTP status"),
		}, "error", "reason", "errno"),
		"Ok":       oaObject(oaObj{"ok": oaObj{"type": "boolean", "const": true}}, "ok"),
		"Welcome":  oaObject(oaObj{"welcome": oaStr("gaffer"), "name": oaStr("gaffer"), "version": oaStr("the interface version (0.5.2's)"), "gaffer_version": oaStr("this implementation's version"), "containment": oaStr("cgroup2:<the manager's cgroup> (a cgroup per process), or process-groups"), "cgroup_limits": oaObj{"type": "object", "description": "where memory_max, cpu_max and pids_max come from (cgroup2, cgroup1:<dir>, or unavailable: why)", "additionalProperties": oaObj{"type": "string"}}}, "version"),
		"Pids":     oaObject(oaObj{"pids": ints}, "pids"),
		"Pid":      oaObject(oaObj{"pid": oaInt("internal pid of the new process")}, "pid"),
		"Sessions": oaObject(oaObj{"sessions": strs}, "sessions"),
		"Jobs": oaObject(oaObj{"jobs": oaObj{"description": "names (session.job), or with details the job infos",
			"oneOf": []any{strs, oaArr(oaRef("JobInfo"))}}}, "jobs"),
		"SessionJobs": oaObject(oaObj{"sessionid": oaStr("the session"), "jobs": strs}, "sessionid", "jobs"),
		"JobConfig": oaObj{"type": "object", "additionalProperties": true, "required": []string{"name", "cmd"},
			"description": "a job's settings; the other keys of the configuration file's [process:NAME] are accepted too",
			"properties": oaJobSettings(oaObj{
				"name": oaStr("job name (in the session)"), "cmd": oaStr("command line, or the program when args is given"),
				"args": strs, "env": oaObj{"type": "object", "additionalProperties": oaObj{"type": "string"}},
				"cwd": oaStr("working directory"), "numprocesses": oaInt("processes to keep running"),
				"start": oaBool("start at once (default true)"), "shell": oaBool("run cmd with /bin/sh -c"),
				"os_env": oaBool("inherit gafferd's environment"), "graceful_timeout": oaNum("seconds between SIGTERM and SIGKILL"),
				"redirect_output": strs, "redirect_input": oaBool("keep stdin open for writes"), "custom_streams": strs,
				"detach": oaBool("run in a session of its own"), "uid": oaObj{}, "gid": oaObj{},
				"flapping": oaObj{"type": "object"},
			})},
		"JobInfo": oaObject(oaObj{
			"name": oaStr("session.job"), "active": oaBool("it has live processes"), "running": oaInt("live processes"),
			"running_out": oaInt("live one-off (committed) processes"), "max_processes": oaInt("target number of processes"),
			"processes": ints, "config": oaRef("JobConfig"),
			"state": oaObj{"type": "string", "enum": []string{JobRunning, JobStopped, JobNotStarted, JobFlapping, JobGaveUp,
				jobWaiting, jobStarting, jobReady, jobUnhealthy, jobBackoff, jobCompleted}},
			"waiting_for":    oaStr("state waiting: the dependencies that do not hold (session.job:condition)"),
			"next_try":       oaObj{"type": "string", "format": "date-time", "description": "state backoff: when the next process is spawned"},
			"ready":          oaInt("kept-alive processes that are ready"),
			"process_states": oaArr(oaRef("ProcessState")),
			"restarts":       oaInt("processes restarted after an unexpected exit"), "flaps": oaInt("times found flapping"),
			"last_exit_status": oaObj{"type": []string{"integer", "null"}, "description": "exit status of the last exited process (0 after a signal)"},
			"spawn_error":      oaStr("why processes cannot be spawned, while they cannot"),
			"stopping":         oaArr(oaInt("internal pid of a process stopped but not exited yet")),
			"last_exit": oaObj{"type": []string{"object", "null"}, "description": "how the job's last exited process ended",
				"properties": oaObj{"pid": oaInt("internal pid"), "os_pid": oaInt("OS pid"), "exit_status": oaInt("exit status (0 after a signal)"),
					"term_signal": oaInt("signal number, 0 for a normal exit"), "signal": oaStr("signal name (SIGKILL…)"),
					"time": oaStr("when it exited (RFC 3339)"), "uptime": oaNum("seconds it ran")}},
		}, "name", "active", "running", "max_processes", "processes", "state"),
		"ProcessState": oaProcessState(),
		"Restarted":    oaRestarted(),
		"ProcStats":    procStats,
		"ProcessStats": oaObject(oaObj{"stats": oaRef("ProcStats")}, "stats"),
		"JobStats": oaObject(oaObj{
			"name": oaStr("session.job"), "stats": oaArr(oaRef("ProcStats")),
			"mem": oaNumOrNA("sum of mem"), "max_mem": oaNumOrNA("largest mem"), "min_mem": oaNumOrNA("smallest mem"),
			"cpu": oaNumOrNA("sum of cpu"), "max_cpu": oaNumOrNA("largest cpu"), "min_cpu": oaNumOrNA("smallest cpu"),
		}, "name", "stats"),
		"JobHistory": oaHistorySchema(),
		"ProcessInfo": oaObject(oaWithProcessState(oaObj{
			"pid": oaInt("internal pid"), "name": oaStr("its job, session.job"), "cmd": oaStr("program"), "args": strs,
			"env": oaObj{"type": "object", "additionalProperties": oaObj{"type": "string"}, "description": "secret-looking values are masked without manage rights"},
			"uid": oaObj{"type": []string{"integer", "null"}}, "gid": oaObj{"type": []string{"integer", "null"}},
			"os_pid": oaInt("OS pid"), "create_time": oaNum("start time, seconds since the Unix epoch"),
			"commited": oaBool("a one-off process (the 0.5.2 spelling)"), "redirect_output": strs, "redirect_input": oaBool("stdin is writable"),
			"custom_streams": strs, "active": oaBool("alive"), "stopping": oaBool("being stopped"),
		}), "pid", "name", "os_pid", "create_time"),
		"NumProcesses": oaObject(oaObj{"numprocesses": oaInt("target number of processes")}, "numprocesses"),
		"Scale": oaObject(oaObj{"scale": oaObj{"description": "N or \"=N\" sets, \"+N\" adds, \"-N\" removes",
			"oneOf": []any{oaObj{"type": "integer", "minimum": 0}, oaObj{"type": "string", "pattern": "^[=+-]?[0-9]+$"}}}}, "scale"),
		"Signal": oaObject(oaObj{"signal": oaObj{"description": "a number, or a name (TERM, SIGTERM, hup…)",
			"oneOf": []any{oaObj{"type": "integer"}, oaObj{"type": "string"}}}}, "signal"),
		"Commit": oaObject(oaObj{"graceful_timeout": oaNum("seconds between SIGTERM and SIGKILL"),
			"env": oaObj{"type": "object", "additionalProperties": oaObj{"type": "string"}}}),
		"ReloadDiff":  oaObject(oaObj{"added": strs, "removed": strs, "changed": strs, "unchanged": strs}, "added", "removed", "changed", "unchanged"),
		"AuthKey":     oaObject(oaObj{"api_key": oaStr("the user's key")}, "api_key"),
		"Permissions": permissions,
		"Key":         key,
		"Keys":        oaObject(oaObj{"keys": oaObj{"oneOf": []any{strs, oaArr(oaRef("Key"))}}}, "keys"),
		"KeyCreate":   oaObject(oaObj{"label": oaStr("a label"), "permissions": oaRef("Permissions"), "parent": oaStr("parent key")}),
		"KeyCreated":  oaObject(oaObj{"ok": oaBool("true"), "api_key": oaStr("the new key")}, "api_key"),
		"User":        user,
		"Users":       oaObject(oaObj{"users": oaObj{"oneOf": []any{strs, oaArr(oaRef("User"))}}}, "users"),
		"UserCreate":  oaObject(oaObj{"username": oaStr("name"), "password": oaStr("password"), "user_type": oaInt("0 admin, 1 user"), "key": oaObj{"type": []string{"string", "null"}}}),
		"Password":    oaObject(oaObj{"password": oaStr("the new password")}, "password"),
		"UserKey":     oaObject(oaObj{"key": oaStr("an API key")}, "key"),
	}
}
