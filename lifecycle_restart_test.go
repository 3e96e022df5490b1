package gaffer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The restart policy's delays: doubling from MIN to MAX with the jitter,
// and a new count once a process stayed up for MAX.
func TestRestartPolicyBackoffGrowthAndReset(t *testing.T) {
	cfg := NewJobConfig("x", "x")
	cfg.RestartDelay = [2]time.Duration{time.Second, 8 * time.Second}
	rp := newRestartPolicy(&cfg)
	var got []time.Duration
	for i := 0; i < 6; i++ {
		got = append(got, rp.ended(1, 0, "", 10*time.Millisecond, 0.5).delay) // jitter 0.5: ×1.0
	}
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("delays %v, want %v seconds", got, want)
		}
	}
	// A process that stayed up for MAX starts the count again.
	if d := rp.ended(1, 0, "", 8*time.Second, 0.5).delay; d != time.Second {
		t.Fatalf("after a long run: %v, want 1s", d)
	}
	if d := rp.ended(1, 0, "", time.Second, 0.5).delay; d != 2*time.Second {
		t.Fatalf("next: %v, want 2s", d)
	}
	// ±10 % jitter.
	rp.reset()
	if lo, hi := rp.ended(1, 0, "", 0, 0).delay, rp.ended(1, 0, "", 8*time.Second, 0.999999).delay; lo != 900*time.Millisecond || hi < 1099*time.Millisecond || hi > 1100*time.Millisecond {
		t.Fatalf("jitter bounds %v %v", lo, hi)
	}
	// Without MAX: always MIN, no jitter.
	cfg.RestartDelay = [2]time.Duration{3 * time.Second}
	rp = newRestartPolicy(&cfg)
	for i := 0; i < 3; i++ {
		if d := rp.ended(0, 9, "", 0, 0.1).delay; d != 3*time.Second {
			t.Fatalf("fixed delay %v", d)
		}
	}
	// The modes.
	for _, tt := range []struct {
		mode             string
		status, sig      int
		lifecycle        string
		failure, respawn bool
		successCodes     []int
	}{
		{restartAlways, 0, 0, "", false, true, nil},
		{restartOnFailure, 0, 0, "", false, false, nil},
		{restartOnFailure, 3, 0, "", true, true, nil},
		{restartOnFailure, 3, 0, "", false, false, []int{0, 3}},
		{restartOnFailure, 0, 15, "", true, true, nil},
		{restartOnFailure, 0, 0, "unhealthy", true, true, nil},
		{restartNever, 1, 0, "", true, false, nil},
		{restartNever, 0, 0, "ready_timeout", true, false, nil},
	} {
		c := NewJobConfig("x", "x")
		c.Restart, c.SuccessExitCodes = tt.mode, tt.successCodes
		rp := newRestartPolicy(&c)
		v := rp.ended(tt.status, tt.sig, tt.lifecycle, time.Second, 0.5)
		if v.failure != tt.failure || v.respawn != tt.respawn {
			t.Errorf("%+v: got failure %v respawn %v", tt, v.failure, v.respawn)
		}
	}
}

// With real processes: the state says backoff with the time of the next
// try, the delays grow for a process that crashes at once, and stay at
// MIN for one that stays up for MAX before it exits.
func TestBackoffStateAndGrowth(t *testing.T) {
	m := newTestManager(t)
	stamps := filepath.Join(t.TempDir(), "stamps")
	fast := lifeConfig(t, "fast", "exitafter", stamps, map[string]string{"EXIT_CODE": "1"})
	fast.RestartDelay = [2]time.Duration{300 * time.Millisecond, 1200 * time.Millisecond}
	slow := lifeConfig(t, "slow", "exitafter", stamps, map[string]string{"EXIT_CODE": "1", "DELAY": "400"})
	slow.RestartDelay = [2]time.Duration{100 * time.Millisecond, 300 * time.Millisecond}
	sub := m.Events().Subscribe(256, "job.fast.backoff", "job.slow.backoff")
	defer sub.Unsubscribe()
	for _, c := range []JobConfig{fast, slow} {
		if err := m.Load("default", c, nil, true); err != nil {
			t.Fatal(err)
		}
	}
	delays := map[string][]float64{}
	sawState := false
	for len(delays["job.fast.backoff"]) < 4 || len(delays["job.slow.backoff"]) < 3 {
		select {
		case ev := <-sub.C:
			delays[ev.Name] = append(delays[ev.Name], ev.Data["delay"].(float64))
			if ev.Name == "job.fast.backoff" && !sawState {
				info := jobState(t, m, "default.fast")
				next, _ := ev.Data["next_try"].(time.Time)
				if info.State == jobBackoff && info.NextTry != nil && info.NextTry.Equal(next) {
					sawState = true
				} else if info.State == jobBackoff {
					t.Fatalf("backoff info %+v, event next_try %v", info, ev.Data["next_try"])
				}
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("delays so far %v", delays)
		}
	}
	if !sawState {
		t.Fatal("the job info never said backoff with next_try")
	}
	within := func(got, want float64) bool { return got >= want*0.9-1e-9 && got <= want*1.1+1e-9 }
	f := delays["job.fast.backoff"]
	for i, want := range []float64{0.3, 0.6, 1.2, 1.2} {
		if !within(f[i], want) {
			t.Fatalf("fast crasher delays %v, want 0.3 0.6 1.2 1.2 (±10 %%)", f)
		}
	}
	for _, d := range delays["job.slow.backoff"] {
		if !within(d, 0.1) {
			t.Fatalf("a process up for MAX restarts the count: delays %v, want 0.1 each", delays["job.slow.backoff"])
		}
	}
}

// Health checks: after health_retries failures in a row the process is
// unhealthy, the event is published and it is restarted; its checks
// stop with it.
func TestHealthCheckFailsThreeTimesAndRestarts(t *testing.T) {
	m := newTestManager(t)
	dir := t.TempDir()
	stamps, checks := filepath.Join(dir, "stamps"), filepath.Join(dir, "checks")
	c := lifeConfig(t, "svc", "stamp", stamps, map[string]string{"CHECKS": checks, "DIR": dir})
	c.Health = `exec:/bin/sh -c 'if test -e $DIR/fail.$GAFFER_PID; then echo fail $GAFFER_PID >> $CHECKS; exit 1; fi; echo ok $GAFFER_PID >> $CHECKS'`
	c.HealthInterval, c.HealthRetries = 100*time.Millisecond, 3
	sub := m.Events().Subscribe(64, "proc.svc.healthy", "proc.svc.unhealthy", "job.svc.spawn")
	defer sub.Unsubscribe()
	if err := m.Load("default", c, nil, true); err != nil {
		t.Fatal(err)
	}
	next := func() (string, map[string]any) {
		select {
		case ev := <-sub.C:
			return ev.Name, ev.Data
		case <-time.After(15 * time.Second):
			t.Fatal("no event")
		}
		return "", nil
	}
	if n, _ := next(); n != "job.svc.spawn" {
		t.Fatalf("first event %s", n)
	}
	if n, _ := next(); n != "proc.svc.healthy" {
		t.Fatalf("second event %s", n)
	}
	first := onlyProcess(t, m, "default.svc")
	if ps := jobState(t, m, "default.svc").ProcessStates; ps[0].Health != healthHealthy {
		t.Fatalf("states %+v", ps)
	}
	os.WriteFile(filepath.Join(dir, "fail."+strconv.Itoa(first.ID)), nil, 0o644)
	n, data := next()
	if n != "proc.svc.unhealthy" || data["failures"] != 3 || data["pid"] != first.ID {
		t.Fatalf("event %s %v", n, data)
	}
	if n, _ := next(); n != "job.svc.spawn" {
		t.Fatalf("after unhealthy: %s", n)
	}
	if n, _ := next(); n != "proc.svc.healthy" {
		t.Fatalf("the new process: %s", n)
	}
	waitFor(t, 10*time.Second, "the unhealthy process stopped", func() bool {
		return firstStamp(readStamps(t, stamps), "svc", "term").osPid == first.OSPid && !alive(first.OSPid)
	})
	raw, _ := os.ReadFile(checks)
	fails := strings.Count(string(raw), "fail "+strconv.Itoa(first.ID)+"\n")
	if fails != 3 {
		t.Fatalf("%d failed checks of the first process, want 3:\n%s", fails, raw)
	}
	waitFor(t, 10*time.Second, "the unhealthy process reaped", func() bool { return len(jobState(t, m, "default.svc").Stopping) == 0 })
	if info := jobState(t, m, "default.svc"); info.Restarts != 1 || info.State != JobRunning {
		t.Fatalf("info %+v", info)
	}
}

// rollingJob loads a job of n processes, ready = notify after delay ms.
func rollingJob(t *testing.T, m *Manager, stamps, failFile string, n int) {
	t.Helper()
	c := lifeConfig(t, "web", "notifyready", stamps, map[string]string{"DELAY": "150", "FAIL_FILE": failFile, "TERM_DELAY": "50"})
	c.Ready, c.ReadyTimeout, c.NumProcesses, c.GracefulTimeout = "notify", 2*time.Second, n, 2*time.Second
	if err := m.Load("default", c, nil, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "all ready", func() bool { return jobState(t, m, "default.web").Ready == n })
}

// A rolling restart of 4 processes, sampled through the API all along:
// at least 4 are ready at every sample, and every process is new at the
// end.
func TestRollingRestartKeepsFourReady(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	stamps := filepath.Join(t.TempDir(), "stamps")
	rollingJob(t, a.m, stamps, "", 4)
	before, _ := a.m.Pids("default.web")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var samples, minReady, maxProcs int
	minReady = 1 << 30
	var sampleErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := a.c.Get(a.srv.URL + "/jobs/default/web")
			if err != nil {
				sampleErr = err
				return
			}
			var info JobInfo
			err = json.NewDecoder(resp.Body).Decode(&info)
			resp.Body.Close()
			if err != nil {
				sampleErr = err
				return
			}
			samples++
			minReady = min(minReady, info.Ready)
			maxProcs = max(maxProcs, len(info.Processes))
			time.Sleep(2 * time.Millisecond)
		}
	}()
	out := a.json("POST", "/jobs/default/web/restart?rolling=1", "", 200)
	close(stop)
	wg.Wait()
	if sampleErr != nil {
		t.Fatal(sampleErr)
	}
	if out["replaced"] != float64(4) {
		t.Fatalf("answer %v", out)
	}
	if minReady < 4 || samples < 20 || maxProcs != 5 {
		t.Fatalf("%d samples: at least %d ready (want 4), at most %d processes (want 5)", samples, minReady, maxProcs)
	}
	after, _ := a.m.Pids("default.web")
	for _, p := range after {
		if slices.Contains(before, p) {
			t.Fatalf("process %d was not replaced (before %v, after %v)", p, before, after)
		}
	}
	if len(after) != 4 {
		t.Fatalf("after: %v", after)
	}
	t.Logf("%d samples through the API, at least %d ready at each", samples, minReady)
}

// A new process that is not ready in time stops the rolling restart: it
// is stopped, the old processes keep running, and the answer says so.
func TestRollingRestartStopsWhenNewProcessFailsReadiness(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	dir := t.TempDir()
	stamps, fail := filepath.Join(dir, "stamps"), filepath.Join(dir, "fail")
	rollingJob(t, a.m, stamps, fail, 4)
	before, _ := a.m.Pids("default.web")
	os.WriteFile(fail, nil, 0o644)
	code, _, body := a.do("POST", "/jobs/default/web/restart?rolling=1", "")
	if code != 500 || !strings.Contains(string(body), "stopped after 0 of 4") || !strings.Contains(string(body), "ready_timeout") {
		t.Fatalf("answer %d %s", code, body)
	}
	var e struct{ Error string }
	json.Unmarshal(body, &e)
	if e.Error != codeRollingFailed {
		t.Fatalf("error code %q", e.Error)
	}
	after, _ := a.m.Pids("default.web")
	slices.Sort(before)
	slices.Sort(after)
	if !slices.Equal(before, after) {
		t.Fatalf("old processes %v, now %v", before, after)
	}
	l := readStamps(t, stamps)
	if countStamps(l, "web", "never-ready") != 1 {
		t.Fatalf("stamps %v", l)
	}
	waitFor(t, 10*time.Second, "the failed one gone", func() bool {
		a.m.mu.Lock()
		defer a.m.mu.Unlock()
		return len(a.m.stopping) == 0
	})
	// Nothing more is spawned: the job keeps its 4 old processes.
	if n := countStamps(readStamps(t, stamps), "web", "spawn"); n != 5 {
		t.Fatalf("%d spawns, want 4 + the failed one", n)
	}
	if info := jobState(t, a.m, "default.web"); info.Ready != 4 || info.State != jobReady {
		t.Fatalf("info %+v", info)
	}
}

// /metrics: the lifecycle states, ready processes, health and the time
// of the next try.
func TestMetricsLifecycle(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	stamps := filepath.Join(t.TempDir(), "stamps")
	slow := lifeConfig(t, "slow", "notifyready", stamps, map[string]string{"DELAY": "600000"})
	slow.Ready = "notify"
	ok := lifeConfig(t, "ok", "stamp", stamps, nil)
	ok.Health, ok.HealthInterval = "exec:/bin/true", time.Minute
	crash := lifeConfig(t, "crash", "exitafter", stamps, map[string]string{"EXIT_CODE": "1"})
	crash.RestartDelay = [2]time.Duration{time.Minute}
	for _, c := range []JobConfig{slow, ok, crash} {
		if err := a.m.Load("default", c, nil, true); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "backoff and healthy", func() bool {
		ps := jobState(t, a.m, "default.ok").ProcessStates
		return jobState(t, a.m, "default.crash").State == jobBackoff && len(ps) == 1 && ps[0].Health == healthHealthy
	})
	_, _, body := a.do("GET", "/metrics", "")
	text := string(body)
	for _, want := range []string{
		`gaffer_job_state{session="default",name="slow",state="starting"} 1`,
		`gaffer_job_state{session="default",name="crash",state="backoff"} 1`,
		`gaffer_job_ready_processes{session="default",name="slow"} 0`,
		`gaffer_job_ready_processes{session="default",name="ok"} 1`,
		`gaffer_process_ready{session="default",name="slow",slot="0"} 0`,
		`gaffer_process_ready{session="default",name="ok",slot="0"} 1`,
		`gaffer_process_healthy{session="default",name="ok",slot="0"} 1`,
		`gaffer_job_backoff_next_try_seconds{session="default",name="crash"} `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
}
