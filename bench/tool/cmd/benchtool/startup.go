package main

// benchtool startup: gafferd's start with many jobs in state.json (issue
// 19: "1,000 jobs in state.json: gafferd starts and answers /ping within
// 1 s of exec, and GET /jobs?details=1 answers in under 50 ms").
//
//	benchtool startup -gafferd BIN [-jobs 1000] [-mode stopped|running] [-reps 3] [-requests 200] [-out FILE]
//
// Once per invocation a state file of N jobs (default.j0001 …, one
// `/bin/sleep 86401` each, stopped) is primed: a minimal state.json is
// written and gafferd rewrites it in its own full format when it starts;
// it is then stopped and its state.json is the template. For each rep a
// fresh data directory gets the template (mode running: every job's state
// set to "running", so gafferd starts N children), gafferd is exec'd, and
// measured from the exec:
//
//	ping_s       the first 200 answer of GET /ping (polled every 1 ms)
//	listed_s     the first GET /jobs that lists the N jobs
//	running_s    (running) the first GET /jobs?details=1 whose running counts add up to N
//	cpu_at_ping_s gafferd's CPU seconds when /ping first answered
//	start_ms_p99/max  GET /jobs and GET /jobs?details=1 while the jobs load and start
//	             (the polls of listed_s, and a sample every 100 ms until running_s)
//	details_ms_median/p99/max  -requests sequential GET /jobs?details=1 once all is up
//	job_ms_median/p99  -requests sequential GET /jobs/default/j0001
//	rss_mb       gafferd's VmRSS at the end
//
// The API listens on a unix socket of the run's directory only. The
// harness is a child subreaper; after gafferd exits (SIGTERM, then SIGKILL
// after 60 s) any process left below it is killed by pid.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type startupRun struct {
	bin, dir string
	jobs     int
	sample   time.Duration
	client   *http.Client
	cmd      *exec.Cmd
	exited   chan struct{}
}

func cmdStartup(args []string) {
	fs := flag.NewFlagSet("startup", flag.ExitOnError)
	bin := fs.String("gafferd", "", "gafferd binary")
	jobs := fs.Int("jobs", 1000, "jobs in state.json")
	mode := fs.String("mode", "stopped", "stopped: jobs restored stopped (gafferd's own start); running: each job starts one child")
	reps := fs.Int("reps", 3, "repetitions")
	requests := fs.Int("requests", 200, "sequential requests per latency measure")
	sample := fs.Duration("sample", 100*time.Millisecond, "mode running: sample GET /jobs?details=1 this often while the jobs start (0: not at all)")
	out := fs.String("out", "", "append JSON lines here (default: stdout only)")
	fs.Parse(args)
	if *bin == "" || (*mode != "stopped" && *mode != "running") || *jobs < 1 {
		fmt.Fprintln(os.Stderr, "usage: benchtool startup -gafferd BIN [-jobs N] [-mode stopped|running] [-reps K] [-requests R] [-out FILE]")
		os.Exit(2)
	}
	if err := setSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, "startup: cannot become a child subreaper:", err)
	}
	version := "?"
	if b, err := exec.Command(*bin, "-version").CombinedOutput(); err == nil {
		version = strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	}
	batch := time.Now().UTC().Format("20060102T150405Z")
	tmpl, err := primeState(*bin, *jobs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "startup: priming the state file:", err)
		os.Exit(1)
	}
	if *mode == "running" {
		tmpl, err = setStates(tmpl, "running")
		if err != nil {
			fmt.Fprintln(os.Stderr, "startup:", err)
			os.Exit(1)
		}
	}
	var sink io.Writer = io.Discard
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "startup:", err)
			os.Exit(1)
		}
		defer f.Close()
		sink = f
	}
	failed := false
	for rep := 1; rep <= *reps; rep++ {
		res := map[string]any{"scenario": "startup", "mode": *mode, "jobs": *jobs, "rep": rep, "batch": batch,
			"version": version, "state_bytes": len(tmpl)}
		if err := startupRep(*bin, *jobs, *mode, *requests, *sample, tmpl, res); err != nil {
			res["ok"], res["error"] = false, err.Error()
			failed = true
		} else {
			res["ok"] = true
		}
		line, _ := json.Marshal(res)
		fmt.Println(string(line))
		fmt.Fprintln(sink, string(line))
	}
	if failed {
		os.Exit(1)
	}
}

// startupIni is gafferd's config: a unix socket, the data directory, no
// job of its own.
func startupIni(dir string) string {
	return fmt.Sprintf("[gaffer]\nhttp_endpoints = sock\nrequire_key = false\nlog_level = warning\ndata_dir = %s\n\n[endpoint:sock]\nbind = unix:%s\nsocket_mode = 0600\n",
		filepath.Join(dir, "data"), filepath.Join(dir, "gafferd.sock"))
}

// launch writes the config and state and execs gafferd; it returns the
// exec time.
func (r *startupRun) launch(state []byte) (time.Time, error) {
	if err := os.MkdirAll(filepath.Join(r.dir, "data"), 0o700); err != nil {
		return time.Time{}, err
	}
	if err := os.WriteFile(filepath.Join(r.dir, "gaffer.ini"), []byte(startupIni(r.dir)), 0o600); err != nil {
		return time.Time{}, err
	}
	if err := os.WriteFile(filepath.Join(r.dir, "data", "state.json"), state, 0o600); err != nil {
		return time.Time{}, err
	}
	log, err := os.Create(filepath.Join(r.dir, "gafferd.log"))
	if err != nil {
		return time.Time{}, err
	}
	defer log.Close()
	sock := filepath.Join(r.dir, "gafferd.sock")
	r.client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 4,
	}}
	r.cmd = exec.Command(r.bin, "-c", filepath.Join(r.dir, "gaffer.ini"))
	r.cmd.Stdout, r.cmd.Stderr = log, log
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r.exited = make(chan struct{})
	t0 := time.Now()
	if err := r.cmd.Start(); err != nil {
		return t0, err
	}
	go func() { r.cmd.Wait(); close(r.exited) }()
	return t0, nil
}

// get returns the status and body of one GET and how long it took.
func (r *startupRun) get(path string) (int, []byte, time.Duration, error) {
	t := time.Now()
	resp, err := r.client.Get("http://gafferd" + path)
	if err != nil {
		return 0, nil, time.Since(t), err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, body, time.Since(t), err
}

// waitPing polls /ping every millisecond until it answers 200.
func (r *startupRun) waitPing(limit time.Duration) error {
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		select {
		case <-r.exited:
			return fmt.Errorf("gafferd exited: %s", r.logTail())
		default:
		}
		if st, _, _, err := r.get("/ping"); err == nil && st == 200 {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("no answer to /ping after %s", limit)
}

// stop ends gafferd (SIGTERM, SIGKILL after 60 s) and whatever it left.
func (r *startupRun) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(60 * time.Second):
		r.cmd.Process.Kill()
		<-r.exited
	}
	self := os.Getpid()
	killTree(func(s *snapshot) []int { return s.descendants([]int{self}) }, 10*time.Second)
}

func (r *startupRun) logTail() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "gafferd.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// primeState has gafferd write a state file of n stopped jobs in its own
// format and returns it.
func primeState(bin string, n int) ([]byte, error) {
	dir, err := os.MkdirTemp("", "bench-startup-prime.")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	type job struct {
		Session    string         `json:"session"`
		Origin     string         `json:"origin"`
		APIChanged bool           `json:"api_changed"`
		Target     int            `json:"numprocesses"`
		State      string         `json:"state"`
		Config     map[string]any `json:"config"`
		GracefulNS int64          `json:"graceful_timeout_ns"`
	}
	doc := struct {
		Format int    `json:"format"`
		Saved  string `json:"saved"`
		Jobs   []job  `json:"jobs"`
	}{Format: 1, Saved: time.Now().UTC().Format(time.RFC3339Nano)}
	for i := 1; i <= n; i++ {
		doc.Jobs = append(doc.Jobs, job{Session: "default", Origin: "api", Target: 1, State: "stopped",
			GracefulNS: int64(time.Second), Config: map[string]any{
				"name": fmt.Sprintf("j%04d", i), "cmd": "/bin/sleep", "args": []string{"86401"},
				"numprocesses": 1, "graceful_timeout": 1, "env": map[string]string{"PORT": strconv.Itoa(8000 + i)}}})
	}
	state, _ := json.Marshal(doc)
	r := &startupRun{bin: bin, dir: dir, jobs: n}
	defer r.stop()
	if _, err := r.launch(state); err != nil {
		return nil, err
	}
	if err := r.waitPing(120 * time.Second); err != nil {
		return nil, err
	}
	if _, err := r.waitJobs(120*time.Second, nil); err != nil {
		return nil, err
	}
	// The recorder saves the restored state at start; stop and take it.
	r.stop()
	b, err := os.ReadFile(filepath.Join(dir, "data", "state.json"))
	if err != nil {
		return nil, err
	}
	var check struct{ Jobs []json.RawMessage }
	if err := json.Unmarshal(b, &check); err != nil || len(check.Jobs) != n {
		return nil, fmt.Errorf("primed state has %d jobs (%v), want %d", len(check.Jobs), err, n)
	}
	return b, nil
}

// setStates sets the state of every job of a state file.
func setStates(state []byte, to string) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(state, &doc); err != nil {
		return nil, err
	}
	jobs, _ := doc["jobs"].([]any)
	for _, j := range jobs {
		if m, ok := j.(map[string]any); ok {
			m["state"] = to
		}
	}
	return json.MarshalIndent(doc, "", "  ")
}

// waitJobs polls GET /jobs until it lists n jobs; the latency of each
// poll is appended to lat (when not nil).
func (r *startupRun) waitJobs(limit time.Duration, lat *[]float64) (time.Time, error) {
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		st, body, d, err := r.get("/jobs")
		if lat != nil && err == nil {
			*lat = append(*lat, ms(d))
		}
		if err == nil && st == 200 {
			var v struct{ Jobs []string }
			if json.Unmarshal(body, &v) == nil && len(v.Jobs) >= r.jobs {
				return time.Now(), nil
			}
		}
		time.Sleep(time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("GET /jobs did not list %d jobs within %s", r.jobs, limit)
}

// waitRunning waits until the jobs run n processes: it polls the last
// job of the start order (GET /jobs/default/jNNNN, cached by gafferd)
// every 5 ms, then checks the sum with GET /jobs?details=1. Meanwhile
// GET /jobs?details=1 is sampled every r.sample (its latencies go to lat):
// the API's answer while the jobs start, without polling so hard that the
// polls slow the start.
func (r *startupRun) waitRunning(limit time.Duration, lat *[]float64) (time.Time, error) {
	stop := make(chan struct{})
	sampled := make(chan []float64, 1)
	go func() {
		var v []float64
		defer func() { sampled <- v }()
		for r.sample > 0 {
			select {
			case <-stop:
				return
			case <-time.After(r.sample):
			}
			if st, _, d, err := r.get("/jobs?details=1"); err == nil && st == 200 {
				v = append(v, ms(d))
			}
		}
	}()
	defer func() { close(stop); *lat = append(*lat, <-sampled...) }()
	last := fmt.Sprintf("/jobs/default/j%04d", r.jobs)
	end := time.Now().Add(limit)
	got := 0
	for time.Now().Before(end) {
		st, body, _, err := r.get(last)
		var one struct{ Running int }
		if err != nil || st != 200 || json.Unmarshal(body, &one) != nil || one.Running < 1 {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		t := time.Now()
		st, body, _, err = r.get("/jobs?details=1")
		var v struct{ Jobs []struct{ Running int } }
		if err == nil && st == 200 && json.Unmarshal(body, &v) == nil {
			got = 0
			for _, j := range v.Jobs {
				got += j.Running
			}
			if got >= r.jobs {
				return t, nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("%d of %d processes running after %s", got, r.jobs, limit)
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// latencies runs n sequential GETs of path and returns their latencies
// in ms and the last body's size.
func (r *startupRun) latencies(path string, n int) ([]float64, int, error) {
	var out []float64
	size := 0
	for i := 0; i < n; i++ {
		st, body, d, err := r.get(path)
		if err != nil {
			return nil, 0, err
		}
		if st != 200 {
			return nil, 0, fmt.Errorf("GET %s: %d %s", path, st, bytes.TrimSpace(body))
		}
		out = append(out, ms(d))
		size = len(body)
	}
	return out, size, nil
}

func startupRep(bin string, n int, mode string, requests int, sample time.Duration, state []byte, res map[string]any) error {
	dir, err := os.MkdirTemp("", "bench-startup.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	r := &startupRun{bin: bin, dir: dir, jobs: n, sample: sample}
	res["sample_ms"] = sample.Milliseconds()
	defer r.stop()
	t0, err := r.launch(state)
	if err != nil {
		return err
	}
	if err := r.waitPing(120 * time.Second); err != nil {
		return err
	}
	res["ping_s"] = round(time.Since(t0).Seconds(), 4)
	res["cpu_at_ping_s"] = round(procCPU(r.cmd.Process.Pid)/clkTck, 2)
	var during []float64
	tl, err := r.waitJobs(120*time.Second, &during)
	if err != nil {
		return err
	}
	res["listed_s"] = round(tl.Sub(t0).Seconds(), 4)
	if mode == "running" {
		tr, err := r.waitRunning(300*time.Second, &during)
		if err != nil {
			return err
		}
		res["running_s"] = round(tr.Sub(t0).Seconds(), 3)
	}
	res["start_polls"] = len(during)
	res["start_ms_p99"] = pct(during, 99)
	res["start_ms_max"] = pct(during, 100)
	lat, size, err := r.latencies("/jobs?details=1", requests)
	if err != nil {
		return err
	}
	res["details_bytes"] = size
	res["details_ms_median"] = pct(lat, 50)
	res["details_ms_p99"] = pct(lat, 99)
	res["details_ms_max"] = pct(lat, 100)
	lat, _, err = r.latencies("/jobs/default/j0001", requests)
	if err != nil {
		return err
	}
	res["job_ms_median"] = pct(lat, 50)
	res["job_ms_p99"] = pct(lat, 99)
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(r.cmd.Process.Pid) + "/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				res["rss_mb"] = round(kb/1024, 1)
			}
		}
	}
	return nil
}

// pct is percentile in ms rounded, 0 for no value (JSON has no NaN).
func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return round(percentile(v, p), 3)
}
