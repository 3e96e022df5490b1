package gaffer

// Dependencies between jobs (depends_on, restart_with).
//
// A name is a job of the same session, else session.job (a job of the
// session whose name is exactly the name wins: job names may hold dots).
// An unknown name, a job that depends on itself and a cycle are refused
// when the job loads (the API: a 400 naming the jobs; a configuration
// file: file:line of the depends_on or restart_with key), so a file's
// jobs load dependencies first (orderJobs), in priority order otherwise,
// and so do the jobs gafferd restores at start (restoreOrder). Through
// the API a restart_with name may be a job not loaded yet.
//
// A running job spawns only while its dependencies hold, each for every
// process its dependency wants: started (spawned), ready, healthy (ready
// without a health setting) or completed (a process exited with a success
// since the dependency's last start). Until then it is waiting and says
// for which; every change that may make a condition hold (a spawn, a
// ready, a healthy, a completion) looks at the jobs that depend on the
// job at once: there is no polling. Processes already running are never
// stopped because a dependency no longer holds: a dependency that
// restarts leaves its dependents running, unless they name it in
// restart_with (respawn.go).
//
// Stops run dependents first: a job stopped while a job that depends on
// it is stopping too keeps its processes until those of the dependent
// exited (at shutdown, and when several jobs are stopped or unloaded).

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// resolvedDep is a depends_on entry with its job's full name.
type resolvedDep struct {
	full, cond string
}

// resolveJobName finds the job a depends_on or restart_with name of a job
// of session sid means, among the full names known.
func resolveJobName(name, sid string, known func(full string) bool) (string, bool) {
	if known(sid + "." + name) {
		return sid + "." + name, true
	}
	if strings.Contains(name, ".") && known(name) {
		return name, true
	}
	return "", false
}

// checkDepsLocked resolves the depends_on and restart_with of a job of
// session sid against the loaded jobs and refuses unknown names and
// cycles. self is the job's full name.
func (m *Manager) checkDepsLocked(sid string, cfg *JobConfig) ([]resolvedDep, []string, error) {
	self := sid + "." + cfg.Name
	known := func(full string) bool {
		if full == self {
			return true
		}
		_, err := m.jobLocked(full)
		return err == nil
	}
	refs, err := parseDependsOn(cfg.DependsOn)
	if err != nil {
		return nil, nil, err
	}
	var deps []resolvedDep
	for _, r := range refs {
		full, ok := resolveJobName(r.name, sid, known)
		if !ok {
			return nil, nil, errBadRequest("depends_on: no job %s is loaded (load the jobs it depends on first)", quoteName(r.name))
		}
		if full == self {
			return nil, nil, errBadRequest("depends_on: %s depends on itself", self)
		}
		deps = append(deps, resolvedDep{full, r.cond})
	}
	var with []string
	for _, n := range cfg.RestartWith {
		full, ok := resolveJobName(n, sid, known)
		if !ok {
			// Not loaded (yet): the job of that name whenever it is.
			full = sid + "." + n
			if strings.Contains(n, ".") {
				full = n
			}
		}
		if full == self {
			return nil, nil, errBadRequest("restart_with: %s names itself", self)
		}
		with = append(with, full)
	}
	edges := func(kind string) func(full string) []string {
		return func(full string) []string {
			if full == self {
				if kind == "depends_on" {
					return depNames(deps)
				}
				return with
			}
			j, err := m.jobLocked(full)
			if err != nil {
				return nil
			}
			if kind == "depends_on" {
				return depNames(j.lj.deps)
			}
			return j.lj.restartWith
		}
	}
	for _, kind := range []string{"depends_on", "restart_with"} {
		if cycle := findCycle(self, edges(kind)); cycle != nil {
			return nil, nil, errBadRequest("%s: a cycle: %s", kind, strings.Join(cycle, " → "))
		}
	}
	return deps, with, nil
}

func depNames(deps []resolvedDep) []string {
	out := make([]string, len(deps))
	for i, d := range deps {
		out[i] = d.full
	}
	return out
}

// findCycle returns a path from start back to start through edges, or
// nil when there is none.
func findCycle(start string, edges func(string) []string) []string {
	var path []string
	done := map[string]bool{}
	var walk func(n string) bool
	walk = func(n string) bool {
		path = append(path, n)
		for _, e := range edges(n) {
			if e == start {
				path = append(path, e)
				return true
			}
			if !done[e] && !slices.Contains(path, e) && walk(e) {
				return true
			}
		}
		done[n] = true
		path = path[:len(path)-1]
		return false
	}
	if walk(start) {
		return path
	}
	return nil
}

// dependentsLocked refuses to unload a job that other jobs depend on
// (they could not be restored without it): they must go first.
func (m *Manager) dependentsLocked(j *job) error {
	var names []string
	for _, sid := range m.sessionOrder {
		s := m.sessions[sid]
		for _, n := range s.order {
			for _, d := range s.jobs[n].lj.deps {
				if d.full == j.full {
					names = append(names, s.jobs[n].full)
				}
			}
		}
	}
	if len(names) > 0 {
		return Errorf(CodeConflict, 409, "%s: %s depend on it (depends_on): unload them first", j.full, strings.Join(names, ", "))
	}
	return nil
}

// depsHoldLocked says whether every dependency of j holds; when one does
// not, j is waiting for it (the waiting event says so once per change).
func (m *Manager) depsHoldLocked(j *job) bool {
	for _, d := range j.lj.deps {
		if ok, why := m.depHoldsLocked(d); !ok {
			what := d.full + ":" + d.cond + " (" + why + ")"
			if j.lj.waitingFor != what {
				j.lj.waitingFor = what
				m.emit("waiting", j, nil, "name", j.full, "waiting_for", what)
			}
			return false
		}
	}
	if j.lj.waitingFor != "" {
		j.lj.waitingFor = ""
		m.gen++
	}
	return true
}

// depHoldsLocked tells whether one dependency holds, and if not why.
func (m *Manager) depHoldsLocked(d resolvedDep) (bool, string) {
	dj, err := m.jobLocked(d.full)
	if err != nil {
		return false, "not loaded"
	}
	if d.cond == depCompleted {
		if dj.lj.completed {
			return true, ""
		}
		return false, "not completed yet"
	}
	if dj.state != JobRunning {
		return false, dj.state
	}
	want := dj.target - dj.lj.finished
	if want <= 0 {
		return false, "no process to run"
	}
	n := 0
	for _, p := range dj.procs {
		lc := p.lc
		switch {
		case d.cond == depStarted, lc == nil:
			n++
		case d.cond == depReady || dj.cfg.Health == "":
			if lc.ready {
				n++
			}
		case lc.healthState == healthHealthy:
			n++
		}
	}
	if n >= want {
		return true, ""
	}
	return false, fmt.Sprintf("%d of %d", n, want)
}

// depsChangedLocked looks at the running jobs that depend on j, now that
// a condition of j may hold.
func (m *Manager) depsChangedLocked(j *job) {
	for _, sid := range m.sessionOrder {
		s := m.sessions[sid]
		for _, n := range s.order {
			x := s.jobs[n]
			if x.state != JobRunning || x == j {
				continue
			}
			for _, d := range x.lj.deps {
				if d.full == j.full {
					m.manageLocked(x)
					break
				}
			}
		}
	}
}

// deferStopLocked keeps the processes of a job being stopped until the
// stopping jobs that depend on it have no process left: it cancels the
// job's spawns and reports true when the stop must wait
// (releaseStopsLocked ends it).
func (m *Manager) deferStopLocked(j *job) bool {
	if !m.stopBlockedLocked(j) {
		return false
	}
	m.cancelSpawnsLocked(j)
	if !j.lj.stopPending {
		j.lj.stopPending = true
		m.life.pending = append(m.life.pending, j)
	}
	return true
}

// stopBlockedLocked says whether a job that depends on j and is being
// stopped too (at shutdown every job is) still has processes.
func (m *Manager) stopBlockedLocked(j *job) bool {
	for _, set := range []map[int]*Process{m.procs, m.stopping} {
		for id := range set {
			x := m.procJob[id]
			if x == nil || x == j || !m.shutdown && x.state == JobRunning && !x.removed {
				continue
			}
			for _, d := range x.lj.deps {
				if d.full == j.full {
					return true
				}
			}
		}
	}
	return false
}

// releaseStopsLocked stops the processes of the deferred stops that no
// dependent holds back any more (after every exit). A job started again
// meanwhile keeps its processes.
func (m *Manager) releaseStopsLocked() {
	if len(m.life.pending) == 0 {
		return
	}
	var keep []*job
	var ready []*job
	for _, j := range m.life.pending {
		switch {
		case j.state == JobRunning && !j.removed:
			j.lj.stopPending = false
		case m.stopBlockedLocked(j):
			keep = append(keep, j)
		default:
			ready = append(ready, j)
		}
	}
	m.life.pending = keep
	for _, j := range ready {
		j.lj.stopPending = false
		if m.shutdown {
			m.shutdownProcsLocked(j)
		} else {
			m.stopAllProcsLocked(j)
			m.esc.addJob(m.instance, j.full, j.cfg.GracefulTimeout)
		}
	}
}

// orderJobs checks the dependencies of a configuration's jobs (unknown
// names and cycles are errors at the line of their key) and orders the
// jobs so that each loads after those it depends on, in priority order
// otherwise (the order they are in).
func (l *cfgLoader) orderJobs() error {
	byPriority := make([]int, len(l.jobs))
	for i := range byPriority {
		byPriority[i] = i
	}
	sort.SliceStable(byPriority, func(a, b int) bool {
		return l.jobs[byPriority[a]].Config.Priority < l.jobs[byPriority[b]].Config.Priority
	})
	sorted, sortedSecs := make([]SessionJob, len(l.jobs)), make([]cfgSection, len(l.jobs))
	for k, i := range byPriority {
		sorted[k], sortedSecs[k] = l.jobs[i], l.jobSecs[i]
	}
	l.jobs, l.jobSecs = sorted, sortedSecs
	index := map[string]int{}
	for i := range l.jobs {
		index[l.jobs[i].FullName()] = i
	}
	known := func(full string) bool { _, ok := index[full]; return ok }
	edges := make([][]int, len(l.jobs)) // the jobs each job waits for (depends_on)
	names := make([][]string, len(l.jobs))
	with := make([][]string, len(l.jobs))
	for i := range l.jobs {
		sj := &l.jobs[i]
		fail := func(format string, args ...any) error {
			return cfgJobError(l.jobSecs[i].file, l.jobSecs[i].sec, errBadRequest(format, args...))
		}
		refs, _ := parseDependsOn(sj.Config.DependsOn) // checked with the section
		for _, r := range refs {
			full, ok := resolveJobName(r.name, sj.Session, known)
			if !ok {
				return fail("depends_on: no job %s in the configuration (write job or session.job)", quoteName(r.name))
			}
			if full == sj.FullName() {
				return fail("depends_on: %s depends on itself", full)
			}
			edges[i] = append(edges[i], index[full])
			names[i] = append(names[i], full)
		}
		for _, n := range sj.Config.RestartWith {
			full, ok := resolveJobName(n, sj.Session, known)
			if !ok {
				return fail("restart_with: no job %s in the configuration", quoteName(n))
			}
			if full == sj.FullName() {
				return fail("restart_with: %s names itself", full)
			}
			with[i] = append(with[i], full)
		}
	}
	for _, kind := range []string{"depends_on", "restart_with"} {
		for i := range l.jobs {
			lists := names
			if kind == "restart_with" {
				lists = with
			}
			cycle := findCycle(l.jobs[i].FullName(), func(full string) []string { return lists[index[full]] })
			if cycle != nil {
				return cfgJobError(l.jobSecs[i].file, l.jobSecs[i].sec,
					errBadRequest("%s: a cycle: %s", kind, strings.Join(cycle, " → ")))
			}
		}
	}
	order := depOrder(edges)
	jobs := make([]SessionJob, len(order))
	secs := make([]cfgSection, len(order))
	for k, i := range order {
		jobs[k], secs[k] = l.jobs[i], l.jobSecs[i]
	}
	l.jobs, l.jobSecs = jobs, secs
	return nil
}

// depOrder orders n jobs so that each comes after the jobs of its edges,
// keeping their order otherwise: the first job whose dependencies are
// placed, again and again. (A cycle, refused before, would place the
// rest in their order.)
func depOrder(edges [][]int) []int {
	placed := make([]bool, len(edges))
	order := make([]int, 0, len(edges))
	for len(order) < len(edges) {
		found := false
		for i := range edges {
			if placed[i] {
				continue
			}
			ok := true
			for _, e := range edges[i] {
				ok = ok && placed[e]
			}
			if ok {
				placed[i], found = true, true
				order = append(order, i)
				break
			}
		}
		if !found {
			for i := range edges {
				if !placed[i] {
					placed[i] = true
					order = append(order, i)
				}
			}
		}
	}
	return order
}

// restoreOrder orders the jobs gafferd restores at start so that each
// loads after the jobs it depends on (a job of one session may depend on
// a session made after it), in their order otherwise.
func restoreOrder(jobs []RestoreJob) []RestoreJob {
	index := map[string]int{}
	for i := range jobs {
		index[jobs[i].FullName()] = i
	}
	known := func(full string) bool { _, ok := index[full]; return ok }
	edges := make([][]int, len(jobs))
	for i := range jobs {
		refs, _ := parseDependsOn(jobs[i].Config.DependsOn)
		for _, r := range refs {
			if full, ok := resolveJobName(r.name, jobs[i].Session, known); ok && full != jobs[i].FullName() {
				edges[i] = append(edges[i], index[full])
			}
		}
	}
	out := make([]RestoreJob, 0, len(jobs))
	for _, i := range depOrder(edges) {
		out = append(out, jobs[i])
	}
	return out
}
