package gaffer

// The process sections of gafferd's configuration ([process:x], [job:x],
// [env:x]), the parsers of single values, and the reload diff.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

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

// cfgJobKeys lists the keys of a process section, env:NAME aside.
var cfgJobKeys = []string{"cmd", "args", "uid", "gid", "cwd", "detach", "shell", "os_env",
	"numprocesses", "start", "flapping", "redirect_output", "redirect_input", "custom_streams",
	"graceful_timeout", "priority", "ring_size", "stdout_logfile", "stderr_logfile", "logfile",
	"logfile_maxbytes", "logfile_backups", "logfile_timestamps"}

// job builds the JobConfig of a [process:x] or [job:x] section.
func (l *cfgLoader) job(file string, sec *INISection, name string) (JobConfig, error) {
	c := NewJobConfig(name, "")
	c.OSEnv = true // the INI default (reference §6.1)
	hasCmd := false
	for _, k := range sec.Keys {
		v := k.Value
		errf := func(format string, args ...any) error {
			return &ConfigError{File: file, Line: k.Line, Section: sec.Name, Msg: k.Raw + ": " + fmt.Sprintf(format, args...)}
		}
		var err error
		switch k.Name {
		case "cmd":
			c.Cmd, hasCmd = v, true
		case "args":
			if c.Args, err = SplitCommandLine(v); err != nil {
				return c, errf("%v", err)
			}
		case "uid", "gid":
			if v == "" || strings.ContainsAny(v, " \t\n:") {
				return c, errf("expected a name or a number, got %q", v)
			}
			if k.Name == "uid" {
				c.UID = v
			} else {
				c.GID = v
			}
		case "cwd":
			c.Cwd = l.path(v)
		case "detach", "shell", "os_env", "start", "redirect_input", "logfile_timestamps":
			b, ok := ParseBool(v)
			if !ok {
				return c, errf("expected a boolean (true/false, yes/no, on/off, 1/0), got %q", v)
			}
			*map[string]*bool{"detach": &c.Detach, "shell": &c.Shell, "os_env": &c.OSEnv, "start": &c.Start,
				"redirect_input": &c.RedirectInput, "logfile_timestamps": &c.LogfileTimestamps}[k.Name] = b
		case "numprocesses", "priority", "logfile_backups":
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil {
				return c, errf("expected an integer, got %q", v)
			}
			*map[string]*int{"numprocesses": &c.NumProcesses, "priority": &c.Priority, "logfile_backups": &c.LogfileBackups}[k.Name] = int(n)
		case "flapping":
			if b, ok := ParseBool(v); ok && strings.Trim(v, "0123456789") != "" {
				c.Flapping = nil
				if b {
					f := DefaultFlapConfig()
					c.Flapping = &f
				}
			} else if c.Flapping, err = ParseFlapping(v); err != nil {
				return c, &ConfigError{File: file, Line: k.Line, Section: sec.Name, Msg: AsError(err).Reason}
			}
		case "redirect_output":
			c.RedirectOutput = cfgCommaList(v)
		case "custom_streams":
			c.CustomStreams = cfgCommaList(v)
		case "graceful_timeout":
			d, err := cfgParseSeconds(v)
			if err != nil {
				return c, errf("%v", err)
			}
			c.GracefulTimeout = d
		case "ring_size", "logfile_maxbytes":
			n, err := cfgParseSize(v)
			if err != nil {
				return c, errf("%v", err)
			}
			if k.Name == "ring_size" {
				if n > math.MaxInt32 {
					return c, errf("at most %d bytes", math.MaxInt32)
				}
				c.RingSize = int(n)
			} else {
				c.LogfileMaxBytes = n
			}
		case "stdout_logfile", "stderr_logfile", "logfile":
			*map[string]*string{"stdout_logfile": &c.StdoutLogfile, "stderr_logfile": &c.StderrLogfile, "logfile": &c.Logfile}[k.Name] = l.path(v)
		default:
			if !strings.HasPrefix(k.Name, "env:") || len(k.Raw) < 4 || !strings.EqualFold(k.Raw[:4], "env:") {
				return c, errf("unknown key (want %s or env:NAME)", strings.Join(cfgJobKeys, ", "))
			}
			n := strings.TrimSpace(k.Raw[len("env:"):])
			if err := cfgEnvName(n); err != nil {
				return c, errf("%v", err)
			}
			if c.Env == nil {
				c.Env = map[string]string{}
			}
			c.Env[n] = v // the name keeps its case
		}
	}
	if !hasCmd {
		return c, &ConfigError{File: file, Line: sec.Line, Section: sec.Name, Msg: "no cmd: every process section needs a command line (cmd = …)"}
	}
	if c.Cwd == "" {
		c.Cwd = l.cfg.Dir
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
		if k, found := sec.Get(key); found {
			line = k.Line
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

// cfgCommaList splits a comma-separated list, trimming each item and
// dropping empty ones.
func cfgCommaList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// cfgParseSeconds reads a delay: seconds, fractional allowed ("2.5"), or a
// Go duration ("1m30s").
func cfgParseSeconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		d, derr := time.ParseDuration(s)
		if derr != nil {
			return 0, fmt.Errorf("expected seconds (2.5) or a duration (1m30s), got %q", s)
		}
		if d < 0 {
			return 0, errors.New("must be >= 0")
		}
		return d, nil
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Errorf("expected a number of seconds >= 0, got %q", s)
	}
	return secondsToDuration(f), nil
}

// cfgParseSize reads a byte count: plain bytes, or a number with a unit
// K/KB/KiB, M/MB/MiB, G/GB/GiB (case-insensitive, all powers of 1024, as
// supervisord's logfile_maxbytes).
func cfgParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult := map[string]float64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}[unit]
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 {
		return 0, fmt.Errorf("expected a size like 10MB, 512KB, 1GB or a number of bytes, got %q", s)
	}
	n := f * mult
	if n > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(n), nil
}

// ReloadDiff is what a reload changes: full job names ("session.job").
// Added, Changed and Unchanged follow the new configuration's order,
// Removed the old one's.
type ReloadDiff struct {
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	Changed   []string `json:"changed"`
	Unchanged []string `json:"unchanged"`
}

// MarshalJSON writes empty lists as [], never null.
func (d ReloadDiff) MarshalJSON() ([]byte, error) {
	type plain ReloadDiff
	return json.Marshal(plain{Added: nonNil(d.Added), Removed: nonNil(d.Removed), Changed: nonNil(d.Changed), Unchanged: nonNil(d.Unchanged)})
}

// DiffJobs compares the jobs of two configurations with JobConfig.Equal.
// A name present twice in one list counts once, at its first place.
func DiffJobs(old, new []SessionJob) ReloadDiff {
	d := ReloadDiff{Added: []string{}, Removed: []string{}, Changed: []string{}, Unchanged: []string{}}
	before := make(map[string]JobConfig, len(old))
	for _, j := range old {
		if _, dup := before[j.FullName()]; !dup {
			before[j.FullName()] = j.Config
		}
	}
	after := make(map[string]bool, len(new))
	for _, j := range new {
		name := j.FullName()
		if after[name] {
			continue
		}
		after[name] = true
		switch prev, ok := before[name]; {
		case !ok:
			d.Added = append(d.Added, name)
		case prev.Equal(j.Config):
			d.Unchanged = append(d.Unchanged, name)
		default:
			d.Changed = append(d.Changed, name)
		}
	}
	gone := map[string]bool{}
	for _, j := range old {
		if name := j.FullName(); !after[name] && !gone[name] {
			gone[name] = true
			d.Removed = append(d.Removed, name)
		}
	}
	return d
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
