package gaffer

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadConfigSSLSection(t *testing.T) {
	c, dir, err := cfgLoad(t, "[gaffer]\nbind = 127.0.0.1:5443\n[ssl]\ncertfile = c.pem\nkeyfile = k.pem\n")
	if err != nil {
		t.Fatal(err)
	}
	if e := c.Endpoints[0]; e.CertFile != filepath.Join(dir, "c.pem") || e.KeyFile != filepath.Join(dir, "k.pem") {
		t.Errorf("endpoint = %+v", e)
	}
}

func TestLoadConfigJobs(t *testing.T) {
	c, dir, err := cfgLoad(t, `
[process:web]
cmd = python -m http.server
args = --bind '127.0.0.1' 8000
env:PYTHONPATH = /srv/lib
env:lower_Case = kept
uid = www-data
gid = 33
cwd = www
detach = true
shell = no
os_env = false
numprocesses = 3
start = false
flapping = 3 2
redirect_output = out, err
redirect_input = on
custom_streams = ctl, data
graceful_timeout = 2.5
priority = -1
ring_size = 64KB
stdout_logfile = logs/web.out
stderr_logfile = /var/log/web.err
logfile = both.log
logfile_maxbytes = 10MB
logfile_backups = 3
logfile_timestamps = true

[job:api:worker]
cmd = ./worker
flapping = off
graceful_timeout = 1m30s

[process:api.cron]
cmd = ./cron
flapping = true
[process:batch/report]
cmd = ./report
priority = 5

[env:api:worker]
path = /usr/bin
Token = x
[env:web]
PYTHONPATH = /override
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfgNames(c.Jobs); !reflect.DeepEqual(got, []string{"default.web", "batch.report", "api.worker", "api.cron"}) {
		t.Fatalf("jobs = %q", got)
	}
	web := c.Jobs[0].Config
	want := NewJobConfig("web", "python -m http.server")
	want.Args = []string{"--bind", "127.0.0.1", "8000"}
	want.Env = map[string]string{"PYTHONPATH": "/override", "lower_Case": "kept"}
	want.UID, want.GID, want.Cwd = "www-data", "33", filepath.Join(dir, "www")
	want.Detach, want.OSEnv, want.NumProcesses, want.Start = true, false, 3, false
	want.Flapping = &FlapConfig{Attempts: 3, Window: 2, RetryIn: 7, MaxRetry: 5}
	want.RedirectOutput, want.RedirectInput, want.CustomStreams = []string{"out", "err"}, true, []string{"ctl", "data"}
	want.GracefulTimeout, want.Priority, want.RingSize = 2500*time.Millisecond, -1, 64<<10
	want.StdoutLogfile, want.StderrLogfile, want.Logfile = filepath.Join(dir, "logs/web.out"), "/var/log/web.err", filepath.Join(dir, "both.log")
	want.LogfileMaxBytes, want.LogfileBackups, want.LogfileTimestamps = 10<<20, 3, true
	if !reflect.DeepEqual(web, want) {
		t.Errorf("web:\n got %+v\nwant %+v", web, want)
	}
	worker := c.Jobs[2].Config
	if worker.Flapping != nil || worker.GracefulTimeout != 90*time.Second || worker.Cwd != dir || !worker.OSEnv {
		t.Errorf("worker = %+v", worker)
	}
	if !reflect.DeepEqual(worker.Env, map[string]string{"PATH": "/usr/bin", "TOKEN": "x"}) {
		t.Errorf("worker env = %v", worker.Env)
	}
	if cron := c.Jobs[3].Config; cron.Flapping == nil || *cron.Flapping != DefaultFlapConfig() || cron.Env != nil {
		t.Errorf("cron = %+v (env must not leak between jobs)", cron)
	}
}

func TestLoadConfigIncludes(t *testing.T) {
	t.Setenv("GAFFER_PLUGIN_DIR", "")
	dir := cfgWrite(t, map[string]string{
		"main.ini": `[gaffer]
include = extra.ini missing-*.ini conf/*.ini
include_dir = more
[process:main]
cmd = m
[webhooks]
load = http://h/main
`,
		"extra.ini":      "[gaffer]\ninclude = main.ini extra.ini\n[process:extra]\ncmd = e\npriority = 1\n",
		"conf/a.ini":     "[process:conf_a]\ncmd = a\ncwd = rel\n",
		"conf/b.txt":     "not ini",
		"more/z.ini":     "[process:z]\ncmd = z\n[webhooks]\nstart = http://h/z\n",
		"more/sub/y.ini": "[process:y]\ncmd = y\n[env:main]\nX = 1\n",
	})
	c, err := LoadConfig(filepath.Join(dir, "main.ini"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range c.Files {
		rel, _ := filepath.Rel(dir, f)
		files = append(files, rel)
	}
	if want := []string{"main.ini", "extra.ini", "conf/a.ini", "more/sub/y.ini", "more/z.ini"}; !reflect.DeepEqual(files, want) {
		t.Errorf("Files = %q, want %q", files, want)
	}
	if want := []string{"default.extra", "default.main", "default.conf_a", "default.y", "default.z"}; !reflect.DeepEqual(cfgNames(c.Jobs), want) {
		t.Errorf("jobs = %q, want %q", cfgNames(c.Jobs), want)
	}
	if cwd := c.Jobs[2].Config.Cwd; cwd != filepath.Join(dir, "rel") {
		t.Errorf("relative cwd in an include = %q, want it under Dir", cwd)
	}
	if env := c.Jobs[1].Config.Env; env["X"] != "1" {
		t.Errorf("env from an included [env:main] = %v", env)
	}
	if len(c.Webhooks) != 2 || c.Webhooks[1].Event != "start" {
		t.Errorf("Webhooks = %+v", c.Webhooks)
	}
}

func TestLoadConfigIncludeErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"daemon key in include", map[string]string{"main.ini": "[gaffer]\ninclude = b.ini\n", "b.ini": "[gaffer]\nbind = :1\n"},
			"b.ini:2 (section [gaffer]): bind: only include and include_dir may be set in an included file"},
		{"job in two files", map[string]string{"main.ini": "[gaffer]\ninclude = b.ini\n[process:x]\ncmd = a\n", "b.ini": "[job:default.x]\ncmd = b\n"},
			"b.ini:1 (section [job:default.x]): job default.x is already defined at "},
		{"syntax error in include", map[string]string{"main.ini": "[gaffer]\ninclude = b.ini\n", "b.ini": "\n\n[x\n"},
			"b.ini:3: section header"},
		{"error in nested include", map[string]string{"main.ini": "[gaffer]\ninclude = b.ini\n", "b.ini": "[gaffer]\ninclude = c.ini\n"},
			"b.ini:2 (section [gaffer]): include: stat "},
		{"bad pattern", map[string]string{"main.ini": "[gaffer]\ninclude = [.ini\n"},
			"main.ini:2 (section [gaffer]): include: bad pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := cfgWrite(t, tt.files)
			_, err := LoadConfig(filepath.Join(dir, "main.ini"))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if msg := strings.TrimPrefix(err.Error(), dir+"/"); !strings.HasPrefix(msg, tt.want) {
				t.Errorf("error\n %q\nwant prefix\n %q", msg, tt.want)
			}
		})
	}
}

func TestNormalizeBind(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"127.0.0.1:5000", "127.0.0.1:5000", ""},
		{"localhost", "localhost:5000", ""},
		{":8080", ":8080", ""},
		{"0.0.0.0:0", "0.0.0.0:0", ""},
		{"[::1]:6000", "[::1]:6000", ""},
		{"[::1]", "[::1]:5000", ""},
		{"::1", "[::1]:5000", ""},
		{"[fe80::1%eth0]:80", "[fe80::1%eth0]:80", ""},
		{"unix:/run/g.sock", "unix:/run/g.sock", ""},
		{" host:1 ", "host:1", ""},
		{"", "", "empty address"},
		{"unix:", "", "needs a path"},
		{"[::1", "", "missing ']'"},
		{"[::1]x", "", "unexpected"},
		{"[1.2.3.4]:1", "", "not an IPv6 address"},
		{"a:b:c", "", "write IPv6 addresses as [addr]:port"},
		{"host:70000", "", "invalid port"},
		{"host:", "", "invalid port"},
		{"ho st:1", "", "invalid host"},
	}
	for _, tt := range tests {
		got, err := NormalizeBind(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("NormalizeBind(%q) = %q, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizeBind(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// The seed's [env:dummy] next to [process:test:dummy]: an env section
// names a job by its name when one session alone defines it; the
// qualified form keeps working, and an env section in an included file
// finds a job of the main file.
func TestEnvSectionFindsItsJob(t *testing.T) {
	c, _, err := cfgLoad(t, "[process:test:dummy]\ncmd = ./dummy.py\n[env:dummy]\nport = 80\n"+
		"[process:test:other]\ncmd = x\n[env:test:other]\nA = 1\n"+
		"[process:web]\ncmd = x\n[process:s.api]\ncmd = x\n[env:s/api]\nB = 2\n[env:web]\nC = 3\n")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]map[string]string{}
	for _, j := range c.Jobs {
		env[j.FullName()] = j.Config.Env
	}
	want := map[string]map[string]string{"test.dummy": {"PORT": "80"}, "test.other": {"A": "1"},
		"default.web": {"C": "3"}, "s.api": {"B": "2"}}
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("env = %v, want %v", env, want)
	}

	dir := cfgWrite(t, map[string]string{
		"gaffer.ini":   "[gaffer]\ninclude = conf.d/*.ini\n[process:app:worker]\ncmd = x\n",
		"conf.d/a.ini": "[env:worker]\nQUEUE = jobs\n",
		"conf.d/b.ini": "[process:batch:worker]\ncmd = y\n",
	})
	_, err = LoadConfig(filepath.Join(dir, "gaffer.ini"))
	for _, want := range []string{"conf.d/a.ini:1 (section [env:worker]): ambiguous", "app.worker (" + filepath.Join(dir, "gaffer.ini") + ":3)",
		"batch.worker (" + filepath.Join(dir, "conf.d/b.ini") + ":1)", "write [env:app:worker] or [env:batch:worker]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to contain %q", err, want)
		}
	}
}
