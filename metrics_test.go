package gaffer

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mtSample is one parsed sample line.
type mtSample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	mtNameRE  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	mtLabelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// mtParse checks text against the Prometheus text format 0.0.4 and
// returns the samples and the TYPE of each family. It fails the test on
// the first violation: a line that is not a comment or a sample, a bad
// name, label or escape, a sample before its family's TYPE or apart from
// the rest of its family, a family declared twice, a duplicate series, or
// a missing final newline.
func mtParse(t *testing.T, text string) ([]mtSample, map[string]string) {
	t.Helper()
	return mtParseFormat(t, text, false)
}

// mtParseOpenMetrics checks text against OpenMetrics 1.0 the same way: a
// counter family is named without _total and its samples with it, HELP
// may escape double quotes, and the exposition ends with "# EOF". The
// types are returned by sample name.
func mtParseOpenMetrics(t *testing.T, text string) ([]mtSample, map[string]string) {
	t.Helper()
	body, ok := strings.CutSuffix(text, "# EOF\n")
	if !ok || strings.Contains(body, "# EOF") {
		t.Fatalf("an OpenMetrics exposition ends with one # EOF line: %q", text[max(0, len(text)-80):])
	}
	return mtParseFormat(t, body, true)
}

func mtParseFormat(t *testing.T, text string, om bool) ([]mtSample, map[string]string) {
	t.Helper()
	if text == "" || !strings.HasSuffix(text, "\n") {
		t.Fatalf("the exposition must end with a newline: %q", text)
	}
	types := map[string]string{}
	helps := map[string]bool{}
	closed := map[string]bool{} // families whose samples are over
	current := ""
	series := map[string]bool{}
	var out []mtSample
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("line %d %q: %s", i+1, line, fmt.Sprintf(format, args...))
		}
		if line == "" {
			fail("empty line")
		}
		if strings.HasPrefix(line, "#") {
			f := strings.SplitN(line, " ", 4)
			if len(f) < 3 || (f[1] != "HELP" && f[1] != "TYPE") {
				continue // a plain comment
			}
			name := f[2]
			if !mtNameRE.MatchString(name) {
				fail("bad metric name")
			}
			if closed[name] || (current != "" && current != name) {
				closed[current] = true
			}
			if closed[name] {
				fail("family %s declared again after its samples", name)
			}
			current = name
			switch f[1] {
			case "HELP":
				if helps[name] {
					fail("second HELP")
				}
				helps[name] = true
				if len(f) == 4 {
					mtUnescape(t, f[3], om, fail)
				}
			case "TYPE":
				if _, ok := types[name]; ok {
					fail("second TYPE")
				}
				if len(f) != 4 || !slices.Contains([]string{"counter", "gauge", "histogram", "summary", "untyped"}, f[3]) {
					fail("bad TYPE")
				}
				if om && f[3] == "counter" && strings.HasSuffix(name, "_total") {
					fail("an OpenMetrics counter family is named without _total")
				}
				types[name] = f[3]
			}
			continue
		}
		s := mtParseSample(t, line, fail)
		fam := s.name
		if om && types[current] == "counter" {
			var ok bool
			if fam, ok = strings.CutSuffix(s.name, "_total"); !ok {
				fail("an OpenMetrics counter sample is named <family>_total")
			}
		}
		if types[fam] == "" {
			fail("sample before the TYPE of %s", fam)
		}
		if fam != current {
			fail("sample of %s inside family %s", fam, current)
		}
		var keys []string
		for k, v := range s.labels {
			keys = append(keys, k+"="+v)
		}
		sort.Strings(keys)
		id := s.name + "{" + strings.Join(keys, ",") + "}"
		if series[id] {
			fail("duplicate series %s", id)
		}
		series[id] = true
		out = append(out, s)
	}
	bySample := map[string]string{}
	for name, typ := range types {
		if typ == "counter" && !om && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
		if !helps[name] {
			t.Errorf("family %s has no HELP", name)
		}
		if !strings.HasPrefix(name, "gaffer_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "go_") {
			t.Errorf("family %s is not named gaffer_…, process_… or go_…", name)
		}
		if om && typ == "counter" {
			name += "_total"
		}
		bySample[name] = typ
	}
	return out, bySample
}

// mtUnescape decodes an escaped HELP text or label value, failing on an
// escape the format does not define.
func mtUnescape(t *testing.T, s string, quote bool, fail func(string, ...any)) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\n' {
			fail("raw newline")
		}
		if quote && c == '"' {
			fail("unescaped double quote")
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(s) {
			fail("dangling backslash")
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case '"':
			if !quote {
				fail(`\" in HELP`)
			}
			b.WriteByte('"')
		default:
			fail("unknown escape \\%c", s[i])
		}
	}
	return b.String()
}

// mtParseSample parses `name{a="b",…} value`.
func mtParseSample(t *testing.T, line string, fail func(string, ...any)) mtSample {
	t.Helper()
	s := mtSample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		fail("no value")
	}
	s.name = line[:i]
	if !mtNameRE.MatchString(s.name) {
		fail("bad metric name")
	}
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq <= 0 {
				fail("bad label")
			}
			name := rest[:eq]
			if !mtLabelRE.MatchString(name) || strings.HasPrefix(name, "__") {
				fail("bad label name %q", name)
			}
			rest = rest[eq+2:]
			end := -1
			for j := 0; j < len(rest); j++ {
				if rest[j] == '\\' {
					j++
					continue
				}
				if rest[j] == '"' {
					end = j
					break
				}
			}
			if end < 0 {
				fail("unterminated label value")
			}
			if _, dup := s.labels[name]; dup {
				fail("label %s twice", name)
			}
			s.labels[name] = mtUnescape(t, rest[:end], true, fail)
			rest = rest[end+1:]
			if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
			} else if !strings.HasPrefix(rest, "}") {
				fail("expected , or } after a label")
			}
		}
	}
	f := strings.Fields(rest)
	if !strings.HasPrefix(rest, " ") || len(f) < 1 || len(f) > 2 {
		fail("expected ' value [timestamp]'")
	}
	switch f[0] {
	case "NaN":
		s.value = math.NaN()
	case "+Inf":
		s.value = math.Inf(1)
	case "-Inf":
		s.value = math.Inf(-1)
	default:
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			fail("bad value: %v", err)
		}
		s.value = v
	}
	return s
}

// mtFind returns the value of the sample with that name and labels.
func mtFind(samples []mtSample, name string, labels ...string) (float64, bool) {
	for _, s := range samples {
		if s.name != name {
			continue
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				ok = false
			}
		}
		if ok {
			return s.value, true
		}
	}
	return 0, false
}

func mtMust(t *testing.T, samples []mtSample, name string, labels ...string) float64 {
	t.Helper()
	v, ok := mtFind(samples, name, labels...)
	if !ok {
		t.Fatalf("no sample %s%v", name, labels)
	}
	return v
}

func TestMetricsEscaping(t *testing.T) {
	mw := &mtWriter{}
	f := mw.family("gaffer_test_total", "counter", "Back\\slash and\nnewline \"kept\".")
	mw.family("gaffer_empty", "gauge", "No sample: not written.")
	f.add(1.5, "name", "a\\b\"c\nd", "other", "x")
	f.add(math.Inf(1), "name", "inf")
	f.add(1e21, "name", "big")
	text := string(mw.bytes(false))
	want := "# HELP gaffer_test_total Back\\\\slash and\\nnewline \"kept\".\n" +
		"# TYPE gaffer_test_total counter\n" +
		"gaffer_test_total{name=\"a\\\\b\\\"c\\nd\",other=\"x\"} 1.5\n" +
		"gaffer_test_total{name=\"inf\"} +Inf\n" +
		"gaffer_test_total{name=\"big\"} 1e+21\n"
	if text != want {
		t.Fatalf("got\n%s\nwant\n%s", text, want)
	}
	samples, _ := mtParse(t, text)
	if samples[0].labels["name"] != "a\\b\"c\nd" || samples[0].value != 1.5 {
		t.Fatalf("round trip: %+v", samples[0])
	}
	if got := string(mtEscape(nil, "bad\xffutf8", true)); got != "bad\uFFFDutf8" {
		t.Fatalf("invalid UTF-8 escaped as %q", got)
	}
	// OpenMetrics: the counter family loses _total, HELP escapes quotes,
	// and # EOF ends it.
	om := string(mw.bytes(true))
	wantOM := "# HELP gaffer_test Back\\\\slash and\\nnewline \\\"kept\\\".\n" +
		"# TYPE gaffer_test counter\n" +
		"gaffer_test_total{name=\"a\\\\b\\\"c\\nd\",other=\"x\"} 1.5\n" +
		"gaffer_test_total{name=\"inf\"} +Inf\n" +
		"gaffer_test_total{name=\"big\"} 1e+21\n# EOF\n"
	if om != wantOM {
		t.Fatalf("OpenMetrics: got\n%s\nwant\n%s", om, wantOM)
	}
	if samples, types := mtParseOpenMetrics(t, om); len(samples) != 3 || types["gaffer_test_total"] != "counter" {
		t.Fatalf("OpenMetrics parse: %v %v", samples, types)
	}
}

func TestMetricsAcceptNegotiation(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                             false,
		"text/plain":                   false,
		"*/*":                          false,
		"application/openmetrics-text": true,
		// What Prometheus 2.42 sends.
		"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1": true,
		"text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5":                                                                       false,
		"application/openmetrics-text;q=0":                           false,
		"application/openmetrics-text; version=1.0.0; charset=utf-8": true,
		"garbage;;;,=": false,
	} {
		if got := mtWantsOpenMetrics(accept); got != want {
			t.Errorf("Accept %q: OpenMetrics %v, want %v", accept, got, want)
		}
	}
}

func TestMetrics(t *testing.T) {
	f := lgNewFixture(t, ServerOptions{}, nil)
	m := f.m
	web := childConfig(t, "web", "sleep", nil)
	web.NumProcesses = 2
	if err := m.Load("default", web, nil, true); err != nil {
		t.Fatal(err)
	}
	crash := childConfig(t, "crash", "exit", map[string]string{"EXIT_CODE": "3"})
	// Gives up at the first crash, so that the counts stay still while the
	// test compares them.
	crash.Flapping = &FlapConfig{Attempts: 1, Window: 100, RetryIn: 1000, MaxRetry: 0}
	if err := m.Load("default", crash, nil, true); err != nil {
		t.Fatal(err)
	}
	// A second session. (Names can no longer hold a quote or a backslash,
	// see ValidateName; the escaping is covered by the writer test above.)
	odd := `q-s_x`
	if err := m.Load(odd, childConfig(t, "w", "sleep", nil), nil, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "web to run 2 and crash to restart", func() bool {
		wi, _ := m.JobInfo("default.web", false)
		ci, _ := m.JobInfo("default.crash", false)
		return wi.Running == 2 && ci.State == JobGaveUp && ci.LastExit != nil
	})
	// Overflow a subscription so that the drop counter moves.
	sub := m.Events().Subscribe(1, ".")
	defer sub.Unsubscribe()
	m.StopJob(odd + ".w")
	m.StartJob(odd + ".w")
	waitFor(t, 10*time.Second, "an event drop", func() bool { return m.Events().Drops() > 0 })
	m.StopJob(odd + ".w")

	st, h, body := f.do("GET", "/metrics", "")
	if st != 200 || h.Get("Content-Type") != MetricsContentType {
		t.Fatalf("GET /metrics: %d %q\n%s", st, h.Get("Content-Type"), body)
	}
	samples, types := mtParse(t, string(body))
	for _, s := range samples {
		if _, ok := s.labels["job"]; ok {
			t.Errorf("%s has a job label (Prometheus renames it exported_job)", s.name)
		}
		if _, ok := s.labels["pid"]; ok {
			t.Errorf("%s has a pid label (a new series at every restart)", s.name)
		}
	}

	jl := []string{"session", "default", "name", "web"}
	if v := mtMust(t, samples, "gaffer_job_desired_processes", jl...); v != 2 {
		t.Errorf("desired %v", v)
	}
	if v := mtMust(t, samples, "gaffer_job_running_processes", jl...); v != 2 {
		t.Errorf("running %v", v)
	}
	for _, s := range mtJobStates {
		want := 0.0
		if s == JobRunning {
			want = 1
		}
		if v := mtMust(t, samples, "gaffer_job_state", "name", "web", "state", s); v != want {
			t.Errorf("state %s = %v, want %v", s, v, want)
		}
	}
	if v := mtMust(t, samples, "gaffer_job_state", "name", "w", "session", odd, "state", JobStopped); v != 1 {
		t.Errorf("state of %s: %v", odd, v)
	}
	ci, _ := m.JobInfo("default.crash", false)
	cl := []string{"session", "default", "name", "crash"}
	if v := mtMust(t, samples, "gaffer_job_restarts_total", cl...); v != float64(ci.Restarts) || v < 1 {
		t.Errorf("restarts %v, job info says %d", v, ci.Restarts)
	}
	if v := mtMust(t, samples, "gaffer_job_flaps_total", cl...); v != float64(ci.Flaps) {
		t.Errorf("flaps %v, job info says %d", v, ci.Flaps)
	}
	if v := mtMust(t, samples, "gaffer_job_last_exit_code", cl...); v != 3 {
		t.Errorf("last exit code %v, want 3", v)
	}
	if _, ok := mtFind(samples, "gaffer_job_last_exit_code", jl...); ok {
		t.Errorf("a job whose processes never exited has a last exit code")
	}

	procs, _ := m.JobProcesses("default.web")
	sort.Slice(procs, func(a, b int) bool { return procs[a].ID < procs[b].ID })
	for i, p := range procs {
		pl := append(jl, "slot", strconv.Itoa(i))
		if v := mtMust(t, samples, "gaffer_process_start_time_seconds", pl...); math.Abs(v-float64(p.Created.UnixNano())/1e9) > 1e-3 {
			t.Errorf("slot %d: start time %v, created %v", i, v, p.Created)
		}
		if mtResourceStats {
			if v := mtMust(t, samples, "gaffer_process_resident_memory_bytes", pl...); v <= 0 {
				t.Errorf("rss %v", v)
			}
			if v := mtMust(t, samples, "gaffer_process_open_fds", pl...); v < 1 {
				t.Errorf("fds %v", v)
			}
			if v := mtMust(t, samples, "gaffer_process_threads", pl...); v < 1 {
				t.Errorf("threads %v", v)
			}
			if v := mtMust(t, samples, "gaffer_process_cpu_seconds_total", pl...); v < 0 {
				t.Errorf("cpu %v", v)
			}
		}
	}
	if v := mtMust(t, samples, "go_goroutines"); v < 1 {
		t.Errorf("goroutines %v", v)
	}
	if v := mtMust(t, samples, "go_threads"); v < 1 {
		t.Errorf("threads %v", v)
	}
	if v := mtMust(t, samples, "go_memstats_heap_alloc_bytes"); v <= 0 || v > mtMust(t, samples, "go_memstats_sys_bytes") {
		t.Errorf("heap in use %v, more than obtained from the system", v)
	}
	if v := mtMust(t, samples, "process_cpu_seconds_total"); v <= 0 {
		t.Errorf("own cpu %v", v)
	}
	if v := mtMust(t, samples, "process_max_fds"); v < 1 {
		t.Errorf("max fds %v", v)
	}
	if v := mtMust(t, samples, "process_start_time_seconds"); v > float64(time.Now().Unix()+1) || v < float64(time.Now().Add(-24*time.Hour).Unix()) {
		t.Errorf("own start time %v", v)
	}
	if mtResourceStats {
		if mtMust(t, samples, "process_resident_memory_bytes") <= 0 || mtMust(t, samples, "process_open_fds") < 1 {
			t.Errorf("own rss or fds is 0")
		}
	}
	if v := mtMust(t, samples, "gaffer_events_published_total"); v < 10 {
		t.Errorf("published %v", v)
	}
	if v := mtMust(t, samples, "gaffer_events_dropped_total"); v < 1 || v > float64(m.Events().Drops()) {
		t.Errorf("drops %v, bus says %d", v, m.Events().Drops())
	}
	if mtMust(t, samples, "gaffer_build_info", "version", Version) != 1 {
		t.Errorf("build info")
	}
	if types["gaffer_job_restarts_total"] != "counter" || types["gaffer_job_state"] != "gauge" || types["process_cpu_seconds_total"] != "counter" {
		t.Errorf("types: %v", types)
	}

	if st, h, body := f.do("HEAD", "/metrics", ""); st != 200 || len(body) != 0 || h.Get("Content-Type") != MetricsContentType {
		t.Errorf("HEAD /metrics: %d %q %q", st, h.Get("Content-Type"), body)
	}
	f.fail("POST", "/metrics", "", 405, "method_not_allowed")

	// OpenMetrics, as a Prometheus server asks for it.
	req, _ := http.NewRequest("GET", f.srv.URL+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	omBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/openmetrics-text; version=1.0.0; charset=utf-8" {
		t.Fatalf("OpenMetrics Content-Type %q", ct)
	}
	omSamples, omTypes := mtParseOpenMetrics(t, string(omBody))
	if omTypes["gaffer_job_restarts_total"] != "counter" || omTypes["process_cpu_seconds_total"] != "counter" {
		t.Errorf("OpenMetrics types: %v", omTypes)
	}
	if v := mtMust(t, omSamples, "gaffer_job_restarts_total", cl...); v != float64(ci.Restarts) {
		t.Errorf("OpenMetrics restarts %v", v)
	}

	mtPromtool(t, m, body)
}

// TestMetricsSlots: a restarted process takes the slot of the one it
// replaces, so a job's per-process series stay as many as its processes.
func TestMetricsSlots(t *testing.T) {
	f := lgNewFixture(t, ServerOptions{}, nil)
	m := f.m
	web := childConfig(t, "web", "sleep", nil)
	web.NumProcesses = 3
	if err := m.Load("default", web, nil, true); err != nil {
		t.Fatal(err)
	}
	f.procsOf("default.web")
	waitFor(t, 10*time.Second, "3 processes", func() bool {
		wi, _ := m.JobInfo("default.web", false)
		return wi.Running == 3
	})
	slotsOf := func() map[string]float64 { // slot → start time
		_, _, body := f.do("GET", "/metrics", "")
		samples, _ := mtParse(t, string(body))
		out := map[string]float64{}
		for _, s := range samples {
			if s.name == "gaffer_process_start_time_seconds" && s.labels["name"] == "web" {
				out[s.labels["slot"]] = s.value
			}
		}
		return out
	}
	before := slotsOf()
	if len(before) != 3 || before["0"] == 0 || before["1"] == 0 || before["2"] == 0 {
		t.Fatalf("slots %v, want 0, 1 and 2", before)
	}
	procs, _ := m.JobProcesses("default.web")
	sort.Slice(procs, func(a, b int) bool { return procs[a].ID < procs[b].ID })
	for round := 0; round < 2; round++ {
		victim := procs[1] // the middle one: slot 1
		if err := m.Kill(victim.ID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the replacement", func() bool {
			wi, _ := m.JobInfo("default.web", false)
			return wi.Running == 3 && !slices.Contains(wi.Processes, victim.ID)
		})
		after := slotsOf()
		if len(after) != 3 {
			t.Fatalf("round %d: slots %v, want 3", round, after)
		}
		if after["0"] != before["0"] || after["2"] != before["2"] || after["1"] == before["1"] {
			t.Fatalf("round %d: the replacement did not take slot 1: before %v, after %v", round, before, after)
		}
		before = after
		procs, _ = m.JobProcesses("default.web")
		sort.Slice(procs, func(a, b int) bool { return procs[a].ID < procs[b].ID })
		// Keep the victim in slot 1: the newest process is last by pid.
		procs = []*Process{procs[0], procs[2], procs[1]}
	}
}

// mtPromtool runs `promtool check metrics` on the exposition when promtool
// is installed. It runs as a one-off process of a job (the test binary
// reaps every child, so os/exec cannot wait for it).
func mtPromtool(t *testing.T, m *Manager, exposition []byte) {
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool is not on PATH: skipping `promtool check metrics` (apt-get install prometheus provides it)")
		return
	}
	file := filepath.Join(t.TempDir(), "metrics.txt")
	if err := os.WriteFile(file, exposition, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := NewJobConfig("promtool", shellQuote(path)+" check metrics < "+shellQuote(file))
	cfg.Shell = true
	cfg.RedirectOutput = []string{"out", "out"}
	if err := m.Load("mtcheck", cfg, nil, false); err != nil {
		t.Fatal(err)
	}
	sub := m.Events().Subscribe(16, "job.mtcheck.promtool.exit")
	defer sub.Unsubscribe()
	pid, err := m.Commit("mtcheck.promtool", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := m.Process(pid)
	var ev Event
	select {
	case ev = <-sub.C:
	case <-time.After(30 * time.Second):
		t.Fatal("promtool did not exit within 30 s")
	}
	var out []byte
	if p != nil {
		<-p.IODone()
		if st, ok := p.Stream("out"); ok {
			chunks, _ := st.Backlog(0)
			for _, c := range chunks {
				out = append(out, c.Data...)
			}
		}
	}
	if code := ev.Data["exit_status"]; code != 0 {
		t.Fatalf("promtool check metrics: exit status %v\n%s\n--- exposition ---\n%s", code, out, exposition)
	}
	t.Logf("promtool check metrics: ok %s", out)
}

func TestMetricsPermissions(t *testing.T) {
	store, err := OpenAuthStore(filepath.Join(t.TempDir(), "auth"))
	if err != nil {
		t.Fatal(err)
	}
	_, admin, err := store.CreateAdminUser("root", "rootpw")
	if err != nil {
		t.Fatal(err)
	}
	reader, err := store.CreateKey(admin, "reader", Permissions{Read: []string{"app"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := lgNewFixture(t, ServerOptions{Auth: store, RequireKey: true}, nil)
	for _, sid := range []string{"app", "other"} {
		if err := f.m.Load(sid, childConfig(t, "web", "sleep", nil), nil, true); err != nil {
			t.Fatal(err)
		}
	}
	f.procsOf("app.web")
	f.procsOf("other.web")
	f.fail("GET", "/metrics", "", 401, "unauthorized")
	for key, want := range map[string][]string{reader.Key: {"app.web"}, admin.Key: {"app.web", "other.web"}} {
		f.key = key
		st, _, body := f.do("GET", "/metrics", "")
		if st != 200 {
			t.Fatalf("GET /metrics: %d %s", st, body)
		}
		samples, _ := mtParse(t, string(body))
		jobs := map[string]bool{}
		for _, s := range samples {
			if n := s.labels["name"]; n != "" && s.labels["session"] != "" {
				jobs[s.labels["session"]+"."+n] = true
			}
		}
		var got []string
		for j := range jobs {
			got = append(got, j)
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("key %s sees jobs %v, want %v", key[:6], got, want)
		}
		if _, ok := mtFind(samples, "go_goroutines"); !ok {
			t.Errorf("gafferd's own figures are missing for key %s", key[:6])
		}
		if _, ok := mtFind(samples, "gaffer_process_start_time_seconds", "session", "app", "name", "web"); !ok {
			t.Errorf("no process figures for %s", want[0])
		}
	}
}
