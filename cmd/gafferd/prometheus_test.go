package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer/cmd/internal/testenv"
)

// dashboardQueries are the queries of the README's example dashboard
// (TestReadmeListsTheDashboardQueries keeps the two the same).
var dashboardQueries = map[string]string{
	"restarts":  `sum by (session, name) (gaffer_job_restarts_total)`,
	"processes": `sum by (session, name) (gaffer_job_running_processes)`,
	"cpu":       `sum by (session, name) (rate(gaffer_process_cpu_seconds_total[1m]))`,
	"memory":    `sum by (session, name) (gaffer_process_resident_memory_bytes)`,
}

// TestPrometheusScrapesGafferd runs a real Prometheus server (Debian's
// prometheus package) that scrapes the real gafferd, and checks that the
// example dashboard's queries return what the test caused: two kills of a
// process are two restarts of its job, a busy job uses more CPU than an
// idle one, the per-process series stay as many as the processes, and no
// label of gafferd's collides with the target's job label.
func TestPrometheusScrapesGafferd(t *testing.T) {
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not on PATH (apt-get install prometheus; .ci/install-deps does it): skipping the real-server scrape test")
	}
	var hookMu sync.Mutex
	hooks := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		hookMu.Lock()
		hooks++
		hookMu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()

	dir := t.TempDir()
	cfg := `[gaffer]
http_endpoints = sock, tcp
[endpoint:sock]
bind = unix:%SOCK%
[endpoint:tcp]
bind = 127.0.0.1:0

[process:web]
cmd = sleep 300
numprocesses = 2

[process:burn]
cmd = sh -c 'while :; do :; done'

[webhooks]
spawn = ` + hook.URL + `/in
`
	d := startDaemon(t, dir, cfg)
	addr := ""
	re := regexp.MustCompile(`address=(127\.0\.0\.1:\d+)`)
	d.waitFor(10*time.Second, "the TCP endpoint", func() bool {
		if m := re.FindStringSubmatch(d.output()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	d.waitFor(10*time.Second, "the processes", func() bool {
		return d.job("default.web").Running == 2 && d.job("default.burn").Running == 1
	})

	pdir := t.TempDir()
	pcfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: gafferd
    static_configs:
      - targets: ['%s']
`, addr)
	if err := os.WriteFile(filepath.Join(pdir, "prometheus.yml"), []byte(pcfg), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := startPrometheus(t, prom, pdir)
	query := func(q string) map[string]float64 {
		t.Helper()
		resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			t.Fatalf("query %s: %v", q, err)
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Error  string
			Data   struct {
				Result []struct {
					Metric map[string]string
					Value  [2]any
				}
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
			t.Fatalf("query %s: %v %s %s", q, err, r.Status, r.Error)
		}
		out := map[string]float64{}
		for _, s := range r.Data.Result {
			key := s.Metric["session"] + "." + s.Metric["name"]
			if s.Metric["name"] == "" {
				key = ""
			}
			v, _ := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
			out[key] = v
		}
		return out
	}
	waitQuery := func(what, q string, ok func(map[string]float64) bool) map[string]float64 {
		t.Helper()
		var got map[string]float64
		d.waitFor(90*time.Second, what+" ("+q+")", func() bool {
			got = query(q)
			if ok(got) {
				return true
			}
			time.Sleep(250 * time.Millisecond)
			return false
		})
		return got
	}
	waitQuery("the first scrape", `up{job="gafferd"}`, func(m map[string]float64) bool { return m[""] == 1 })

	// Kill a web process twice.
	for i := 0; i < 2; i++ {
		pids := d.osPids("default.web")
		if len(pids) != 2 {
			t.Fatalf("web pids %v", pids)
		}
		before := d.job("default.web").Processes
		if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		d.waitFor(20*time.Second, "the replacement", func() bool {
			j := d.job("default.web")
			return j.Running == 2 && fmt.Sprint(j.Processes) != fmt.Sprint(before)
		})
	}
	// The respawns are webhook events (the spawns at start came before
	// the webhooks started).
	d.waitFor(30*time.Second, "a webhook delivery", func() bool {
		hookMu.Lock()
		defer hookMu.Unlock()
		return hooks > 0
	})
	got := waitQuery("restarts per job", dashboardQueries["restarts"], func(m map[string]float64) bool {
		return m["default.web"] == 2
	})
	if len(got) != 2 || got["default.burn"] != 0 {
		t.Errorf("restarts per job: %v, want web 2 and burn 0", got)
	}
	got = waitQuery("processes per job", dashboardQueries["processes"], func(m map[string]float64) bool {
		return m["default.web"] == 2 && m["default.burn"] == 1
	})
	// As many per-process series as processes over the whole run: slots,
	// not pids.
	got = query(`count by (session, name) (count_over_time(gaffer_process_start_time_seconds[1h]))`)
	if got["default.web"] != 2 || got["default.burn"] != 1 {
		t.Errorf("per-process series over the run: %v, want web 2 (two slots despite two restarts) and burn 1", got)
	}
	got = waitQuery("memory per job", dashboardQueries["memory"], func(m map[string]float64) bool {
		return m["default.web"] > 0 && m["default.burn"] > 0
	})
	got = waitQuery("cpu per job", dashboardQueries["cpu"], func(m map[string]float64) bool {
		return m["default.burn"] > 0.05 && m["default.burn"] > 5*m["default.web"]
	})
	t.Logf("cpu per job (cores): %v", got)
	if got := query(`count({exported_job=~".+"})`); len(got) != 0 {
		t.Errorf("series with an exported_job label: %v (a label of gafferd's is named job)", got)
	}
	for _, q := range []string{`process_cpu_seconds_total{job="gafferd"}`, `process_resident_memory_bytes{job="gafferd"}`,
		`process_open_fds{job="gafferd"}`, `go_goroutines{job="gafferd"}`, `go_memstats_heap_alloc_bytes{job="gafferd"}`} {
		if got := query(q); got[""] <= 0 {
			t.Errorf("%s = %v, want > 0", q, got)
		}
	}
	waitQuery("webhook deliveries", `sum(gaffer_webhook_deliveries_total{result="delivered"})`, func(m map[string]float64) bool {
		return m[""] >= 1
	})
	// The scrape used OpenMetrics (Prometheus asks for it first).
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text; version=1.0.0") || !strings.HasSuffix(string(body), "# EOF\n") {
		t.Errorf("OpenMetrics answer: %q, ends %q", ct, body[max(0, len(body)-20):])
	}
}

// startPrometheus runs prometheus on 127.0.0.1:0 with dir/prometheus.yml
// and returns the address it listens on.
func startPrometheus(t *testing.T, bin, dir string) string {
	t.Helper()
	p := testenv.Start(t, "prometheus", exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address=127.0.0.1:0"))
	p.Lenient = true
	re := regexp.MustCompile(`msg="Listening on" address=(127\.0\.0\.1:\d+)`)
	a := ""
	testenv.WaitFor(t, 60*time.Second, "prometheus to say where it listens", func() bool {
		if m := re.FindStringSubmatch(p.Output()); m != nil {
			a = m[1]
		}
		return a != "" || p.Exited()
	})
	if a == "" {
		t.Fatalf("prometheus exited:\n%s", p.Output())
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + a + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return a
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus on %s not ready within 60 s: %v", a, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestReadmeListsTheDashboardQueries(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for what, q := range dashboardQueries {
		if !strings.Contains(string(readme), q) {
			t.Errorf("the README's example dashboard lacks the %s query %s", what, q)
		}
	}
}
