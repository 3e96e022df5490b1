package gaffer

// Reading gafferd's INI files into a Config: the files and their
// includes, then each kind of section ([endpoint:x], [ssl], [lookup_ssl],
// [auth], [webhooks], [env:x], and the process sections [process:x] and
// [job:x], whose keys are the table of job settings of jobsettings.go).
// The [gaffer] section and the Config type are in config.go. Every error
// names the file, the line, the section and the key.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

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
		if hasSpec != (kind == "process" || kind == "job" || kind == "env" || kind == "endpoint" || kind == "socket") || (hasSpec && spec == "") {
			return errf("unknown section (want [gaffer], [endpoint:NAME], [process:NAME], [job:NAME], [env:NAME], [socket:NAME], [webhooks], [ssl], [lookup_ssl] or [auth])")
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
		case "socket":
			if err := l.claim("[socket:"+spec+"]", f.Path, sec); err != nil {
				return err
			}
			if err := l.socketSection(cs); err != nil { // configsockets.go
				return err
			}
		case "process", "job", "env":
			session, name := cfgSplitSpec(spec)
			if err := ValidateSession(session); err != nil {
				return errf("%v (the session is the part before the first ':', '.' or '/')", AsError(err).Reason)
			}
			if err := ValidateName(name, "job name"); err != nil {
				return errf("%v", AsError(err).Reason)
			}
			if kind == "env" {
				l.envs = append(l.envs, cs) // its job is found once every file is read (applyEnvs)
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
			l.jobSecs = append(l.jobSecs, cs)
		default:
			return errf("unknown section (want [gaffer], [endpoint:NAME], [process:NAME], [job:NAME], [env:NAME], [socket:NAME], [webhooks], [ssl], [lookup_ssl] or [auth])")
		}
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
			l.tlsFile(&def, k)
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

// tlsFile sets the certificate file a key of [ssl] or [endpoint:x] names
// (certfile, keyfile, cacert or ca_certs); other keys are left alone.
func (l *cfgLoader) tlsFile(e *EndpointConfig, k INIKey) {
	switch k.Name {
	case "certfile":
		e.CertFile = l.path(k.Value)
	case "keyfile":
		e.KeyFile = l.path(k.Value)
	case "ca_certs", "cacert":
		e.ClientCAFile = l.path(k.Value)
	}
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
		case "certfile", "keyfile", "cacert", "ca_certs":
			l.tlsFile(&e, k)
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

// cfgSplitSpec splits a section spec: "name" is in session "default";
// "group:name", "group.name" and "group/name" put the job name in the
// session group, which comes first (the seed's order).
func cfgSplitSpec(spec string) (session, name string) {
	if i := strings.IndexAny(spec, ":./"); i >= 0 {
		return strings.TrimSpace(spec[:i]), strings.TrimSpace(spec[i+1:])
	}
	return "default", spec
}

// applyEnvs merges each [env:x] over the env: keys of its job (envJob).
func (l *cfgLoader) applyEnvs() error {
	applied := map[string]string{} // full job name → the env section that set it
	for _, cs := range l.envs {
		job, err := l.envJob(cs)
		if err != nil {
			return err
		}
		where := fmt.Sprintf("%s:%d", cs.file, cs.sec.Line)
		if first, dup := applied[job.FullName()]; dup {
			return &ConfigError{File: cs.file, Line: cs.sec.Line, Section: cs.sec.Name, Msg: fmt.Sprintf("job %s already has an env section, at %s", job.FullName(), first)}
		}
		applied[job.FullName()] = where
		if job.Config.Env == nil {
			job.Config.Env = map[string]string{}
		}
		for _, k := range cs.sec.Keys {
			n := strings.ToUpper(k.Raw)
			if err := cfgEnvName(n); err != nil {
				return &ConfigError{File: cs.file, Line: k.Line, Section: cs.sec.Name, Msg: err.Error()}
			}
			job.Config.Env[n] = k.Value
		}
	}
	return nil
}

// envJob finds the job of an env section. [env:s:x] (or s.x, s/x) is the
// job x of session s. [env:x] is the job x of whichever session defines
// it, as the seed's [env:dummy] next to [process:test:dummy]: no such job,
// or one in several sessions, is an error that names the candidates.
func (l *cfgLoader) envJob(cs cfgSection) (*SessionJob, error) {
	errf := func(format string, args ...any) error {
		return &ConfigError{File: cs.file, Line: cs.sec.Line, Section: cs.sec.Name, Msg: fmt.Sprintf(format, args...)}
	}
	session, name := cfgSplitSpec(cs.spec)
	qualified := strings.ContainsAny(cs.spec, ":./")
	var found []int
	for i := range l.jobs {
		if l.jobs[i].Config.Name == name && (!qualified || l.jobs[i].Session == session) {
			found = append(found, i)
		}
	}
	switch {
	case len(found) == 1:
		return &l.jobs[found[0]], nil
	case len(found) == 0 && qualified:
		return nil, errf("no job %s.%s: an env section needs a [process:%s] or [job:%s] section", session, name, cs.spec, cs.spec)
	case len(found) == 0:
		return nil, errf("no job named %s in any session: an env section needs a [process:%s] or [process:SESSION:%s] section", name, name, name)
	}
	var cands, forms []string
	for _, i := range found {
		j, js := l.jobs[i], l.jobSecs[i]
		cands = append(cands, fmt.Sprintf("%s (%s:%d)", j.FullName(), js.file, js.sec.Line))
		forms = append(forms, "[env:"+j.Session+":"+name+"]")
	}
	return nil, errf("ambiguous: [env:%s] names a job %s of several sessions: %s; write %s", cs.spec, name, strings.Join(cands, ", "), strings.Join(forms, " or "))
}

func cfgEnvName(n string) error {
	if n == "" || strings.ContainsAny(n, "= \t\n") {
		return fmt.Errorf("invalid environment variable name %q", n)
	}
	return nil
}

// job builds the JobConfig of a [process:x] or [job:x] section from the
// table of job settings: a key:NAME form (env:NAME) adds one entry, any
// other key sets its setting, the INI defaults (os_env, cwd) apply first.
func (l *cfgLoader) job(file string, sec *INISection, name string) (JobConfig, error) {
	c := NewJobConfig(name, "")
	for i := range jobSettings {
		if s := &jobSettings[i]; s.iniDefault != "" {
			if err := s.value.fromText(&c, s.iniDefault, l); err != nil {
				panic("jobSettings: bad INI default of " + s.key)
			}
		}
	}
	given := map[*jobSetting]INIKey{}
	for _, k := range sec.Keys {
		errf := func(format string, args ...any) error {
			return &ConfigError{File: file, Line: k.Line, Section: sec.Name, Msg: k.Raw + ": " + fmt.Sprintf(format, args...)}
		}
		s, entry := iniJobSetting(k)
		if s == nil {
			return c, errf("unknown key (want %s)", iniJobKeys)
		}
		var err error
		if s.value.addEntry != nil {
			err = s.value.addEntry(&c, entry, k.Value)
		} else {
			if other, dup := given[s]; dup {
				return c, errf("already set, as %s at line %d", other.Raw, other.Line)
			}
			err = s.value.fromText(&c, k.Value, l)
		}
		if err != nil {
			return c, errf("%v", err)
		}
		given[s] = k
	}
	for i := range jobSettings {
		if s := &jobSettings[i]; s.required && !s.jsonOnly {
			if _, ok := given[s]; !ok {
				return c, &ConfigError{File: file, Line: sec.Line, Section: sec.Name, Msg: fmt.Sprintf("no %s: every process section needs %s (%s = …)", s.key, s.doc, s.key)}
			}
		}
	}
	if err := c.Validate(); err != nil {
		return c, cfgJobError(file, sec, err)
	}
	return c, nil
}

// cfgJobError places a validation error of a job on the line of the key
// its reason starts with ("numprocesses: …"), else on the section header.
func cfgJobError(file string, sec *INISection, err error) error {
	reason := AsError(err).Reason
	line := sec.Line
	if key, _, ok := strings.Cut(reason, ":"); ok {
		for _, k := range sec.Keys {
			if s, _ := iniJobSetting(k); k.Name == key || s != nil && s.key == key {
				line = k.Line
				break
			}
		}
	}
	return &ConfigError{File: file, Line: line, Section: sec.Name, Msg: reason}
}

// checkLimits checks every job against [gaffer] max_processes and
// max_graceful_timeout (read after the process sections).
func (l *cfgLoader) checkLimits() error {
	lim := jobLimits{maxProcesses: l.cfg.MaxProcesses, maxGraceful: l.cfg.MaxGracefulTimeout}
	for i := range l.jobs {
		if err := lim.checkJob(&l.jobs[i].Config); err != nil {
			return cfgJobError(l.jobSecs[i].file, l.jobSecs[i].sec, err)
		}
	}
	return nil
}

// cfgList splits a comma- and/or whitespace-separated list.
func cfgList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
}

// cfgURL checks an http(s) URL.
func cfgURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("invalid URL %q", s)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("expected an http:// or https:// URL, got %q", s)
	}
	return s, nil
}

// cfgOrigin checks and normalises a CORS origin: scheme://host[:port].
func cfgOrigin(s string) (string, error) {
	if s == "*" || s == "null" {
		return "", fmt.Errorf("%q is not allowed: list exact origins (credentials are allowed for them)", s)
	}
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("expected an origin like https://example.com:8443, got %q", s)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// NormalizeBind checks a listen address and returns it as "host:port"
// (IPv6 hosts in brackets, an empty host for every interface) or
// "unix:PATH". Accepted: host:port, [v6]:port, host or [v6] (port 5000),
// a bare IPv6 address (port 5000), and unix:PATH.
func NormalizeBind(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty address")
	}
	if strings.HasPrefix(s, "unix:") {
		if s == "unix:" {
			return "", errors.New("unix: needs a path, as in unix:/run/gaffer.sock")
		}
		return s, nil
	}
	var host, port string
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", fmt.Errorf("%q: missing ']'", s)
		}
		host, port = s[1:end], cfgDefaultPort
		switch rest := s[end+1:]; {
		case rest == "":
		case strings.HasPrefix(rest, ":"):
			port = rest[1:]
		default:
			return "", fmt.Errorf("%q: unexpected %q after ']'", s, rest)
		}
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return "", fmt.Errorf("%q: %q is not an IPv6 address", s, host)
		}
	case strings.Count(s, ":") > 1:
		if a, err := netip.ParseAddr(s); err != nil || !a.Is6() {
			return "", fmt.Errorf("%q: not host:port (write IPv6 addresses as [addr]:port)", s)
		}
		host, port = s, cfgDefaultPort
	case strings.Contains(s, ":"):
		host, port, _ = strings.Cut(s, ":")
	default:
		host, port = s, cfgDefaultPort
	}
	if strings.ContainsAny(host, " \t/\\[]") {
		return "", fmt.Errorf("%q: invalid host %q", s, host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || port == "" {
		return "", fmt.Errorf("%q: invalid port %q", s, port)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}
