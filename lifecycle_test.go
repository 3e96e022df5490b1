package gaffer

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// stampLine is one line a lifecycle child recorded.
type stampLine struct {
	tag, what string
	ns        int64
	osPid     int
}

func readStamps(t *testing.T, path string) []stampLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []stampLine
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(l)
		if len(f) != 4 {
			continue
		}
		ns, _ := strconv.ParseInt(f[2], 10, 64)
		pid, _ := strconv.Atoi(f[3])
		out = append(out, stampLine{f[0], f[1], ns, pid})
	}
	return out
}

// firstStamp returns the first line of tag and what (zero when none).
func firstStamp(lines []stampLine, tag, what string) stampLine {
	for _, l := range lines {
		if l.tag == tag && l.what == what {
			return l
		}
	}
	return stampLine{}
}

func countStamps(lines []stampLine, tag, what string) int {
	n := 0
	for _, l := range lines {
		if l.tag == tag && l.what == what {
			n++
		}
	}
	return n
}

// lifeConfig is a child job recording its stamps in stamps.
func lifeConfig(t *testing.T, name, mode, stamps string, env map[string]string) JobConfig {
	t.Helper()
	e := map[string]string{"STAMPS": stamps, "TAG": name}
	for k, v := range env {
		e[k] = v
	}
	cfg := childConfig(t, name, mode, e)
	cfg.GracefulTimeout = 5 * time.Second
	return cfg
}

func jobState(t *testing.T, m *Manager, full string) JobInfo {
	t.Helper()
	info, err := m.JobInfo(full, true)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// A dependent's spawn comes after its dependency's READY=1, by the
// children's own clocks; meanwhile it is waiting and says for what.
func TestReadyNotifyOrdersDependentSpawn(t *testing.T) {
	m := newTestManager(t)
	stamps := filepath.Join(t.TempDir(), "stamps")
	db := lifeConfig(t, "db", "notifyready", stamps, map[string]string{"DELAY": "300", "STATUS": "accepting connections"})
	db.Ready = "notify"
	app := lifeConfig(t, "app", "stamp", stamps, nil)
	app.DependsOn = []string{"db"}
	sub := m.Events().Subscribe(64, "job.app.waiting", "proc.db.ready", "job.app.spawn")
	defer sub.Unsubscribe()
	if err := m.Load("default", db, nil, true); err != nil {
		t.Fatal(err)
	}
	if err := m.Load("default", app, nil, true); err != nil {
		t.Fatal(err)
	}
	info := jobState(t, m, "default.app")
	if info.State != jobWaiting || !strings.Contains(info.WaitingFor, "default.db:ready") || len(info.Processes) != 0 {
		t.Fatalf("app before db is ready: state %q waiting_for %q processes %v", info.State, info.WaitingFor, info.Processes)
	}
	if st := jobState(t, m, "default.db").State; st != jobStarting {
		t.Fatalf("db before READY=1: state %q, want starting", st)
	}
	var names []string
	for len(names) < 3 {
		select {
		case ev := <-sub.C:
			names = append(names, ev.Name)
		case <-time.After(10 * time.Second):
			t.Fatalf("events so far %v", names)
		}
	}
	if strings.Join(names, " ") != "job.app.waiting proc.db.ready job.app.spawn" {
		t.Fatalf("events %v", names)
	}
	waitFor(t, 10*time.Second, "app spawned", func() bool { return firstStamp(readStamps(t, stamps), "app", "spawn").ns != 0 })
	lines := readStamps(t, stamps)
	ready, spawn := firstStamp(lines, "db", "ready"), firstStamp(lines, "app", "spawn")
	if ready.ns == 0 || spawn.ns <= ready.ns {
		t.Fatalf("db ready at %d, app spawned at %d: the dependent started first (%v)", ready.ns, spawn.ns, lines)
	}
	dbi := jobState(t, m, "default.db")
	if dbi.State != jobReady || dbi.Ready != 1 || len(dbi.ProcessStates) != 1 ||
		dbi.ProcessStates[0].Status != "accepting connections" || dbi.ProcessStates[0].State != procReady {
		t.Fatalf("db info: %+v", dbi)
	}
	pi, err := m.ProcessInfo(dbi.Processes[0], true)
	if err != nil || !pi.Ready || pi.Status != "accepting connections" || pi.Env["NOTIFY_SOCKET"] == "" {
		t.Fatalf("db process info: %+v %v", pi, err)
	}
	if st, err := os.Stat(pi.Env["NOTIFY_SOCKET"]); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("notify socket: %v %v", st, err)
	}
	if ai := jobState(t, m, "default.app"); ai.State != JobRunning || ai.WaitingFor != "" {
		t.Fatalf("app once started: %q %q", ai.State, ai.WaitingFor)
	}
}

// ready = tcp: the dependent's spawn comes after the port is open.
func TestReadyTCPOrdersDependentSpawn(t *testing.T) {
	m := newTestManager(t)
	stamps := filepath.Join(t.TempDir(), "stamps")
	port := freePort(t)
	db := lifeConfig(t, "db", "listen", stamps, map[string]string{"DELAY": "400", "PORT": strconv.Itoa(port)})
	db.Ready = "tcp:127.0.0.1:$PORT"
	app := lifeConfig(t, "app", "stamp", stamps, nil)
	app.DependsOn = []string{"default.db:ready"}
	for _, c := range []JobConfig{db, app} {
		if err := m.Load("default", c, nil, true); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "app spawned", func() bool { return firstStamp(readStamps(t, stamps), "app", "spawn").ns != 0 })
	lines := readStamps(t, stamps)
	open, spawn := firstStamp(lines, "db", "listening"), firstStamp(lines, "app", "spawn")
	if open.ns == 0 || spawn.ns <= open.ns {
		t.Fatalf("db listening at %d, app spawned at %d (%v)", open.ns, spawn.ns, lines)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ready = log:REGEX: a line of the output.
func TestReadyLogLine(t *testing.T) {
	m := newTestManager(t)
	stamps := filepath.Join(t.TempDir(), "stamps")
	c := lifeConfig(t, "web", "printready", stamps, map[string]string{"DELAY": "200"})
	c.Ready = "log:server listening"
	c.RedirectOutput = []string{"out", "err"}
	sub := m.Events().Subscribe(8, "proc.web.ready")
	defer sub.Unsubscribe()
	if err := m.Load("default", c, nil, true); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-sub.C:
		if ev.Data["by"] != "log" {
			t.Fatalf("ready event %v", ev.Data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("never ready")
	}
	if st := jobState(t, m, "default.web").State; st != jobReady {
		t.Fatalf("state %q", st)
	}
}

// A job waiting for a completed dependency (a migration) starts once it
// exited 0; the migration, restart = never, is completed.
func TestCompletedDependency(t *testing.T) {
	m := newTestManager(t)
	stamps := filepath.Join(t.TempDir(), "stamps")
	mig := lifeConfig(t, "migrate", "exitafter", stamps, map[string]string{"DELAY": "300", "EXIT_CODE": "0"})
	mig.Restart = restartNever
	app := lifeConfig(t, "app", "stamp", stamps, nil)
	app.DependsOn = []string{"migrate:completed"}
	for _, c := range []JobConfig{mig, app} {
		if err := m.Load("default", c, nil, true); err != nil {
			t.Fatal(err)
		}
	}
	if st := jobState(t, m, "default.app").State; st != jobWaiting {
		t.Fatalf("app: %q", st)
	}
	waitFor(t, 10*time.Second, "app spawned", func() bool { return firstStamp(readStamps(t, stamps), "app", "spawn").ns != 0 })
	lines := readStamps(t, stamps)
	if exit, spawn := firstStamp(lines, "migrate", "exit"), firstStamp(lines, "app", "spawn"); spawn.ns <= exit.ns {
		t.Fatalf("migrate exited at %d, app spawned at %d", exit.ns, spawn.ns)
	}
	waitFor(t, 5*time.Second, "migrate completed", func() bool { return jobState(t, m, "default.migrate").State == jobCompleted })
	if n := countStamps(readStamps(t, stamps), "migrate", "spawn"); n != 1 {
		t.Fatalf("migrate ran %d times (restart = never)", n)
	}
}

// A failed run under restart = on-failure is replaced, a success is not.
func TestRestartOnFailure(t *testing.T) {
	m := newTestManager(t)
	stamps := filepath.Join(t.TempDir(), "stamps")
	c := lifeConfig(t, "task", "exitafter", stamps, map[string]string{"DELAY": "50", "EXIT_CODE": "3"})
	c.Restart, c.SuccessExitCodes = restartOnFailure, []int{0, 3}
	if err := m.Load("default", c, nil, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "completed", func() bool { return jobState(t, m, "default.task").State == jobCompleted })
	c.Name, c.SuccessExitCodes = "failing", nil
	if err := m.Load("default", c, nil, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "3 runs of failing", func() bool { return countStamps(readStamps(t, stamps), "task", "spawn") >= 4 })
	if info := jobState(t, m, "default.task"); info.Restarts != 0 {
		t.Fatalf("the successful job was restarted: %+v", info)
	}
}

// Dependencies are resolved at load: unknown names, a job naming itself
// and cycles are refused with the names; in a file, at file:line.
func TestDependencyCycleRefused(t *testing.T) {
	m := newTestManager(t)
	a := childConfig(t, "a", "sleep", nil)
	a.DependsOn = []string{"b"}
	err := m.Load("default", a, nil, false)
	if err == nil || !strings.Contains(err.Error(), `no job "b"`) {
		t.Fatalf("unknown dependency: %v", err)
	}
	a.DependsOn = []string{"a:started"}
	if err := m.Load("default", a, nil, false); err == nil || !strings.Contains(err.Error(), "depends on itself") {
		t.Fatalf("self dependency: %v", err)
	}
	a.DependsOn = nil
	if err := m.Load("default", a, nil, false); err != nil {
		t.Fatal(err)
	}
	b := childConfig(t, "b", "sleep", nil)
	b.DependsOn = []string{"a"}
	if err := m.Load("default", b, nil, false); err != nil {
		t.Fatal(err)
	}
	a.DependsOn = []string{"default.b:started"}
	err = m.Update("default", a, nil, false)
	if err == nil || !strings.Contains(err.Error(), "default.a → default.b → default.a") {
		t.Fatalf("cycle: %v", err)
	}
	if AsError(err).Errno != 400 {
		t.Fatalf("status %d", AsError(err).Errno)
	}

	dir := t.TempDir()
	ini := "[process:a]\ncmd = sleep 1\ndepends_on = c\n\n[process:b]\ncmd = sleep 1\ndepends_on = a\n\n[process:c]\ncmd = sleep 1\ndepends_on = b:started\n"
	path := filepath.Join(dir, "gafferd.ini")
	os.WriteFile(path, []byte(ini), 0o644)
	_, err = LoadConfig(path)
	if err == nil || !strings.Contains(err.Error(), path+":3") ||
		!strings.Contains(err.Error(), "default.a → default.c → default.b → default.a") {
		t.Fatalf("cycle in a file: %v", err)
	}
	os.WriteFile(path, []byte("[process:a]\ncmd = sleep 1\n\n[process:b]\ncmd = sleep 1\nrestart_with = nope\n"), 0o644)
	if _, err = LoadConfig(path); err == nil || !strings.Contains(err.Error(), path+":6") || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("unknown name in a file: %v", err)
	}
	// Dependencies first, priority order otherwise.
	os.WriteFile(path, []byte("[process:web]\ncmd = x\npriority = 1\ndepends_on = db\n\n[process:db]\ncmd = x\npriority = 5\n\n[process:cron]\ncmd = x\npriority = 2\n"), 0o644)
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, j := range c.Jobs {
		order = append(order, j.Config.Name)
	}
	if strings.Join(order, " ") != "cron db web" {
		t.Fatalf("load order %v", order)
	}
}

// Stops run dependents first: at shutdown and when jobs are stopped one
// after the other, a dependency gets its SIGTERM after its dependent
// exited.
func TestStopOrderDependentsFirst(t *testing.T) {
	for _, how := range []string{"shutdown", "stop"} {
		t.Run(how, func(t *testing.T) {
			m := NewManager(Options{})
			stamps := filepath.Join(t.TempDir(), "stamps")
			env := map[string]string{"TERM_DELAY": "300"}
			db := lifeConfig(t, "db", "stamp", stamps, env)
			app := lifeConfig(t, "app", "stamp", stamps, env)
			app.DependsOn = []string{"db:started"}
			web := lifeConfig(t, "web", "stamp", stamps, env)
			web.DependsOn = []string{"app:started"}
			for _, c := range []JobConfig{db, app, web} {
				if err := m.Load("default", c, nil, true); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, 10*time.Second, "3 spawned", func() bool {
				l := readStamps(t, stamps)
				return firstStamp(l, "web", "spawn").ns != 0 && firstStamp(l, "app", "spawn").ns != 0 && firstStamp(l, "db", "spawn").ns != 0
			})
			if how == "shutdown" {
				if err := m.Shutdown(t.Context()); err != nil {
					t.Fatal(err)
				}
			} else {
				for _, n := range []string{"web", "app", "db"} {
					if err := m.StopJob("default." + n); err != nil {
						t.Fatal(err)
					}
				}
				waitFor(t, 20*time.Second, "all gone", func() bool {
					m.mu.Lock()
					defer m.mu.Unlock()
					return len(m.procs) == 0 && len(m.stopping) == 0
				})
				m.Shutdown(t.Context())
			}
			l := readStamps(t, stamps)
			webTerm, appTerm, dbTerm := firstStamp(l, "web", "term"), firstStamp(l, "app", "term"), firstStamp(l, "db", "term")
			if webTerm.ns == 0 || appTerm.ns == 0 || dbTerm.ns == 0 {
				t.Fatalf("not every process got SIGTERM: %v", l)
			}
			// Each gets its SIGTERM once the one above it exited, 300 ms
			// after its own SIGTERM.
			if !(webTerm.ns < appTerm.ns && appTerm.ns < dbTerm.ns) {
				t.Fatalf("SIGTERM order web %d, app %d, db %d: dependents must stop first", webTerm.ns, appTerm.ns, dbTerm.ns)
			}
			if alive(webTerm.osPid) || alive(dbTerm.osPid) {
				t.Fatal("processes left")
			}
		})
	}
}

// A process that stops sending WATCHDOG=1 gets SIGABRT and is handled as
// a crash: replaced, counted in restarts.
func TestWatchdogTimeout(t *testing.T) {
	m := newTestManager(t)
	stamps := filepath.Join(t.TempDir(), "stamps")
	c := lifeConfig(t, "wd", "notifyready", stamps, map[string]string{"PINGS": "3", "PING": "100"})
	c.Ready, c.Watchdog = "notify", 500*time.Millisecond
	sub := m.Events().Subscribe(16, "proc.wd.watchdog", "job.wd.spawn")
	defer sub.Unsubscribe()
	if err := m.Load("default", c, nil, true); err != nil {
		t.Fatal(err)
	}
	first := onlyProcess(t, m, "default.wd")
	if first.Env["WATCHDOG_USEC"] != "500000" || first.Env["WATCHDOG_PID"] != strconv.Itoa(first.OSPid) {
		t.Fatalf("WATCHDOG_USEC=%q WATCHDOG_PID=%q (pid %d)", first.Env["WATCHDOG_USEC"], first.Env["WATCHDOG_PID"], first.OSPid)
	}
	deadline := time.After(15 * time.Second)
	var got []string
	for len(got) < 3 {
		select {
		case ev := <-sub.C:
			got = append(got, ev.Name)
		case <-deadline:
			t.Fatalf("events %v", got)
		}
	}
	if strings.Join(got, " ") != "job.wd.spawn proc.wd.watchdog job.wd.spawn" {
		t.Fatalf("events %v", got)
	}
	l := readStamps(t, stamps)
	stopped, abort := firstStamp(l, "wd", "pings-stopped"), firstStamp(l, "wd", "abort")
	if wp := firstStamp(l, "wd", "watchdog-pid-ok"); wp.osPid != first.OSPid {
		t.Fatalf("the child did not see WATCHDOG_PID as its own pid: stamps %v", l)
	}
	if countStamps(l, "wd", "ping") < 3 || abort.ns == 0 || abort.ns < stopped.ns || abort.osPid != first.OSPid {
		t.Fatalf("stamps %v", l)
	}
	info := jobState(t, m, "default.wd")
	if info.Restarts != 1 || info.LastExitInfo == nil || info.LastExitInfo.ExitStatus != 134 {
		t.Fatalf("info %+v", info)
	}
}

// The real systemd-notify, run by the job's shell: ready, with its
// status line (its BARRIER=1 answered, so it returns).
func TestReadyWithSystemdNotify(t *testing.T) {
	bin, err := exec.LookPath("systemd-notify")
	if err != nil {
		t.Skip("no systemd-notify on this machine")
	}
	m := newTestManager(t)
	c := NewJobConfig("sd", bin+` --ready --status="serving 3 clients"; echo notified; exec sleep 1000`)
	c.Shell, c.Ready, c.ReadyTimeout, c.GracefulTimeout = true, "notify", 20*time.Second, time.Second
	c.RedirectOutput = []string{"out", "out"}
	sub := m.Events().Subscribe(8, "proc.sd.ready")
	defer sub.Unsubscribe()
	if err := m.Load("default", c, nil, true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.C:
	case <-time.After(20 * time.Second):
		t.Fatal("systemd-notify --ready did not make the process ready")
	}
	p := onlyProcess(t, m, "default.sd")
	st, _ := p.Stream("out")
	waitFor(t, 10*time.Second, "systemd-notify returned", func() bool {
		chunks, _ := st.Backlog(0)
		var all []byte
		for _, c := range chunks {
			all = append(all, c.Data...)
		}
		return strings.Contains(string(all), "notified")
	})
	if ps := jobState(t, m, "default.sd").ProcessStates; len(ps) != 1 || ps[0].Status != "serving 3 clients" {
		t.Fatalf("states %+v", ps)
	}
}

// A process of another job that found the socket cannot make this one
// ready: its credentials are not of this process's tree.
func TestNotifyRefusesOtherJobs(t *testing.T) {
	m := newTestManager(t)
	stamps := filepath.Join(t.TempDir(), "stamps")
	victim := lifeConfig(t, "victim", "stamp", stamps, nil)
	victim.Ready = "notify"
	if err := m.Load("default", victim, nil, true); err != nil {
		t.Fatal(err)
	}
	vp := onlyProcess(t, m, "default.victim")
	spoof := lifeConfig(t, "spoof", "notifyother", stamps, map[string]string{"TARGET": vp.Env["NOTIFY_SOCKET"]})
	if err := m.Load("default", spoof, nil, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "refused", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return vp.lc.refused > 0
	})
	if firstStamp(readStamps(t, stamps), "spoof", "sent").ns == 0 {
		t.Fatal("the spoofer did not send")
	}
	info := jobState(t, m, "default.victim")
	if info.State != jobStarting || info.ProcessStates[0].Status != "" {
		t.Fatalf("victim: %+v", info)
	}
}

// A process not ready within ready_timeout is stopped and counts as a
// failed start (flapping sees it).
func TestReadyTimeoutIsAFailedStart(t *testing.T) {
	m := newTestManager(t)
	stamps := filepath.Join(t.TempDir(), "stamps")
	c := lifeConfig(t, "slow", "stamp", stamps, nil)
	c.Ready, c.ReadyTimeout = "notify", 300*time.Millisecond
	f := FlapConfig{Attempts: 2, Window: 30, RetryIn: 30, MaxRetry: 0}
	c.Flapping = &f
	sub := m.Events().Subscribe(16, "proc.slow.ready_timeout", "job.slow.flap")
	defer sub.Unsubscribe()
	if err := m.Load("default", c, nil, true); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 3 {
		select {
		case ev := <-sub.C:
			got = append(got, ev.Name)
		case <-time.After(15 * time.Second):
			t.Fatalf("events %v", got)
		}
	}
	if strings.Join(got, " ") != "proc.slow.ready_timeout proc.slow.ready_timeout job.slow.flap" {
		t.Fatalf("events %v", got)
	}
	waitFor(t, 15*time.Second, "gave up", func() bool { return jobState(t, m, "default.slow").State == JobGaveUp })
	waitFor(t, 15*time.Second, "both stopped", func() bool { return countStamps(readStamps(t, stamps), "slow", "term") == 2 })
	l := readStamps(t, stamps)
	if countStamps(l, "slow", "spawn") != 2 {
		t.Fatalf("stamps %v", l)
	}
}

// ready = http://…: a 2xx answer; the dependent's spawn comes after the
// child's first 200.
func TestReadyHTTPOrdersDependentSpawn(t *testing.T) {
	m := newTestManager(t)
	stamps := filepath.Join(t.TempDir(), "stamps")
	api := lifeConfig(t, "api", "httpready", stamps, map[string]string{"DELAY": "400", "PORT": strconv.Itoa(freePort(t))})
	api.Ready = "http://127.0.0.1:$PORT/ready"
	app := lifeConfig(t, "app", "stamp", stamps, nil)
	app.DependsOn = []string{"api"}
	for _, c := range []JobConfig{api, app} {
		if err := m.Load("default", c, nil, true); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "app spawned", func() bool { return firstStamp(readStamps(t, stamps), "app", "spawn").ns != 0 })
	l := readStamps(t, stamps)
	if ok, spawn := firstStamp(l, "api", "http-ok"), firstStamp(l, "app", "spawn"); ok.ns == 0 || spawn.ns <= ok.ns {
		t.Fatalf("api answered 200 at %d, app spawned at %d", ok.ns, spawn.ns)
	}
}

// A dependency that restarts leaves its dependents running, except those
// that restart_with it: they restart once it is ready again.
func TestRestartWith(t *testing.T) {
	m := newTestManager(t)
	stamps := filepath.Join(t.TempDir(), "stamps")
	db := lifeConfig(t, "db", "notifyready", stamps, map[string]string{"DELAY": "200"})
	db.Ready = "notify"
	app := lifeConfig(t, "app", "stamp", stamps, nil)
	app.DependsOn = []string{"db"}
	worker := lifeConfig(t, "worker", "stamp", stamps, nil)
	worker.DependsOn, worker.RestartWith = []string{"db"}, []string{"db"}
	for _, c := range []JobConfig{db, app, worker} {
		if err := m.Load("default", c, nil, true); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "all three", func() bool {
		l := readStamps(t, stamps)
		return firstStamp(l, "app", "spawn").ns != 0 && firstStamp(l, "worker", "spawn").ns != 0
	})
	appPid, workerPid := onlyProcess(t, m, "default.app").OSPid, onlyProcess(t, m, "default.worker").OSPid
	if err := m.ReloadJob("default.db"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "worker restarted", func() bool { return countStamps(readStamps(t, stamps), "worker", "spawn") == 2 })
	l := readStamps(t, stamps)
	var dbReady2, workerSpawn2 stampLine
	for _, s := range l {
		if s.tag == "db" && s.what == "ready" {
			dbReady2 = s
		}
		if s.tag == "worker" && s.what == "spawn" {
			workerSpawn2 = s
		}
	}
	if workerSpawn2.ns <= dbReady2.ns || countStamps(l, "db", "ready") != 2 {
		t.Fatalf("the worker came back at %d, before db was ready again at %d (%v)", workerSpawn2.ns, dbReady2.ns, l)
	}
	if p := onlyProcess(t, m, "default.app"); p.OSPid != appPid || countStamps(l, "app", "spawn") != 1 {
		t.Fatalf("app was restarted (%d → %d)", appPid, p.OSPid)
	}
	if alive(workerPid) && firstStamp(l, "worker", "term").osPid != workerPid {
		t.Fatalf("the old worker %d was not stopped", workerPid)
	}
}

// The socket directory of a gafferd that was killed (its pid is gone) is
// removed when the next one makes its own; a live one's is kept.
func TestStaleNotifyDirsRemoved(t *testing.T) {
	dead := exec.Command("/bin/true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(os.TempDir(), "gaffer-notify-"+strconv.Itoa(dead.Process.Pid)+"-test")
	live := filepath.Join(os.TempDir(), "gaffer-notify-1-test") // init never goes away
	for _, d := range []string{stale, live} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	defer os.RemoveAll(live)
	defer os.RemoveAll(stale)
	m := newTestManager(t)
	c := childConfig(t, "n", "sleep", nil)
	c.Ready = "notify"
	if err := m.Load("default", c, nil, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale directory kept: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("a live gafferd's directory removed: %v", err)
	}
	dir := filepath.Dir(onlyProcess(t, m, "default.n").Env["NOTIFY_SOCKET"])
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o711 || !strings.Contains(dir, "gaffer-notify-"+strconv.Itoa(os.Getpid())+"-") {
		t.Fatalf("socket directory %s: %v %v", dir, st, err)
	}
	m.Shutdown(t.Context())
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("socket directory left after Shutdown: %v", err)
	}
}

// At start gafferd restores each job after those it depends on, even in
// a session made after its own.
func TestRestoreOrderDependenciesFirst(t *testing.T) {
	mk := func(sid, name string, deps ...string) RestoreJob {
		c := NewJobConfig(name, "x")
		c.DependsOn = deps
		return RestoreJob{Session: sid, Config: c}
	}
	jobs := []RestoreJob{mk("a", "one"), mk("a", "web", "b.db", "one"), mk("b", "db", "cache"), mk("b", "cache"), mk("a", "late")}
	var got []string
	for _, j := range restoreOrder(jobs) {
		got = append(got, j.FullName())
	}
	if strings.Join(got, " ") != "a.one b.cache b.db a.web a.late" {
		t.Fatalf("order %v", got)
	}
}

// A job others depend on cannot be unloaded before them.
func TestUnloadDependencyRefused(t *testing.T) {
	m := newTestManager(t)
	db := childConfig(t, "db", "sleep", nil)
	app := childConfig(t, "app", "sleep", nil)
	app.DependsOn = []string{"db:started"}
	for _, c := range []JobConfig{db, app} {
		if err := m.Load("default", c, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	err := m.Unload("default.db")
	if err == nil || AsError(err).Errno != 409 || !strings.Contains(err.Error(), "default.app depend on it") {
		t.Fatalf("unload db: %v", err)
	}
	if err := m.Unload("default.app"); err != nil {
		t.Fatal(err)
	}
	if err := m.Unload("default.db"); err != nil {
		t.Fatal(err)
	}
}

// ready = exec:COMMAND runs with the job's environment, working directory
// and user (nobody, when the test runs as root), without the process's
// socket activation and notify variables.
func TestReadyExecRunsAsTheJob(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o777)
	out := filepath.Join(dir, "probe.out")
	c := NewJobConfig("svc", "/bin/sleep 60")
	c.Cwd, c.Env, c.GracefulTimeout = dir, map[string]string{"MYVAR": "from the job"}, 5*time.Second
	c.Sockets, c.Watchdog = []string{"tcp://127.0.0.1:0"}, time.Minute
	c.Ready = `exec:/bin/sh -c 'echo "$(pwd)|$(id -u)|$MYVAR|${LISTEN_FDS-unset}|${NOTIFY_SOCKET-unset}|${WATCHDOG_PID-unset}" > probe.out'`
	wantUID := strconv.Itoa(os.Getuid())
	if os.Getuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Skip("no user nobody")
		}
		c.UID, wantUID = "nobody", u.Uid
	}
	m := newTestManager(t)
	sub := m.Events().Subscribe(8, "proc.svc.ready")
	defer sub.Unsubscribe()
	if err := m.Load("default", c, nil, true); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-sub.C:
		if !strings.HasPrefix(fmt.Sprint(ev.Data["by"]), "exec:") {
			t.Fatalf("ready event %v", ev.Data)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("never ready: %+v", jobState(t, m, "default.svc"))
	}
	p := onlyProcess(t, m, "default.svc")
	if p.Env["LISTEN_FDS"] != "1" || p.Env["NOTIFY_SOCKET"] == "" || p.Env["WATCHDOG_PID"] != strconv.Itoa(p.OSPid) {
		t.Fatalf("the process's own environment lacks its variables: %v", p.Env)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(data)), dir+"|"+wantUID+"|from the job|unset|unset|unset"; got != want {
		t.Fatalf("the probe saw %q, want %q", got, want)
	}
}
