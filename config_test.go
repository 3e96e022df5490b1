package gaffer

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// cfgWrite creates the files (relative path → content) in a new temporary
// directory and returns it.
func cfgWrite(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// cfgLoad writes content as gaffer.ini and loads it.
func cfgLoad(t *testing.T, content string) (*Config, string, error) {
	t.Helper()
	t.Setenv("GAFFER_PLUGIN_DIR", "")
	dir := cfgWrite(t, map[string]string{"gaffer.ini": content})
	c, err := LoadConfig(filepath.Join(dir, "gaffer.ini"))
	return c, dir, err
}

func cfgNames(jobs []SessionJob) []string {
	var out []string
	for _, j := range jobs {
		out = append(out, j.FullName())
	}
	return out
}

func TestLoadConfigExample(t *testing.T) {
	t.Setenv("GAFFER_PLUGIN_DIR", "")
	c, err := LoadConfig(filepath.Join("examples", "gaffer.ini"))
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.Abs("examples")
	if c.Dir != dir || c.Path != filepath.Join(dir, "gaffer.ini") || len(c.Files) != 1 {
		t.Errorf("Dir %q Path %q Files %q", c.Dir, c.Path, c.Files)
	}
	wantEP := []EndpointConfig{{Name: "main", Bind: "127.0.0.1:5000", SocketMode: 0o600},
		{Name: "sock", Bind: "unix:" + filepath.Join(dir, "gafferd.sock"), SocketMode: 0o600}}
	if !reflect.DeepEqual(c.Endpoints, wantEP) {
		t.Errorf("Endpoints = %+v", c.Endpoints)
	}
	if got := cfgNames(c.Jobs); !reflect.DeepEqual(got, []string{"default.priority0", "default.dummy", "default.echo"}) {
		t.Errorf("job order = %q", got)
	}
	dummy := c.Jobs[1].Config
	if dummy.Cmd != "./dummy.sh" || dummy.Cwd != dir || !dummy.OSEnv || !dummy.Start {
		t.Errorf("dummy = %+v", dummy)
	}
	if !reflect.DeepEqual(dummy.Env, map[string]string{"GREETING": "hello", "PORT": "80"}) {
		t.Errorf("dummy env = %v", dummy.Env)
	}
	if dummy.Flapping == nil || *dummy.Flapping != (FlapConfig{Attempts: 2, Window: 1, RetryIn: 7, MaxRetry: 5}) {
		t.Errorf("dummy flapping = %+v", dummy.Flapping)
	}
	echo := c.Jobs[2].Config
	if !echo.RedirectInput || !reflect.DeepEqual(echo.RedirectOutput, []string{"stdout", "stderr"}) || echo.Env != nil {
		t.Errorf("echo = %+v", echo)
	}
	if c.LogLevel != "info" || c.LogFormat != "text" || c.Backlog != 128 || c.DataDir != dir ||
		c.PluginsDir != filepath.Join(dir, "plugins") || c.RequireKey != nil {
		t.Errorf("defaults: %+v", c)
	}
	for _, s := range []string{"dummy.sh", "echo.sh"} {
		if st, err := os.Stat(filepath.Join("examples", s)); err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("examples/%s: not an executable file (%v)", s, err)
		}
	}
}

func TestLoadConfigDirectory(t *testing.T) {
	t.Setenv("GAFFER_PLUGIN_DIR", "/opt/plugins")
	dir := cfgWrite(t, map[string]string{"gafferd.ini": "[gaffer]\nbind = 0.0.0.0:5001\nrequire_key = false\n"})
	c, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != filepath.Join(dir, "gafferd.ini") || c.Dir != dir {
		t.Errorf("Path %q Dir %q", c.Path, c.Dir)
	}
	if want := []EndpointConfig{{Name: "default", Bind: "0.0.0.0:5001", SocketMode: 0o600}}; !reflect.DeepEqual(c.Endpoints, want) {
		t.Errorf("Endpoints = %+v", c.Endpoints)
	}
	if c.RequireKey == nil || *c.RequireKey || c.PluginsDir != "/opt/plugins" {
		t.Errorf("RequireKey %v PluginsDir %q", c.RequireKey, c.PluginsDir)
	}

	// A directory without gafferd.ini gives the defaults.
	empty := t.TempDir()
	c, err = LoadConfig(empty)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Files) != 0 || len(c.Jobs) != 0 || c.Endpoints[0].Bind != DefaultBind || c.DataDir != empty {
		t.Errorf("defaults: %+v", c)
	}
	if _, err := LoadConfig(filepath.Join(empty, "missing.ini")); err == nil {
		t.Error("a missing file loaded")
	}
}

func TestLoadConfigGaffer(t *testing.T) {
	c, dir, err := cfgLoad(t, `[gaffer]
http_endpoints = tcp, sock, tls
require_key = yes
unix_socket_trusted = on
daemonize = 1
pidfile = run/gafferd.pid
error_log = -
log_level = WARN
log_format = json
backlog = 64
lookupd_address1 = http://127.0.0.1:5010
lookupd_address2 = https://lookup.example:5010
lookupd_address = http://127.0.0.1:5010
broadcast_address = http://10.0.0.1:5000/
plugins_dir = /srv/plugins
mandatory_plugins = a, b c
data_dir = state
cors_origins = http://A.example:1, https://b.example/

[endpoint:tcp]
bind = [::1]:6000
[endpoint:sock]
bind = unix:gafferd.sock
socket_mode = 0660
[endpoint:tls]
bind = example.org
certfile = cert.pem
keyfile = /etc/key.pem
cacert = ca.pem

[webhooks]
load = http://h/1 http://h/2
job.default.Web.exit = https://h/3
. = http://h/all
secret = s3cret

[lookup_ssl]
ca_certs = lookup-ca.pem

[auth]
auth_dbname = auth.db
`)
	if err != nil {
		t.Fatal(err)
	}
	wantEP := []EndpointConfig{
		{Name: "tcp", Bind: "[::1]:6000", SocketMode: 0o600},
		{Name: "sock", Bind: "unix:" + filepath.Join(dir, "gafferd.sock"), SocketMode: 0o660},
		{Name: "tls", Bind: "example.org:5000", CertFile: filepath.Join(dir, "cert.pem"), KeyFile: "/etc/key.pem", ClientCAFile: filepath.Join(dir, "ca.pem"), SocketMode: 0o600},
	}
	if !reflect.DeepEqual(c.Endpoints, wantEP) {
		t.Errorf("Endpoints:\n got %+v\nwant %+v", c.Endpoints, wantEP)
	}
	if !c.Endpoints[1].IsUnix() || c.Endpoints[0].IsUnix() {
		t.Error("IsUnix")
	}
	if c.RequireKey == nil || !*c.RequireKey || !c.UnixSocketTrusted || !c.Daemonize {
		t.Errorf("booleans: %v %v %v", c.RequireKey, c.UnixSocketTrusted, c.Daemonize)
	}
	if c.Pidfile != filepath.Join(dir, "run/gafferd.pid") || c.ErrorLog != "-" || c.LogLevel != "warning" || c.LogFormat != "json" || c.Backlog != 64 {
		t.Errorf("daemon settings: %+v", c)
	}
	if want := []string{"http://127.0.0.1:5010", "https://lookup.example:5010"}; !reflect.DeepEqual(c.LookupdAddresses, want) {
		t.Errorf("LookupdAddresses = %q", c.LookupdAddresses)
	}
	if c.BroadcastAddress != "http://10.0.0.1:5000" || c.PluginsDir != "/srv/plugins" || c.DataDir != filepath.Join(dir, "state") {
		t.Errorf("%q %q %q", c.BroadcastAddress, c.PluginsDir, c.DataDir)
	}
	if !reflect.DeepEqual(c.MandatoryPlugins, []string{"a", "b", "c"}) {
		t.Errorf("MandatoryPlugins = %q", c.MandatoryPlugins)
	}
	if want := []string{"http://a.example:1", "https://b.example"}; !reflect.DeepEqual(c.CORSOrigins, want) {
		t.Errorf("CORSOrigins = %q", c.CORSOrigins)
	}
	wantHooks := []WebhookConfig{{"load", "http://h/1"}, {"load", "http://h/2"}, {"job.default.Web.exit", "https://h/3"}, {".", "http://h/all"}}
	if !reflect.DeepEqual(c.Webhooks, wantHooks) || c.WebhookSecret != "s3cret" {
		t.Errorf("Webhooks = %+v, secret %q", c.Webhooks, c.WebhookSecret)
	}
	if c.LookupdCAFile != filepath.Join(dir, "lookup-ca.pem") {
		t.Errorf("LookupdCAFile = %q", c.LookupdCAFile)
	}
	if len(c.Warnings) != 2 || !strings.Contains(c.Warnings[0], "gaffer.ini:41: [auth] auth_dbname is ignored") ||
		!strings.Contains(c.Warnings[1], "gaffer.ini:13: lookupd_address: http://127.0.0.1:5010 is already listed") {
		t.Errorf("Warnings = %q", c.Warnings)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"unknown process key", "[process:web]\ncmd = x\ncolour = red\n", "gaffer.ini:3 (section [process:web]): colour: unknown key (want cmd, args"},
		{"bad int", "[process:web]\ncmd = x\nnumprocesses = many\n", "gaffer.ini:3 (section [process:web]): numprocesses: expected an integer, got \"many\""},
		{"bad bool", "[process:web]\ncmd = x\nshell = maybe\n", "gaffer.ini:3 (section [process:web]): shell: expected a boolean"},
		{"bad flapping", "[process:web]\ncmd = x\nflapping = 2 x\n", "gaffer.ini:3 (section [process:web]): flapping: window must be a number"},
		{"bad size", "[process:web]\ncmd = x\nlogfile_maxbytes = 10XB\n", "gaffer.ini:3 (section [process:web]): logfile_maxbytes: expected a size"},
		{"bad timeout", "[process:web]\ncmd = x\ngraceful_timeout = -1\n", "gaffer.ini:3 (section [process:web]): graceful_timeout: expected a number of seconds >= 0"},
		{"bad args", "[process:web]\ncmd = x\nargs = 'open\n", "gaffer.ini:3 (section [process:web]): args: unterminated single quote"},
		{"no cmd", "\n[process:web]\nnumprocesses = 2\n", "gaffer.ini:2 (section [process:web]): no cmd"},
		{"validate names the key line", "[process:web]\ncmd = x\nnumprocesses = -2\n", "gaffer.ini:3 (section [process:web]): numprocesses: must be >= 0"},
		{"validate labels", "[process:web]\ncmd = x\nredirect_output = a, b, c\n", "gaffer.ini:3 (section [process:web]): redirect_output: at most 2 labels"},
		{"bad session", "[process:a b:web]\ncmd = x\n", "gaffer.ini:1 (section [process:a b:web]): sessionid: \"a b\" must not contain ' ' (a name is made of ASCII letters, digits, '_' and '-') (the session is the part before"},
		{"empty job name", "[process:grp:]\ncmd = x\n", "gaffer.ini:1 (section [process:grp:]): job name: missing"},
		{"duplicate job", "[process:web]\ncmd = x\n[job:default:web]\ncmd = y\n", "gaffer.ini:3 (section [job:default:web]): job default.web is already defined at "},
		{"env without job", "[process:web]\ncmd = x\n[env:api]\nA = 1\n", "gaffer.ini:3 (section [env:api]): no job named api in any session"},
		{"env without job of its session", "[process:s:web]\ncmd = x\n[env:t:web]\nA = 1\n", "gaffer.ini:3 (section [env:t:web]): no job t.web"},
		{"env ambiguous", "[process:web]\ncmd = x\n[process:s:web]\ncmd = y\n[env:web]\nA = 1\n",
			"gaffer.ini:5 (section [env:web]): ambiguous: [env:web] names a job web of several sessions: default.web (gaffer.ini:1), s.web (gaffer.ini:3); write [env:default:web] or [env:s:web]"},
		{"two env sections of one job", "[process:s:web]\ncmd = x\n[env:web]\nA = 1\n[env:s.web]\nB = 2\n", "gaffer.ini:5 (section [env:s.web]): job s.web already has an env section, at "},
		{"bad env name", "[process:web]\ncmd = x\nenv: = 1\n", "gaffer.ini:3 (section [process:web]): env:: invalid environment variable name \"\""},
		{"bad env section name", "[process:web]\ncmd = x\n[env:web]\nA B = 1\n", "gaffer.ini:4 (section [env:web]): invalid environment variable name \"A B\""},
		{"unknown section", "[proces:web]\ncmd = x\n", "gaffer.ini:1 (section [proces:web]): unknown section"},
		{"section without spec", "[process]\ncmd = x\n", "gaffer.ini:1 (section [process]): unknown section"},
		{"gaffer with spec", "[gaffer:x]\n", "gaffer.ini:1 (section [gaffer:x]): unknown section"},
		{"unknown gaffer key", "[gaffer]\nbindd = x\n", "gaffer.ini:2 (section [gaffer]): bindd: unknown key"},
		{"bad log level", "[gaffer]\nlog_level = loud\n", "gaffer.ini:2 (section [gaffer]): log_level: expected critical"},
		{"bad backlog", "[gaffer]\nbacklog = 0\n", "gaffer.ini:2 (section [gaffer]): backlog: expected a positive integer"},
		{"bad broadcast", "[gaffer]\nbroadcast_address = 10.0.0.1:5000\n", "gaffer.ini:2 (section [gaffer]): broadcast_address: must start with http://"},
		{"bad lookupd", "[gaffer]\nlookupd_address1 = ws://x\n", "gaffer.ini:2 (section [gaffer]): lookupd_address1: expected an http:// or https:// URL"},
		{"cors star", "[gaffer]\ncors_origins = *\n", "gaffer.ini:2 (section [gaffer]): cors_origins: \"*\" is not allowed"},
		{"cors path", "[gaffer]\ncors_origins = http://a/x\n", "gaffer.ini:2 (section [gaffer]): cors_origins: expected an origin"},
		{"bad bind", "[gaffer]\nbind = 127.0.0.1:http\n", "gaffer.ini:2 (section [gaffer]): bind: \"127.0.0.1:http\": invalid port"},
		{"bind and endpoints", "[gaffer]\nbind = :1\nhttp_endpoints = a\n[endpoint:a]\nbind = :2\n", "gaffer.ini:2 (section [gaffer]): bind: set either bind or http_endpoints"},
		{"missing endpoint section", "[gaffer]\nhttp_endpoints = a, b\n[endpoint:a]\nbind = :2\n", "gaffer.ini:2 (section [gaffer]): http_endpoints: no [endpoint:b] section"},
		{"endpoint without list", "[endpoint:a]\nbind = :2\n", "gaffer.ini:1 (section [endpoint:a]): endpoint sections need"},
		{"endpoint without bind", "[gaffer]\nhttp_endpoints = a\n[endpoint:a]\ncertfile = c\n", "gaffer.ini:3 (section [endpoint:a]): bind: missing"},
		{"endpoint unknown key", "[gaffer]\nhttp_endpoints = a\n[endpoint:a]\nbind = :1\nport = 2\n", "gaffer.ini:5 (section [endpoint:a]): port: unknown key"},
		{"socket mode on tcp", "[gaffer]\nhttp_endpoints = a\n[endpoint:a]\nbind = :1\nsocket_mode = 0600\n", "gaffer.ini:5 (section [endpoint:a]): socket_mode: only for unix"},
		{"bad socket mode", "[gaffer]\nhttp_endpoints = a\n[endpoint:a]\nbind = unix:/s\nsocket_mode = 0999\n", "gaffer.ini:5 (section [endpoint:a]): socket_mode: expected an octal mode"},
		{"cert without key", "[gaffer]\nhttp_endpoints = a\n[endpoint:a]\nbind = :1\ncertfile = c\n", "gaffer.ini:3 (section [endpoint:a]): endpoint a: certfile and keyfile go together"},
		{"same bind twice", "[gaffer]\nhttp_endpoints = a b\n[endpoint:a]\nbind = :1\n[endpoint:b]\nbind = :1\n", "gaffer.ini:5 (section [endpoint:b]): endpoint b binds :1, as endpoint a does"},
		{"webhook without url", "[webhooks]\nload =\n", "gaffer.ini:2 (section [webhooks]): load: no URL"},
		{"webhook bad url", "[webhooks]\nload = ftp://x\n", "gaffer.ini:2 (section [webhooks]): load: expected an http://"},
		{"unknown ssl key", "[ssl]\nciphers = x\n", "gaffer.ini:2 (section [ssl]): ciphers: unknown key"},
		{"missing include", "[gaffer]\ninclude = nope.ini\n", "gaffer.ini:2 (section [gaffer]): include: stat "},
		{"include_dir not a dir", "[gaffer]\ninclude_dir = gaffer.ini\n", "gaffer.ini:2 (section [gaffer]): include_dir: "},
		{"ini syntax", "[gaffer]\nbind\n", "gaffer.ini:2: expected \"key = value\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, dir, err := cfgLoad(t, tt.in)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			msg := strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
			if !strings.HasPrefix(msg, tt.want) {
				t.Errorf("error\n %q\nwant prefix\n %q", msg, tt.want)
			}
			if AsError(err).Code != CodeInvalidConfig {
				t.Errorf("AsError code = %q", AsError(err).Code)
			}
		})
	}
}

func TestConfigErrorFormat(t *testing.T) {
	tests := []struct {
		e    ConfigError
		want string
	}{
		{ConfigError{File: "a.ini", Line: 3, Msg: "m"}, "a.ini:3: m"},
		{ConfigError{File: "a.ini", Line: 3, Section: "process:x", Msg: "m"}, "a.ini:3 (section [process:x]): m"},
		{ConfigError{File: "a.ini", Msg: "m"}, "a.ini: m"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q, want %q", tt.e, got, tt.want)
		}
		var ge *Error
		if !errors.As(&tt.e, &ge) || ge.Code != CodeInvalidConfig {
			t.Errorf("errors.As(*Error) failed for %+v", tt.e)
		}
	}
}

func TestLoadConfigMissingIsNotExist(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.ini"))
	if !errors.Is(err, os.ErrNotExist) || AsError(err).Code != CodeInvalidConfig || !strings.HasSuffix(err.Error(), "nope.ini: no such file or directory") {
		t.Errorf("err = %v", err)
	}
}

// FuzzLoadConfig feeds one file (includes ignored) through the whole
// configuration builder: it must never panic, and what it accepts must be
// valid jobs in priority order.
func FuzzLoadConfig(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("examples", "gaffer.ini")); err == nil {
		f.Add(data)
	}
	f.Add([]byte("[gaffer]\nhttp_endpoints = a\n[endpoint:a]\nbind = [::1]\n[process:g:n]\ncmd = x\nflapping = 1 2\n[env:g.n]\nk = v\n"))
	f.Add([]byte("[gaffer]\nbind = unix:s\ncors_origins = http://a\n[webhooks]\n. = http://h\n[process:a]\ncmd = b\nlogfile_maxbytes = 1.5GB\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l := &cfgLoader{cfg: &Config{Path: "/cfg/gaffer.ini", Dir: "/cfg"}, read: map[string]bool{}, seen: map[string]string{}, noInclude: true}
		if err := l.addFile("/cfg/gaffer.ini", data, 0); err != nil {
			return
		}
		c, err := l.load()
		if err != nil {
			if !strings.HasPrefix(err.Error(), "/cfg/gaffer.ini") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if len(c.Endpoints) == 0 {
			t.Fatal("no endpoint")
		}
		for i, j := range c.Jobs {
			if err := j.Config.Validate(); err != nil || ValidateSession(j.Session) != nil {
				t.Fatalf("invalid job accepted: %+v: %v", j, err)
			}
			if i > 0 && c.Jobs[i-1].Config.Priority > j.Config.Priority {
				t.Fatal("jobs not sorted by priority")
			}
		}
	})
}
