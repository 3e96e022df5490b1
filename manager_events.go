package gaffer

import "strings"

// Manager events: each happening is published once, under its primary
// name and every alias (see Bus). The names of each kind of event:
//
//	load          load, create
//	unload        unload, delete
//	start, stop   <what>, job.<full>.<what>, proc.<full>.<what>
//	restart       restart, job.<full>.restart
//	update        update
//	spawn         spawn, job.<full>.spawn, proc.<full>.spawn (a commit's: spawn only)
//	spawn_error   spawn_error, job.<full>.spawn_error
//	reap          reap, job.<full>.reap, proc.<full>.reap, proc.<pid>.reap
//	exit          exit, job.<full>.exit, proc.<full>.exit, proc.<pid>.exit
//	stop_process  stop_process, stop_pid, proc.<full>.stop_pid
//	flap, adopt   <what>, job.<full>.<what>
//	kill          proc.<pid>.kill (one process), job.<full>.kill (a job)
//	ready, healthy, unhealthy, watchdog, ready_timeout
//	              <what>, proc.<full>.<what>, proc.<pid>.<what>
//	waiting, backoff
//	              <what>, job.<full>.<what>
//
// where <full> is session.job. For a job of the default session the short
// forms job.<job>.<what> and proc.<job>.<what> are aliases too (the 0.4
// documentation's proc.dummy.spawn), except for a job name with a '.'
// (job.a.b.spawn would read as job b of session a) and, for proc.<job>.*,
// a job name of digits only (it would read as a pid). A short pattern
// such as proc.web also matches the events of a session named web
// (proc.web.x.spawn): the full name, proc.default.web, is exact.

// evForm says under which names one kind of manager event is published.
type evForm struct {
	bare    bool     // the name itself ("spawn")
	aliases []string // other plain names ("create" for "load")
	job     bool     // job.<full>.<what>
	proc    string   // proc.<full>.<proc>; "" for none
	pid     bool     // proc.<pid>.<what>
}

var evForms = map[string]evForm{
	"load":         {bare: true, aliases: []string{"create"}},
	"unload":       {bare: true, aliases: []string{"delete"}},
	"start":        {bare: true, job: true, proc: "start"},
	"stop":         {bare: true, job: true, proc: "stop"},
	"restart":      {bare: true, job: true},
	"update":       {bare: true},
	"spawn":        {bare: true, job: true, proc: "spawn"},
	"spawn_error":  {bare: true, job: true},
	"reap":         {bare: true, job: true, proc: "reap", pid: true},
	"exit":         {bare: true, job: true, proc: "exit", pid: true},
	"stop_process": {bare: true, aliases: []string{"stop_pid"}, proc: "stop_pid"},
	"flap":         {bare: true, job: true},
	"adopt":        {bare: true, job: true},
	"kill":         {job: true, pid: true},
	// Lifecycle (lifecycle.go).
	"ready":         {bare: true, proc: "ready", pid: true},
	"healthy":       {bare: true, proc: "healthy", pid: true},
	"unhealthy":     {bare: true, proc: "unhealthy", pid: true},
	"watchdog":      {bare: true, proc: "watchdog", pid: true},
	"ready_timeout": {bare: true, proc: "ready_timeout", pid: true},
	"waiting":       {bare: true, job: true},
	"backoff":       {bare: true, job: true},
}

// eventNames returns the names of the event what about job j and process
// p, primary first. The job forms need j and the pid form needs p: a
// commit's spawn (j nil) is "spawn" only, as in 0.5.2, and a kill is the
// job's (p nil) or one process's (j nil).
func eventNames(what string, j *job, p *Process) []string {
	f, ok := evForms[what]
	if !ok {
		f = evForm{bare: true}
	}
	names := make([]string, 0, 8)
	if f.bare {
		names = append(names, what)
	}
	names = append(names, f.aliases...)
	if j != nil && f.job {
		names = append(names, "job."+j.full+"."+what)
	}
	if j != nil && f.proc != "" {
		names = append(names, "proc."+j.full+"."+f.proc)
	}
	if p != nil && f.pid {
		names = append(names, procEvent(p.ID, what))
	}
	if j != nil && j.session == "default" && !strings.Contains(j.name, ".") {
		if f.job {
			names = append(names, "job."+j.name+"."+what)
		}
		if f.proc != "" && !isDigits(j.name) {
			names = append(names, "proc."+j.name+"."+f.proc)
		}
	}
	return names
}

// emit publishes one happening (what, about job j and process p, either
// may be nil) with the payload kv (key, value pairs) under all its names.
// The manager lock is held.
func (m *Manager) emit(what string, j *job, p *Process, kv ...any) {
	m.gen++ // every change of state publishes: cached views are stale now
	m.infoChangedLocked(j, p)
	data := make(map[string]any, len(kv)/2+1)
	for i := 0; i+1 < len(kv); i += 2 {
		data[kv[i].(string)] = kv[i+1]
	}
	m.bus.publish(eventNames(what, j, p), data)
}

func procEvent(pid int, what string) string {
	return "proc." + itoa(pid) + "." + what
}
