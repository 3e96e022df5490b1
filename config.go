package gaffer

// gafferd's configuration: the Config type, LoadConfig, and the keys of
// the [gaffer] section. The files, their includes and the other sections
// are read in configini.go; the keys of the process sections are the
// table of job settings (jobsettings.go).

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DefaultBind is the address gafferd listens on when the configuration
// names none: loopback only, as the seed documents.
const DefaultBind = "127.0.0.1:5000"

// DefaultSocketMode is the permission of a unix socket endpoint.
const DefaultSocketMode os.FileMode = 0o600

// cfgDefaultPort is the port of a bind address written without one.
const cfgDefaultPort = "5000"

// cfgMaxFileSize bounds one configuration file.
const cfgMaxFileSize = 16 << 20

// cfgMaxFiles bounds the number of files read through includes.
const cfgMaxFiles = 1000

// Config is gafferd's configuration file, parsed and validated.
//
// Relative paths in the files (cwd, log files, pidfile, error_log,
// data_dir, plugins_dir, certificates, unix sockets) are resolved against
// Dir, the directory of the main file, whichever file they are written in.
// A job without cwd runs in Dir, so "cmd = ./dummy.sh" next to gaffer.ini
// works wherever gafferd was started from. cmd itself is left as written.
type Config struct {
	Path, Dir string   // file read (absolute), and its directory
	Files     []string // every file read (main + includes), in reading order

	// Endpoints come from [gaffer] http_endpoints = a, b and the
	// [endpoint:a] sections, or from 0.5.2's single [gaffer] bind (named
	// "default"). Default: one endpoint 127.0.0.1:5000.
	Endpoints []EndpointConfig

	// RequireKey is [gaffer] require_key; nil when absent, so that gafferd
	// applies its own default (0.5.2: on whenever a config file exists).
	RequireKey        *bool
	UnixSocketTrusted bool // [gaffer] unix_socket_trusted: no key needed on unix sockets

	Daemonize bool
	Pidfile   string
	ErrorLog  string // "" or "-": stderr
	LogLevel  string // critical, error, warning, info (default) or debug
	LogFormat string // text (default) or json
	Backlog   int    // listen backlog, default 128

	// MaxSubscriberMemory ([gaffer] max_subscriber_memory, bytes) bounds
	// what the readers of process output hold beyond the ring buffers; 0
	// is the default (32 MiB).
	MaxSubscriberMemory int64

	LookupdAddresses []string // every key starting with lookupd_address, in file order
	BroadcastAddress string   // http:// or https:// origin announced to lookupd
	// LookupdKey is the lookupds' node key: [gaffer] lookupd_key, or the
	// first line of the file named by lookupd_key_file.
	LookupdKey string
	// TLS client files for the lookupd connections ([lookup_ssl]).
	LookupdCertFile, LookupdKeyFile, LookupdCAFile string

	PluginsDir       string // [gaffer] plugins_dir, else $GAFFER_PLUGIN_DIR, else Dir/plugins
	MandatoryPlugins []string
	DataDir          string   // [gaffer] data_dir, default Dir
	CORSOrigins      []string // exact origins, "scheme://host[:port]"

	Webhooks      []WebhookConfig // [webhooks] event = url [url…], in file order
	WebhookSecret string          // [webhooks] secret

	Jobs []SessionJob // sorted by priority (stable: file order, includes after the main file)

	// MaxProcesses ([gaffer] max_processes) bounds the numprocesses and
	// scale target of every job; MaxGracefulTimeout ([gaffer]
	// max_graceful_timeout) bounds every graceful_timeout. The jobs of the
	// file are checked against them at load.
	MaxProcesses       int
	MaxGracefulTimeout time.Duration

	// Warnings are things accepted but ignored, as "file:line: message".
	Warnings []string
}

// SessionJob is one job of the configuration with the session it loads into.
type SessionJob struct {
	Session string
	Config  JobConfig
}

// FullName returns "session.job".
func (j SessionJob) FullName() string { return j.Session + "." + j.Config.Name }

// EndpointConfig is one listener of gafferd. Bind is "host:port" (the host
// may be empty for every interface, IPv6 hosts in brackets) or
// "unix:/absolute/path". A ClientCAFile asks for client certificates
// signed by that CA (mutual TLS). SocketMode is the permission of a unix
// socket.
type EndpointConfig struct {
	Name, Bind, CertFile, KeyFile, ClientCAFile string
	SocketMode                                  os.FileMode
}

// IsUnix reports whether the endpoint is a unix socket.
func (e EndpointConfig) IsUnix() bool { return strings.HasPrefix(e.Bind, "unix:") }

// WebhookConfig is one (event, url) pair of [webhooks]. Event is an event
// name as written (job names in it keep their case), or "." for every
// event.
type WebhookConfig struct {
	Event string `json:"event"`
	URL   string `json:"url"`
}

// LoadConfig reads gafferd's configuration. path is a file (the seed's
// gaffer.ini) or a directory holding gafferd.ini (0.5.2); in a directory
// the file is optional and its absence gives the defaults.
//
// Decisions where the original was loose:
//   - [gaffer] is optional. An unknown section, and an unknown key in
//     [gaffer], [endpoint:x], [ssl], [lookup_ssl], [auth] or a process
//     section, are errors naming the file, the line and the key. [auth]
//     is accepted for 0.5.2 files and ignored (with a warning).
//   - A section repeated in one file, or a key repeated in a section, is
//     an error (see ParseINI).
//   - include = a.ini conf.d/*.ini: whitespace-separated, relative to the
//     including file, glob patterns allowed. A literal path that does not
//     exist is an error; a pattern that matches nothing is not.
//     include_dir = d1 d2: every *.ini below each directory (which must
//     exist), recursively, in sorted order. Included files are read right
//     after the file that includes them; a file already read is skipped,
//     which also breaks include cycles. An included file's [gaffer]
//     section may only hold include and include_dir.
//   - A job (after [process:x]/[job:x] and the spec forms are resolved)
//     or two env sections of one job, in one file or across files, is an
//     error. [webhooks] sections of several files add up.
//   - [env:session:x] names the job x of that session. [env:x] names the
//     job x of whichever session defines one: an error when none does, and
//     an error naming the candidates (file:line) when several do.
func LoadConfig(path string) (*Config, error) {
	return loadConfig(path, false)
}

// loadConfig is LoadConfig; with needFile, a directory without gafferd.ini
// is an error too (a reload must not read "no file" as "no jobs").
func loadConfig(path string, needFile bool) (*Config, error) {
	if path == "" {
		return nil, &ConfigError{File: "config", Msg: "empty path"}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &ConfigError{File: path, Msg: err.Error(), Err: err}
	}
	st, err := os.Stat(abs)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, &ConfigError{File: abs, Msg: pe.Err.Error(), Err: err}
		}
		return nil, &ConfigError{File: abs, Msg: err.Error(), Err: err}
	}
	file := abs
	if st.IsDir() {
		file = filepath.Join(abs, "gafferd.ini")
	}
	l := &cfgLoader{
		cfg:  &Config{Path: file, Dir: filepath.Dir(file)},
		read: map[string]bool{},
		seen: map[string]string{},
	}
	if st.IsDir() {
		if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
			if needFile {
				return nil, &ConfigError{File: file, Msg: "no such file: the configuration directory holds no gafferd.ini to read", Err: err}
			}
			return l.finish()
		}
	}
	if err := l.readFile(file, 0); err != nil {
		return nil, err
	}
	return l.load()
}

// load applies the files read and builds the Config.
func (l *cfgLoader) load() (*Config, error) {
	for i, f := range l.files {
		if err := l.apply(f, i == 0); err != nil {
			return nil, err
		}
	}
	return l.finish()
}

type cfgLoader struct {
	cfg   *Config
	files []*INIFile
	read  map[string]bool
	// noInclude ignores include and include_dir (fuzzing).
	noInclude bool
	seen      map[string]string // canonical section → "file:line" of its first definition

	gaffer    *INISection // main file's [gaffer]
	gafferF   string
	endpoints []cfgSection
	ssl       *cfgSection
	jobs      []SessionJob
	jobSecs   []cfgSection // the section of each of jobs, same index
	envs      []cfgSection
	webhooks  []cfgSection
	sockets   map[string]cfgSocket // [socket:NAME] sections (configsockets.go)
}

type cfgSection struct {
	file string
	sec  *INISection
	spec string // the part after "kind:"
}

// finish applies [gaffer], endpoints, webhooks and env sections, then
// sorts the jobs.
func (l *cfgLoader) finish() (*Config, error) {
	c := l.cfg
	c.LogLevel, c.LogFormat, c.Backlog, c.DataDir = "info", "text", 128, c.Dir
	c.MaxProcesses, c.MaxGracefulTimeout = DefaultMaxProcesses, DefaultMaxGracefulTimeout
	c.PluginsDir = os.Getenv("GAFFER_PLUGIN_DIR")
	if c.PluginsDir == "" {
		c.PluginsDir = filepath.Join(c.Dir, "plugins")
	}
	var bind *INIKey
	var endpointNames []string
	var endpointsKey INIKey
	if l.gaffer != nil {
		for _, k := range l.gaffer.Keys {
			if err := l.gafferKey(k, &bind, &endpointNames); err != nil {
				return nil, err
			}
			if k.Name == "http_endpoints" {
				endpointsKey = k
			}
		}
	}
	if err := l.buildEndpoints(bind, endpointNames, endpointsKey); err != nil {
		return nil, err
	}
	if err := l.buildWebhooks(); err != nil {
		return nil, err
	}
	if err := l.applyEnvs(); err != nil {
		return nil, err
	}
	if err := l.resolveSockets(); err != nil {
		return nil, err
	}
	if err := l.checkLimits(); err != nil {
		return nil, err
	}
	sort.SliceStable(l.jobs, func(i, j int) bool { return l.jobs[i].Config.Priority < l.jobs[j].Config.Priority })
	c.Jobs = l.jobs
	return c, nil
}

// path resolves a relative path against Dir.
func (l *cfgLoader) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.cfg.Dir, p)
}

func (l *cfgLoader) gafferKey(k INIKey, bind **INIKey, endpoints *[]string) error {
	c := l.cfg
	v := k.Value
	errf := func(format string, args ...any) error {
		return &ConfigError{File: l.gafferF, Line: k.Line, Section: l.gaffer.Name, Msg: k.Raw + ": " + fmt.Sprintf(format, args...)}
	}
	boolean := func(dst *bool) error {
		b, ok := ParseBool(v)
		if !ok {
			return errf("expected a boolean (true/false, yes/no, on/off, 1/0), got %q", v)
		}
		*dst = b
		return nil
	}
	switch {
	case k.Name == "include" || k.Name == "include_dir":
		// read by readFile
	case k.Name == "bind":
		*bind = &k
	case k.Name == "http_endpoints":
		*endpoints = cfgList(v)
		if len(*endpoints) == 0 {
			return errf("no endpoint named")
		}
	case k.Name == "require_key":
		var b bool
		if err := boolean(&b); err != nil {
			return err
		}
		c.RequireKey = &b
	case k.Name == "unix_socket_trusted":
		return boolean(&c.UnixSocketTrusted)
	case k.Name == "daemonize":
		return boolean(&c.Daemonize)
	case k.Name == "pidfile":
		c.Pidfile = l.path(v)
	case k.Name == "error_log":
		if v != "-" {
			v = l.path(v)
		}
		c.ErrorLog = v
	case k.Name == "log_level":
		lv := strings.ToLower(v)
		if lv == "warn" {
			lv = "warning"
		}
		switch lv {
		case "critical", "error", "warning", "info", "debug":
			c.LogLevel = lv
		default:
			return errf("expected critical, error, warning, info or debug, got %q", v)
		}
	case k.Name == "log_format":
		lv := strings.ToLower(v)
		if lv != "text" && lv != "json" && lv != "journal" {
			return errf("expected text, json or journal, got %q", v)
		}
		c.LogFormat = lv
	case k.Name == "backlog":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1<<20 {
			return errf("expected a positive integer, got %q", v)
		}
		c.Backlog = n
	case k.Name == "max_subscriber_memory":
		n, err := cfgParseSize(v)
		if err != nil || n < 1<<20 {
			return errf("expected a size of at least 1MB (like 32MB), got %q", v)
		}
		c.MaxSubscriberMemory = n
	case strings.HasPrefix(k.Name, "lookupd_address"):
		u, err := cfgURL(v)
		if err != nil {
			return errf("%v", err)
		}
		for _, a := range c.LookupdAddresses {
			if a == u {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s:%d: %s: %s is already listed; ignored", l.gafferF, k.Line, k.Raw, u))
				return nil
			}
		}
		c.LookupdAddresses = append(c.LookupdAddresses, u)
	case k.Name == "lookupd_key" || k.Name == "lookupd_key_file":
		return l.lookupdKey(k, errf) // lookupd_node.go
	case k.Name == "broadcast_address":
		if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
			return errf("must start with http:// or https://, got %q", v)
		}
		if _, err := cfgURL(v); err != nil {
			return errf("%v", err)
		}
		c.BroadcastAddress = strings.TrimSuffix(v, "/")
	case k.Name == "plugins_dir" || k.Name == "plugin_dir":
		if v == "" {
			return errf("empty path")
		}
		c.PluginsDir = l.path(v)
	case k.Name == "mandatory_plugins":
		c.MandatoryPlugins = cfgList(v)
	case k.Name == "data_dir":
		if v == "" {
			return errf("empty path")
		}
		c.DataDir = l.path(v)
	case k.Name == "max_processes" || k.Name == "max_graceful_timeout":
		if err := cfgLimitKey(c, k.Name, v); err != nil {
			return errf("%v", err)
		}
	case k.Name == "cors_origins":
		c.CORSOrigins = nil
		for _, o := range cfgList(v) {
			origin, err := cfgOrigin(o)
			if err != nil {
				return errf("%v", err)
			}
			c.CORSOrigins = append(c.CORSOrigins, origin)
		}
	default:
		return errf("unknown key (want bind, http_endpoints, require_key, unix_socket_trusted, daemonize, pidfile, error_log, log_level, log_format, backlog, lookupd_address*, lookupd_key, lookupd_key_file, broadcast_address, plugins_dir, mandatory_plugins, data_dir, cors_origins, max_processes, max_graceful_timeout, include, include_dir)")
	}
	return nil
}
