package gaffer

// The [socket:NAME] sections of gafferd's INI files and the sockets
// settings of the process sections (sockets.go): a section is one
// listening socket (bind, backlog, mode) that any job may name as @NAME;
// the names are resolved once every file is read, and the sockets are
// checked then, so that an address in use or a missing directory is an
// error of the file and line that names it (a reload that would fail to
// bind changes nothing).

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// cfgSocket is one [socket:NAME] section.
type cfgSocket struct {
	spec  socketSpec
	where string // file:line of its bind key
	line  int    // the line of its bind key
	used  bool
	cs    cfgSection
}

// socketSection reads one [socket:NAME] section.
func (l *cfgLoader) socketSection(cs cfgSection) error {
	if p := nameProblem(cs.spec, true); p != "" {
		return &ConfigError{File: cs.file, Line: cs.sec.Line, Section: cs.sec.Name, Msg: fmt.Sprintf("socket name %s %s", quoteName(cs.spec), p)}
	}
	var bind, where string
	bindLine := 0
	var opts []string
	for _, k := range cs.sec.Keys {
		errf := func(format string, args ...any) error {
			return &ConfigError{File: cs.file, Line: k.Line, Section: cs.sec.Name, Msg: k.Raw + ": " + fmt.Sprintf(format, args...)}
		}
		switch k.Name {
		case "bind":
			bind, where, bindLine = strings.TrimSpace(k.Value), fmt.Sprintf("%s:%d", cs.file, k.Line), k.Line
			if strings.ContainsAny(bind, "?") || strings.HasPrefix(bind, "@") {
				return errf("expected tcp://HOST:PORT, udp://HOST:PORT or unix:PATH (backlog and mode are keys of their own)")
			}
			if _, err := parseSocketSpec(bind); err != nil {
				return errf("%v", err)
			}
		case "backlog":
			n, err := strconv.Atoi(k.Value)
			if err != nil || n < 1 || n > socketMaxBacklog {
				return errf("expected an integer from 1 to %d, got %q", socketMaxBacklog, k.Value)
			}
			opts = append(opts, "backlog="+strconv.Itoa(n))
		case "mode":
			opts = append(opts, "mode="+strings.TrimSpace(k.Value))
		default:
			return errf("unknown key (want bind, backlog, mode)")
		}
	}
	if bind == "" {
		return &ConfigError{File: cs.file, Line: cs.sec.Line, Section: cs.sec.Name, Msg: "bind: missing (tcp://HOST:PORT, udp://HOST:PORT or unix:PATH)"}
	}
	text := cs.spec + "=" + bind
	if len(opts) > 0 {
		text += "?" + strings.Join(opts, "&")
	}
	spec, err := parseSocketSpec(text)
	if err != nil {
		return &ConfigError{File: cs.file, Line: cs.sec.Line, Section: cs.sec.Name, Msg: strings.TrimPrefix(err.Error(), text+": ")}
	}
	if spec.network == "unix" && spec.addr[0] != '@' {
		spec.addr = l.path(spec.addr)
	}
	if l.sockets == nil {
		l.sockets = map[string]cfgSocket{}
	}
	l.sockets[cs.spec] = cfgSocket{spec: spec, where: where, line: bindLine, cs: cs}
	return nil
}

// resolveSockets replaces each @NAME of the jobs' sockets by its
// section's socket, then checks that a socket named by several jobs has
// the same options everywhere and that each could be bound.
func (l *cfgLoader) resolveSockets() error {
	type first struct {
		spec  socketSpec
		where string
		err   func(msg string) error
	}
	seen := map[string]first{}
	for i := range l.jobs {
		c := &l.jobs[i].Config
		if len(c.Sockets) == 0 {
			continue
		}
		js := l.jobSecs[i]
		line := js.sec.Line
		for _, k := range js.sec.Keys {
			if s, _ := iniJobSetting(k); s != nil && s.key == "sockets" {
				line = k.Line
			}
		}
		keyErr := func(msg string) error {
			return &ConfigError{File: js.file, Line: line, Section: js.sec.Name, Msg: "sockets: " + msg}
		}
		for n, e := range c.Sockets {
			where := fmt.Sprintf("%s:%d", js.file, line)
			var spec socketSpec
			var err error
			errAt := keyErr
			if ref, ok := strings.CutPrefix(e, "@"); ok {
				sock, found := l.sockets[ref]
				if !found {
					return keyErr(fmt.Sprintf("@%s: no [socket:%s] section", ref, ref))
				}
				sock.used = true
				l.sockets[ref] = sock
				spec, where = sock.spec, sock.where
				sec, bindLine := sock.cs, sock.line
				errAt = func(msg string) error {
					return &ConfigError{File: sec.file, Line: bindLine, Section: sec.sec.Name, Msg: "bind: " + msg}
				}
			} else if spec, err = parseSocketSpec(e); err != nil {
				return keyErr(err.Error())
			}
			c.Sockets[n] = spec.String()
			if f, dup := seen[spec.key()]; dup {
				if f.spec.backlog != spec.backlog || f.spec.mode != spec.mode {
					return keyErr(fmt.Sprintf("%s is also defined at %s with other options (%s); give it the same backlog and mode",
						spec.key(), f.where, f.spec.String()))
				}
				continue
			}
			seen[spec.key()] = first{spec, where, errAt}
		}
		if err := checkSocketSetting(c.Sockets); err != nil {
			return keyErr(strings.TrimPrefix(AsError(err).Reason, "sockets: "))
		}
	}
	names := make([]string, 0, len(l.sockets))
	for name := range l.sockets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if sock := l.sockets[name]; !sock.used {
			l.cfg.Warnings = append(l.cfg.Warnings, fmt.Sprintf("%s:%d: [socket:%s] is named by no job's sockets; ignored",
				sock.cs.file, sock.cs.sec.Line, name))
		}
	}
	if l.noInclude {
		return nil // fuzzing: no system calls
	}
	keys := make([]string, 0, len(seen))
	for key := range seen {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if err := checkSocketBindable(seen[key].spec); err != nil {
			return seen[key].err(fmt.Sprintf("cannot listen on %s: %v", key, err))
		}
	}
	return nil
}
