package gaffer

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestCfgParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1234", 1234, true}, {"1KB", 1024, true}, {"10MB", 10 << 20, true},
		{"1GB", 1 << 30, true}, {"2 mb", 2 << 20, true}, {"1.5K", 1536, true}, {"3MiB", 3 << 20, true},
		{"7b", 7, true}, {"", 0, false}, {"MB", 0, false}, {"-1", 0, false}, {"10XB", 0, false},
		{"1..2", 0, false}, {"99999999999999999GB", 0, false},
	}
	for _, tt := range tests {
		got, err := cfgParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("cfgParseSize(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// jobSample is a process section that sets every INI key of the table to
// a value other than its default.
const jobSample = `[process:web]
cmd = python -m http.server
args = --bind '127.0.0.1' 8000
env:PYTHONPATH = /srv/lib
os_env = false
uid = www-data
gid = 33
cwd = www
shell = yes
detach = true
numprocesses = 3
start = false
priority = -1
graceful_timeout = 2.5
redirect_output = out, err
redirect_input = on
custom_streams = ctl, data
flapping = 3 2
ring_size = 1MiB
stdout_logfile = out.log
stderr_logfile = /var/log/err.log
logfile = logs/all.log
logfile_maxbytes = 1.5GB
logfile_backups = 0
logfile_timestamps = on
sockets = tcp://127.0.0.1:0, web=unix:app.sock?backlog=16
memory_max = 64MB
cpu_max = 50%
pids_max = 100
memory_restart = 32MB
limit_nofile = 1024:4096
limit_nproc = 100
limit_core = 0:infinity
limit_memlock = 64K
limit_as = 1G
nice = 5
umask = 027
oom_score_adj = 100
ready = tcp:127.0.0.1:8000
ready_timeout = 5
watchdog = 20
depends_on = other:started
restart_with = other
health = http://127.0.0.1:8000/health
health_interval = 3
health_timeout = 1.5
health_retries = 5
restart = on-failure
success_exit_codes = 0, 3
restart_delay = 1, 30
essential = true
`

// The INI reader, the JSON writer (Map) and the JSON reader agree on
// every setting of the table: a job read from a file, written as JSON and
// read back is the same job, field by field.
func TestINIAndJSONReadTheSameJob(t *testing.T) {
	c, _, err := cfgLoad(t, jobSample+"[process:other]\ncmd = other\n")
	if err != nil {
		t.Fatal(err)
	}
	ini, defaults := c.Jobs[1].Config, c.Jobs[0].Config // web depends on other: other loads first
	if ini.Name != "web" {
		t.Fatalf("jobs in the order %s, %s: web depends on other and loads after it", c.Jobs[0].Config.Name, ini.Name)
	}
	sec, err := ParseINI("sample", []byte(jobSample))
	if err != nil {
		t.Fatal(err)
	}
	set := map[*jobSetting]bool{}
	for _, k := range sec.Sections[0].Keys {
		s, _ := iniJobSetting(k)
		set[s] = true
	}
	for i := range jobSettings {
		if s := &jobSettings[i]; !s.jsonOnly && !set[s] {
			t.Errorf("jobSample does not set %s", s.iniForm())
		}
	}
	// Every field of the sample differs from the INI default, so a field
	// no row reads or writes fails the comparison below.
	def, got := reflect.ValueOf(defaults), reflect.ValueOf(ini)
	for i := 0; i < def.NumField(); i++ {
		if reflect.DeepEqual(def.Field(i).Interface(), got.Field(i).Interface()) {
			t.Errorf("JobConfig.%s: jobSample leaves the default", def.Type().Field(i).Name)
		}
	}
	m := roundTrip(t, ini.Map(true))
	m["start"] = ini.Start // an action: Map leaves it out
	back, err := JobConfigFromMap(m)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, ini) {
		t.Errorf("INI → Map → JobConfigFromMap:\n got %+v\nwant %+v", back, ini)
	}
	// Clone is deep in every field that holds a reference.
	d := ini.Clone()
	d.Args[0], d.Env["PYTHONPATH"], d.RedirectOutput[0], d.CustomStreams[0], d.Flapping.Attempts = "x", "x", "x", "x", 9
	if !reflect.DeepEqual(back, ini) {
		t.Errorf("a change to a clone changed the original: %+v", ini)
	}
}

// The README's table of job settings (Configuration reference, after
// [process:NAME]) names every key of the table, and no other, with the
// table's default.
func TestREADMEListsEveryJobSetting(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "\n`[process:NAME]`")
	if start < 0 {
		t.Fatal("README: no paragraph starting with `[process:NAME]`")
	}
	var rows []string
	in := false
	for _, line := range strings.Split(text[start:], "\n") {
		if strings.HasPrefix(line, "| key | default | meaning |") {
			in = true
			continue
		}
		if in && !strings.HasPrefix(line, "|") {
			break
		}
		if in && !strings.HasPrefix(line, "|---") {
			rows = append(rows, line)
		}
	}
	if len(rows) == 0 {
		t.Fatal("README: no | key | default | meaning | table after `[process:NAME]`")
	}
	listed := map[string]string{} // key → its default in the README
	for _, row := range rows {
		cells := strings.Split(row, " | ")
		if len(cells) < 3 {
			t.Errorf("README row %q: not key | default | meaning", row)
			continue
		}
		var keys []string
		for _, tok := range strings.Split(cells[0], "`")[1:] {
			if tok = strings.TrimSuffix(tok, ":NAME"); tok != "" && !strings.ContainsAny(tok, " ,()") && !slices.Contains(keys, tok) {
				keys = append(keys, tok)
			}
			// every other piece is the text between two backticked keys
		}
		defs := strings.Split(cells[1], ", ")
		for i, k := range keys {
			def := cells[1]
			if len(defs) == len(keys) {
				def = defs[i]
			}
			if _, dup := listed[k]; dup {
				t.Errorf("README lists %s twice", k)
			}
			listed[k] = def
		}
	}
	for i := range jobSettings {
		s := &jobSettings[i]
		def, ok := listed[s.key]
		switch {
		case !ok:
			t.Errorf("README: the job setting %s is missing from the table", s.key)
		case def != s.def:
			t.Errorf("README: %s defaults to %q, the table of job settings says %q", s.key, def, s.def)
		}
		delete(listed, s.key)
	}
	for k := range listed {
		t.Errorf("README lists %s, which is not a job setting", k)
	}
}
