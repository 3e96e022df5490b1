package gaffer

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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
	// TLS client files for the lookupd connections ([lookup_ssl]).
	LookupdCertFile, LookupdKeyFile, LookupdCAFile string

	PluginsDir       string // [gaffer] plugins_dir, else $GAFFER_PLUGIN_DIR, else Dir/plugins
	MandatoryPlugins []string
	DataDir          string   // [gaffer] data_dir, default Dir
	CORSOrigins      []string // exact origins, "scheme://host[:port]"

	Webhooks      []WebhookConfig // [webhooks] event = url [url…], in file order
	WebhookSecret string          // [webhooks] secret

	Jobs []SessionJob // sorted by priority (stable: file order, includes after the main file)

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
//     or an [env:x] defined twice, in one file or across files, is an
//     error. [webhooks] sections of several files add up.
//   - [env:x] naming no job is an error.
func LoadConfig(path string) (*Config, error) {
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
	envs      []cfgSection
	webhooks  []cfgSection
}

type cfgSection struct {
	file string
	sec  *INISection
	spec string // the part after "kind:"
}

func (l *cfgLoader) readFile(path string, depth int) error {
	path = filepath.Clean(path)
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	if l.read[path] {
		return nil
	}
	if len(l.read) >= cfgMaxFiles || depth > 64 {
		return &ConfigError{File: path, Msg: fmt.Sprintf("not read: more than %d included files, or includes nested too deep", cfgMaxFiles)}
	}
	l.read[path] = true
	fileErr := func(err error) error {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return &ConfigError{File: path, Msg: pe.Err.Error(), Err: err}
		}
		return &ConfigError{File: path, Msg: err.Error(), Err: err}
	}
	f, err := os.Open(path)
	if err != nil {
		return fileErr(err)
	}
	data, err := io.ReadAll(io.LimitReader(f, cfgMaxFileSize+1))
	f.Close()
	if err != nil {
		return fileErr(err)
	}
	if len(data) > cfgMaxFileSize {
		return &ConfigError{File: path, Msg: fmt.Sprintf("larger than %d bytes", cfgMaxFileSize)}
	}
	return l.addFile(path, data, depth)
}

// addFile parses one file and reads the files it includes.
func (l *cfgLoader) addFile(path string, data []byte, depth int) error {
	ini, err := ParseINI(path, data)
	if err != nil {
		return err
	}
	l.files = append(l.files, ini)
	l.cfg.Files = append(l.cfg.Files, path)
	if l.noInclude {
		return nil
	}
	for _, sec := range ini.Sections {
		if !strings.EqualFold(sec.Name, "gaffer") {
			continue
		}
		for _, k := range sec.Keys {
			if k.Name != "include" && k.Name != "include_dir" {
				continue
			}
			for _, pat := range strings.Fields(k.Value) {
				if !filepath.IsAbs(pat) {
					pat = filepath.Join(filepath.Dir(path), pat)
				}
				var err error
				if k.Name == "include" {
					err = l.include(pat, depth)
				} else {
					err = l.includeDir(pat, depth)
				}
				if err != nil {
					var ce *ConfigError
					if errors.As(err, &ce) {
						return err
					}
					return &ConfigError{File: path, Line: k.Line, Section: sec.Name, Msg: fmt.Sprintf("%s: %v", k.Raw, err)}
				}
			}
		}
	}
	return nil
}

func (l *cfgLoader) include(pat string, depth int) error {
	if !strings.ContainsAny(pat, "*?[") {
		st, err := os.Stat(pat)
		if err != nil {
			return err
		}
		if st.IsDir() {
			return fmt.Errorf("%s is a directory (use include_dir)", pat)
		}
		return l.readFile(pat, depth+1)
	}
	matches, err := filepath.Glob(pat)
	if err != nil {
		return fmt.Errorf("bad pattern %q: %v", pat, err)
	}
	for _, m := range matches {
		if st, err := os.Stat(m); err != nil || st.IsDir() {
			continue
		}
		if err := l.readFile(m, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (l *cfgLoader) includeDir(dir string, depth int) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	var found []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".ini") {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(found)
	for _, p := range found {
		if err := l.readFile(p, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// claim records the first definition of a canonical section name and
// rejects a second one.
func (l *cfgLoader) claim(canon, file string, sec *INISection) error {
	where := fmt.Sprintf("%s:%d", file, sec.Line)
	if first, ok := l.seen[canon]; ok {
		return &ConfigError{File: file, Line: sec.Line, Section: sec.Name, Msg: fmt.Sprintf("%s is already defined at %s", canon, first)}
	}
	l.seen[canon] = where
	return nil
}

// apply sorts the sections of one file by kind.
func (l *cfgLoader) apply(f *INIFile, main bool) error {
	for _, sec := range f.Sections {
		kind, spec, hasSpec := strings.Cut(sec.Name, ":")
		kind = strings.ToLower(strings.TrimSpace(kind))
		spec = strings.TrimSpace(spec)
		errf := func(format string, args ...any) error {
			return &ConfigError{File: f.Path, Line: sec.Line, Section: sec.Name, Msg: fmt.Sprintf(format, args...)}
		}
		if hasSpec != (kind == "process" || kind == "job" || kind == "env" || kind == "endpoint") || (hasSpec && spec == "") {
			return errf("unknown section (want [gaffer], [endpoint:NAME], [process:NAME], [job:NAME], [env:NAME], [webhooks], [ssl], [lookup_ssl] or [auth])")
		}
		cs := cfgSection{file: f.Path, sec: sec, spec: spec}
		switch kind {
		case "gaffer":
			if !main {
				for _, k := range sec.Keys {
					if k.Name != "include" && k.Name != "include_dir" {
						return &ConfigError{File: f.Path, Line: k.Line, Section: sec.Name, Msg: fmt.Sprintf("%s: only include and include_dir may be set in an included file; daemon settings belong in %s", k.Raw, l.cfg.Path)}
					}
				}
				continue
			}
			if err := l.claim("[gaffer]", f.Path, sec); err != nil {
				return err
			}
			l.gaffer, l.gafferF = sec, f.Path
		case "endpoint":
			if err := l.claim("[endpoint:"+spec+"]", f.Path, sec); err != nil {
				return err
			}
			l.endpoints = append(l.endpoints, cs)
		case "ssl", "lookup_ssl", "auth":
			if err := l.claim("["+kind+"]", f.Path, sec); err != nil {
				return err
			}
			if err := l.tlsSection(kind, cs); err != nil {
				return err
			}
		case "webhooks":
			l.webhooks = append(l.webhooks, cs)
		case "process", "job", "env":
			session, name := cfgSplitSpec(spec)
			if err := ValidateSession(session); err != nil {
				return errf("%v (the session is the part before the first ':', '.' or '/')", AsError(err).Reason)
			}
			if err := ValidateName(name, "job name"); err != nil {
				return errf("%v", AsError(err).Reason)
			}
			if kind == "env" {
				if err := l.claim("[env:"+session+"."+name+"]", f.Path, sec); err != nil {
					return err
				}
				l.envs = append(l.envs, cs)
				continue
			}
			if err := l.claim("job "+session+"."+name, f.Path, sec); err != nil {
				return err
			}
			jc, err := l.job(f.Path, sec, name)
			if err != nil {
				return err
			}
			l.jobs = append(l.jobs, SessionJob{Session: session, Config: jc})
		default:
			return errf("unknown section (want [gaffer], [endpoint:NAME], [process:NAME], [job:NAME], [env:NAME], [webhooks], [ssl], [lookup_ssl] or [auth])")
		}
	}
	return nil
}

// cfgSplitSpec splits a section spec: "name" is in session "default";
// "group:name", "group.name" and "group/name" put the job name in the
// session group, which comes first (the seed's order).
func cfgSplitSpec(spec string) (session, name string) {
	if i := strings.IndexAny(spec, ":./"); i >= 0 {
		return strings.TrimSpace(spec[:i]), strings.TrimSpace(spec[i+1:])
	}
	return "default", spec
}

// finish applies [gaffer], endpoints, webhooks and env sections, then
// sorts the jobs.
func (l *cfgLoader) finish() (*Config, error) {
	c := l.cfg
	c.LogLevel, c.LogFormat, c.Backlog, c.DataDir = "info", "text", 128, c.Dir
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
		if lv != "text" && lv != "json" {
			return errf("expected text or json, got %q", v)
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
		return errf("unknown key (want bind, http_endpoints, require_key, unix_socket_trusted, daemonize, pidfile, error_log, log_level, log_format, backlog, lookupd_address*, broadcast_address, plugins_dir, mandatory_plugins, data_dir, cors_origins, include, include_dir)")
	}
	return nil
}

// tlsSection reads [ssl] (TLS defaults for TCP endpoints), [lookup_ssl]
// (TLS client files for lookupd) and [auth] (accepted, ignored).
func (l *cfgLoader) tlsSection(kind string, cs cfgSection) error {
	allowed := map[string][]string{
		"ssl":        {"certfile", "keyfile", "ca_certs", "cacert", "cert_reqs"},
		"lookup_ssl": {"certfile", "keyfile", "ca_certs", "cacert", "cert_reqs"},
		"auth":       {"auth_backend", "keys_backend", "auth_dbname", "keys_dbname"},
	}[kind]
	for _, k := range cs.sec.Keys {
		ok := false
		for _, a := range allowed {
			ok = ok || k.Name == a
		}
		if !ok {
			return &ConfigError{File: cs.file, Line: k.Line, Section: cs.sec.Name, Msg: fmt.Sprintf("%s: unknown key (want %s)", k.Raw, strings.Join(allowed, ", "))}
		}
		switch {
		case kind == "auth":
			l.cfg.Warnings = append(l.cfg.Warnings, fmt.Sprintf("%s:%d: [auth] %s is ignored: users and keys live in gafferd's own file in data_dir", cs.file, k.Line, k.Raw))
		case kind == "lookup_ssl" && k.Name == "certfile":
			l.cfg.LookupdCertFile = l.path(k.Value)
		case kind == "lookup_ssl" && k.Name == "keyfile":
			l.cfg.LookupdKeyFile = l.path(k.Value)
		case kind == "lookup_ssl" && (k.Name == "ca_certs" || k.Name == "cacert"):
			l.cfg.LookupdCAFile = l.path(k.Value)
		}
	}
	if kind == "ssl" {
		l.ssl = &cs
	}
	return nil
}

func (l *cfgLoader) buildEndpoints(bind *INIKey, names []string, namesKey INIKey) error {
	c := l.cfg
	gerr := func(k INIKey, format string, args ...any) error {
		return &ConfigError{File: l.gafferF, Line: k.Line, Section: "gaffer", Msg: k.Raw + ": " + fmt.Sprintf(format, args...)}
	}
	sections := map[string]cfgSection{}
	for _, e := range l.endpoints {
		sections[e.spec] = e
	}
	switch {
	case names != nil && bind != nil:
		return gerr(*bind, "set either bind or http_endpoints, not both")
	case names != nil:
		listed := map[string]bool{}
		for _, n := range names {
			if listed[n] {
				return gerr(namesKey, "endpoint %q listed twice", n)
			}
			listed[n] = true
			cs, ok := sections[n]
			if !ok {
				return gerr(namesKey, "no [endpoint:%s] section", n)
			}
			e, err := l.endpoint(n, cs)
			if err != nil {
				return err
			}
			c.Endpoints = append(c.Endpoints, e)
		}
		for _, e := range l.endpoints {
			if !listed[e.spec] {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s:%d: [%s] is not listed in [gaffer] http_endpoints; ignored", e.file, e.sec.Line, e.sec.Name))
			}
		}
	default:
		for _, e := range l.endpoints {
			return &ConfigError{File: e.file, Line: e.sec.Line, Section: e.sec.Name, Msg: "endpoint sections need [gaffer] http_endpoints listing them"}
		}
		addr := DefaultBind
		if bind != nil {
			var err error
			if addr, err = NormalizeBind(bind.Value); err != nil {
				return gerr(*bind, "%v", err)
			}
			if strings.HasPrefix(addr, "unix:") {
				addr = "unix:" + l.path(addr[len("unix:"):])
			}
		}
		c.Endpoints = []EndpointConfig{{Name: "default", Bind: addr, SocketMode: DefaultSocketMode}}
	}
	if s := l.ssl; s != nil {
		var def EndpointConfig
		for _, k := range s.sec.Keys {
			switch k.Name {
			case "certfile":
				def.CertFile = l.path(k.Value)
			case "keyfile":
				def.KeyFile = l.path(k.Value)
			case "ca_certs", "cacert":
				def.ClientCAFile = l.path(k.Value)
			}
		}
		for i := range c.Endpoints {
			if e := &c.Endpoints[i]; !e.IsUnix() && e.CertFile == "" {
				e.CertFile, e.KeyFile, e.ClientCAFile = def.CertFile, def.KeyFile, def.ClientCAFile
			}
		}
	}
	binds := map[string]string{}
	for _, e := range c.Endpoints {
		where := &ConfigError{File: l.gafferF, Section: "gaffer"}
		if cs, ok := sections[e.Name]; ok {
			where = &ConfigError{File: cs.file, Line: cs.sec.Line, Section: cs.sec.Name}
		} else if l.ssl != nil {
			where = &ConfigError{File: l.ssl.file, Line: l.ssl.sec.Line, Section: l.ssl.sec.Name}
		}
		switch other, dup := binds[e.Bind]; {
		case (e.CertFile == "") != (e.KeyFile == ""):
			where.Msg = fmt.Sprintf("endpoint %s: certfile and keyfile go together", e.Name)
		case e.ClientCAFile != "" && e.CertFile == "":
			where.Msg = fmt.Sprintf("endpoint %s: cacert (client certificates) needs certfile and keyfile", e.Name)
		case dup:
			where.Msg = fmt.Sprintf("endpoint %s binds %s, as endpoint %s does", e.Name, e.Bind, other)
		}
		if where.Msg != "" {
			return where
		}
		binds[e.Bind] = e.Name
	}
	return nil
}

func (l *cfgLoader) endpoint(name string, cs cfgSection) (EndpointConfig, error) {
	e := EndpointConfig{Name: name, SocketMode: DefaultSocketMode}
	var modeKey *INIKey
	for _, k := range cs.sec.Keys {
		errf := func(format string, args ...any) error {
			return &ConfigError{File: cs.file, Line: k.Line, Section: cs.sec.Name, Msg: k.Raw + ": " + fmt.Sprintf(format, args...)}
		}
		switch k.Name {
		case "bind":
			b, err := NormalizeBind(k.Value)
			if err != nil {
				return e, errf("%v", err)
			}
			if strings.HasPrefix(b, "unix:") {
				b = "unix:" + l.path(b[len("unix:"):])
			}
			e.Bind = b
		case "certfile":
			e.CertFile = l.path(k.Value)
		case "keyfile":
			e.KeyFile = l.path(k.Value)
		case "cacert", "ca_certs":
			e.ClientCAFile = l.path(k.Value)
		case "socket_mode":
			m, err := strconv.ParseUint(k.Value, 8, 32)
			if err != nil || m > 0o777 {
				return e, errf("expected an octal mode like 0600, got %q", k.Value)
			}
			e.SocketMode, modeKey = os.FileMode(m), &k
		default:
			return e, errf("unknown key (want bind, certfile, keyfile, cacert, socket_mode)")
		}
	}
	if e.Bind == "" {
		return e, &ConfigError{File: cs.file, Line: cs.sec.Line, Section: cs.sec.Name, Msg: "bind: missing"}
	}
	if modeKey != nil && !e.IsUnix() {
		return e, &ConfigError{File: cs.file, Line: modeKey.Line, Section: cs.sec.Name, Msg: "socket_mode: only for unix: endpoints"}
	}
	return e, nil
}

func (l *cfgLoader) buildWebhooks() error {
	c := l.cfg
	secretAt := ""
	for _, cs := range l.webhooks {
		for _, k := range cs.sec.Keys {
			errf := func(format string, args ...any) error {
				return &ConfigError{File: cs.file, Line: k.Line, Section: cs.sec.Name, Msg: k.Raw + ": " + fmt.Sprintf(format, args...)}
			}
			if k.Name == "secret" {
				if secretAt != "" {
					return errf("already set at %s", secretAt)
				}
				secretAt = fmt.Sprintf("%s:%d", cs.file, k.Line)
				c.WebhookSecret = k.Value
				continue
			}
			urls := strings.Fields(k.Value)
			if len(urls) == 0 {
				return errf("no URL")
			}
			for _, u := range urls {
				if _, err := cfgURL(u); err != nil {
					return errf("%v", err)
				}
				// Event names keep their case: job names in them may have capitals.
				c.Webhooks = append(c.Webhooks, WebhookConfig{Event: k.Raw, URL: u})
			}
		}
	}
	return nil
}
