package gaffer

// The table of job settings. Each row says everything about one key of a
// job: its name, the kind of value it holds, its default, its check, how
// it reads from JSON (POST /jobs, the channel's load, the state file) and
// from the text of an INI process section, whether JobConfig.Map writes
// it back, and one line of doc. NewJobConfig, Clone, Validate,
// JobConfigFromMap, JobConfig.Map, the INI process sections
// (cfgLoader.job) and the limits (jobLimits.checkJob) all read the table:
// a new setting is one row plus its JobConfig field, and the README's
// table of job settings is checked against it by a test.
//
// A kind (valueKind) is written once and shared by the rows of its type:
// how a value of that kind reads from a JSON value, from INI text, and is
// written back to JSON. Errors of the JSON readers name the key; those
// of the INI readers do not, the INI reader puts file:line and the key
// as written in front.

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// jobSetting is one row of the table of job settings.
type jobSetting struct {
	key      string   // the key, in JSON and in INI
	aliases  []string // other spellings of the key, accepted in both; errors and Map use key
	def      string   // the default, as the README's table writes it
	doc      string   // one line
	jsonOnly bool     // not a key of INI process sections (name: the section gives it)
	required bool     // a config without it is refused
	// iniDefault, when set, is read as if written in every process
	// section before its keys: the INI default where it differs from the
	// JSON one.
	iniDefault string
	value      binding                                 // the kind and the field; zero: accepted and ignored
	inMap      mapRule                                 // when JobConfig.Map writes the key
	check      func(c *JobConfig) error                // Validate: whatever the source; nil: none
	bound      func(lim jobLimits, c *JobConfig) error // the [gaffer] limits; nil: none
}

// mapRule says when JobConfig.Map writes a setting.
type mapRule int

const (
	mapAlways        mapRule = iota
	mapUnlessDefault         // only a value other than the default
	mapWithLogfile           // only when a log file is set
	mapNever                 // an action, not part of the config (start)
)

// The table, in the order Validate checks it and the errors list it.
var jobSettings = []jobSetting{
	{key: "name", def: "required", doc: "job name inside its session", jsonOnly: true, required: true,
		value: field(stringKind, "", func(c *JobConfig) *string { return &c.Name }),
		check: func(c *JobConfig) error { return ValidateName(c.Name, "name") }},
	{key: "cmd", def: "required", doc: "a command line", required: true,
		value: field(stringKind, "", func(c *JobConfig) *string { return &c.Cmd }),
		check: func(c *JobConfig) error {
			if strings.TrimSpace(c.Cmd) == "" {
				return errBadRequest("cmd: the command line is empty")
			}
			return nil
		}},
	{key: "args", def: "—", doc: "more arguments, appended after those of cmd",
		value: field(argsKind, nil, func(c *JobConfig) *[]string { return &c.Args })},
	{key: "env", def: "—", doc: "environment variables, over gafferd's when os_env",
		value: field(envKind, nil, func(c *JobConfig) *map[string]string { return &c.Env })},
	{key: "os_env", def: "true (INI), false (JSON)", doc: "also pass gafferd's environment", iniDefault: "true",
		value: field(boolKind, false, func(c *JobConfig) *bool { return &c.OSEnv })},
	{key: "uid", def: "—", doc: "user, by name or number; none keeps gafferd's",
		value: field(idKind, "", func(c *JobConfig) *string { return &c.UID }), inMap: mapUnlessDefault},
	{key: "gid", def: "—", doc: "group, by name or number; none keeps gafferd's",
		value: field(idKind, "", func(c *JobConfig) *string { return &c.GID }), inMap: mapUnlessDefault},
	{key: "cwd", def: "the config's directory", doc: "working directory", iniDefault: ".",
		value: field(dirKind, "", func(c *JobConfig) *string { return &c.Cwd })},
	{key: "shell", def: "false", doc: "run the whole command line with sh -c",
		value: field(boolKind, false, func(c *JobConfig) *bool { return &c.Shell })},
	{key: "detach", def: "false", doc: "own session (setsid); left running when gafferd stops",
		value: field(boolKind, false, func(c *JobConfig) *bool { return &c.Detach })},
	{key: "numprocesses", def: "1", doc: "processes kept running",
		value: field(intKind, 1, func(c *JobConfig) *int { return &c.NumProcesses }),
		check: func(c *JobConfig) error {
			if c.NumProcesses < 0 {
				return errBadRequest("numprocesses: must be >= 0, got %d", c.NumProcesses)
			}
			return nil
		},
		bound: func(lim jobLimits, c *JobConfig) error { return lim.checkProcesses("numprocesses", c.NumProcesses) }},
	{key: "start", def: "true", doc: "start when loaded",
		value: field(boolKind, true, func(c *JobConfig) *bool { return &c.Start }), inMap: mapNever},
	{key: "priority", def: "last", doc: "load and start order of the file's jobs, lower first",
		value: field(intKind, DefaultPriority, func(c *JobConfig) *int { return &c.Priority }), inMap: mapUnlessDefault},
	{key: "graceful_timeout", def: "30", doc: "seconds between SIGTERM and SIGKILL",
		value: field(secondsKind, DefaultGracefulTimeout, func(c *JobConfig) *time.Duration { return &c.GracefulTimeout }),
		check: func(c *JobConfig) error {
			if c.GracefulTimeout < 0 {
				return errBadRequest("graceful_timeout: must be >= 0")
			}
			return nil
		},
		bound: func(lim jobLimits, c *JobConfig) error {
			return lim.checkGraceful("graceful_timeout", c.GracefulTimeout)
		}},
	{key: "redirect_output", def: "none", doc: "labels for stdout and stderr (the same label twice merges them)",
		value: field(listKind, nil, func(c *JobConfig) *[]string { return &c.RedirectOutput }),
		check: func(c *JobConfig) error {
			if len(c.RedirectOutput) > 2 {
				return errBadRequest("redirect_output: at most 2 labels (stdout, stderr), got %d", len(c.RedirectOutput))
			}
			for _, l := range c.RedirectOutput {
				if err := validateLabel(l, "redirect_output"); err != nil {
					return err
				}
			}
			return nil
		}},
	{key: "redirect_input", def: "false", doc: "a pipe to stdin",
		value: field(boolKind, false, func(c *JobConfig) *bool { return &c.RedirectInput })},
	{key: "custom_streams", def: "none", doc: "more bidirectional pipes, at fd 3, 4, …",
		value: field(listKind, nil, func(c *JobConfig) *[]string { return &c.CustomStreams }),
		check: func(c *JobConfig) error {
			seen := map[string]bool{"stdin": true}
			for _, l := range c.RedirectOutput {
				seen[l] = true
			}
			for _, l := range c.CustomStreams {
				if err := validateLabel(l, "custom_streams"); err != nil {
					return err
				}
				if seen[l] {
					return errBadRequest("custom_streams: label %q is already used", l)
				}
				seen[l] = true
			}
			return nil
		}},
	{key: "flapping", def: "off", doc: "crash-loop protection: attempts, window, retry_in, max_retry",
		value: field(flappingKind, nil, func(c *JobConfig) **FlapConfig { return &c.Flapping }), inMap: mapUnlessDefault,
		check: func(c *JobConfig) error {
			if f := c.Flapping; f != nil && !f.valid() {
				return errBadRequest("flapping: %s", flapRange)
			}
			return nil
		}},
	{key: "ring_size", def: "256K", doc: "bytes of recent output kept per stream",
		value: field(sizeIntKind, DefaultRingSize, func(c *JobConfig) *int { return &c.RingSize }), inMap: mapUnlessDefault,
		check: func(c *JobConfig) error { return atLeastZero("ring_size", int64(c.RingSize)) }},
	// Lifecycle: readiness, dependencies, health checks, restart policy
	// (jobsettings_lifecycle.go has their kinds and checks).
	{key: "ready", def: "—", doc: "notify, tcp:HOST:PORT, http://HOST:PORT/PATH, exec:COMMAND or log:REGEX; without it, ready when spawned",
		value: field(stringKind, "", func(c *JobConfig) *string { return &c.Ready }), inMap: mapUnlessDefault,
		check: checkReadySetting},
	{key: "ready_timeout", def: "30", doc: "seconds to become ready, else stopped as a failed start; 0 no limit",
		value: field(secondsKind, defaultReadyTimeout, func(c *JobConfig) *time.Duration { return &c.ReadyTimeout }), inMap: mapUnlessDefault,
		check: func(c *JobConfig) error { return atLeastZero("ready_timeout", int64(c.ReadyTimeout)) }},
	{key: "watchdog", def: "0", doc: "seconds within which a process must send WATCHDOG=1 (sd_notify), else SIGABRT; 0 none",
		value: field(secondsKind, 0, func(c *JobConfig) *time.Duration { return &c.Watchdog }), inMap: mapUnlessDefault,
		check: func(c *JobConfig) error { return atLeastZero("watchdog", int64(c.Watchdog)) }},
	{key: "depends_on", def: "none", doc: "NAME[:CONDITION], …: jobs that must be started, ready (the default), healthy or completed first",
		value: field(listKind, nil, func(c *JobConfig) *[]string { return &c.DependsOn }), inMap: mapUnlessDefault,
		check: func(c *JobConfig) error { _, err := parseDependsOn(c.DependsOn); return err }},
	{key: "restart_with", def: "none", doc: "jobs whose restart restarts this one",
		value: field(listKind, nil, func(c *JobConfig) *[]string { return &c.RestartWith }), inMap: mapUnlessDefault,
		check: checkRestartWith},
	{key: "health", def: "—", doc: "tcp:HOST:PORT, http://HOST:PORT/PATH or exec:COMMAND, checked every health_interval",
		value: field(stringKind, "", func(c *JobConfig) *string { return &c.Health }), inMap: mapUnlessDefault,
		check: func(c *JobConfig) error { _, err := parseProbe("health", c.Health, false); return err }},
	{key: "health_interval", def: "10", doc: "seconds between two health checks",
		value: field(secondsKind, defaultHealthInterval, func(c *JobConfig) *time.Duration { return &c.HealthInterval }), inMap: mapUnlessDefault,
		check: func(c *JobConfig) error { return positiveDelay("health_interval", c.HealthInterval) }},
	{key: "health_timeout", def: "2", doc: "seconds one probe (health check or readiness attempt) may take",
		value: field(secondsKind, defaultHealthTimeout, func(c *JobConfig) *time.Duration { return &c.HealthTimeout }), inMap: mapUnlessDefault,
		check: func(c *JobConfig) error { return positiveDelay("health_timeout", c.HealthTimeout) }},
	{key: "health_retries", def: "3", doc: "consecutive failed health checks that make a process unhealthy (then restarted)",
		value: field(intKind, defaultHealthRetries, func(c *JobConfig) *int { return &c.HealthRetries }), inMap: mapUnlessDefault,
		check: func(c *JobConfig) error {
			if c.HealthRetries < 1 {
				return errBadRequest("health_retries: must be >= 1, got %d", c.HealthRetries)
			}
			return nil
		}},
	{key: "restart", def: "always", doc: "always, on-failure or never: when an exited process is replaced",
		value: field(stringKind, restartAlways, func(c *JobConfig) *string { return &c.Restart }), inMap: mapUnlessDefault,
		check: checkRestartSetting},
	{key: "success_exit_codes", def: "0", doc: "exit statuses that are a success, for restart = on-failure and completed",
		value: field(intListKind, nil, func(c *JobConfig) *[]int { return &c.SuccessExitCodes }), inMap: mapUnlessDefault,
		check: checkExitCodes},
	{key: "restart_delay", def: "0", doc: "MIN[, MAX] seconds before a respawn; with MAX, doubled per consecutive exit up to MAX, ±10 % jitter",
		value: field(delayRangeKind, [2]time.Duration{}, func(c *JobConfig) *[2]time.Duration { return &c.RestartDelay }), inMap: mapUnlessDefault,
		check: checkRestartDelay},
	{key: "essential", def: "false", doc: "when the job gives up, gafferd stops everything and exits 1",
		value: field(boolKind, false, func(c *JobConfig) *bool { return &c.Essential }), inMap: mapUnlessDefault},
	{key: "stdout_logfile", def: "—", doc: "log file of stdout",
		value: field(pathKind, "", func(c *JobConfig) *string { return &c.StdoutLogfile }), inMap: mapUnlessDefault},
	{key: "stderr_logfile", def: "—", doc: "log file of stderr",
		value: field(pathKind, "", func(c *JobConfig) *string { return &c.StderrLogfile }), inMap: mapUnlessDefault},
	{key: "logfile", def: "—", doc: "one log file for both streams",
		value: field(pathKind, "", func(c *JobConfig) *string { return &c.Logfile }), inMap: mapUnlessDefault},
	{key: "logfile_maxbytes", def: "0", doc: "rotate a log file past this size; 0 never",
		value: field(sizeKind, 0, func(c *JobConfig) *int64 { return &c.LogfileMaxBytes }), inMap: mapWithLogfile,
		check: func(c *JobConfig) error { return atLeastZero("logfile_maxbytes", c.LogfileMaxBytes) }},
	{key: "logfile_backups", def: "5", doc: "rotated log files kept",
		value: field(intKind, 5, func(c *JobConfig) *int { return &c.LogfileBackups }), inMap: mapWithLogfile,
		check: func(c *JobConfig) error { return atLeastZero("logfile_backups", int64(c.LogfileBackups)) }},
	{key: "logfile_timestamps", def: "false", doc: "prefix each logged line with an RFC 3339 time",
		value: field(boolKind, false, func(c *JobConfig) *bool { return &c.LogfileTimestamps }), inMap: mapWithLogfile},
	// Containment: sockets.go, cgroup_linux.go, execshim_linux.go, memrestart.go.
	{key: "sockets", def: "none", doc: "listening sockets passed at fd 3, 4, … with LISTEN_FDS (systemd's socket activation)",
		value: field(socketsKind, nil, func(c *JobConfig) *[]string { return &c.Sockets }), inMap: mapUnlessDefault,
		check: func(c *JobConfig) error { return checkSocketSetting(c.Sockets) }},
	{key: "memory_max", def: "none", doc: "memory of each process's cgroup (the process and all it starts)",
		value: field(sizeKind, 0, func(c *JobConfig) *int64 { return &c.MemoryMax }), inMap: mapUnlessDefault,
		check: func(c *JobConfig) error { return atLeastZero("memory_max", c.MemoryMax) }},
	{key: "cpu_max", def: "none", doc: "CPU of each process's cgroup, in cores (0.5, or 50%)",
		value: field(coresKind, 0, func(c *JobConfig) *float64 { return &c.CPUMax }), inMap: mapUnlessDefault,
		check: checkCores},
	{key: "pids_max", def: "none", doc: "processes and threads of each process's cgroup",
		value: field(intKind, 0, func(c *JobConfig) *int { return &c.PidsMax }), inMap: mapUnlessDefault,
		check: func(c *JobConfig) error { return atLeastZero("pids_max", int64(c.PidsMax)) }},
	{key: "memory_restart", def: "none", doc: "restart a process whose memory stays above this size",
		value: field(sizeKind, 0, func(c *JobConfig) *int64 { return &c.MemoryRestart }), inMap: mapUnlessDefault,
		check: func(c *JobConfig) error { return atLeastZero("memory_restart", c.MemoryRestart) }},
	{key: "limit_nofile", def: "—", doc: "RLIMIT_NOFILE: open files",
		value: field(rlimitKind(false), "", func(c *JobConfig) *string { return &c.LimitNofile }), inMap: mapUnlessDefault},
	{key: "limit_nproc", def: "—", doc: "RLIMIT_NPROC: processes of the user",
		value: field(rlimitKind(false), "", func(c *JobConfig) *string { return &c.LimitNproc }), inMap: mapUnlessDefault},
	{key: "limit_core", def: "—", doc: "RLIMIT_CORE: core file size",
		value: field(rlimitKind(true), "", func(c *JobConfig) *string { return &c.LimitCore }), inMap: mapUnlessDefault},
	{key: "limit_memlock", def: "—", doc: "RLIMIT_MEMLOCK: locked memory",
		value: field(rlimitKind(true), "", func(c *JobConfig) *string { return &c.LimitMemlock }), inMap: mapUnlessDefault},
	{key: "limit_as", def: "—", doc: "RLIMIT_AS: address space",
		value: field(rlimitKind(true), "", func(c *JobConfig) *string { return &c.LimitAS }), inMap: mapUnlessDefault},
	{key: "nice", def: "—", doc: "scheduling priority, -20 to 19",
		value: field(optIntKind, nil, func(c *JobConfig) **int { return &c.Nice }), inMap: mapUnlessDefault,
		check: func(c *JobConfig) error { return checkRange("nice", c.Nice, -20, 19) }},
	{key: "umask", def: "—", doc: "file mode creation mask, octal",
		value: field(umaskKind, "", func(c *JobConfig) *string { return &c.Umask }), inMap: mapUnlessDefault},
	{key: "oom_score_adj", def: "—", doc: "the OOM killer's adjustment, -1000 to 1000",
		value: field(optIntKind, nil, func(c *JobConfig) **int { return &c.OOMScoreAdj }), inMap: mapUnlessDefault,
		check: func(c *JobConfig) error { return checkRange("oom_score_adj", c.OOMScoreAdj, -1000, 1000) }},
	// Accepted and ignored, for the original's clients.
	{key: "group", def: "—", doc: "0.5.2's placeholder; accepted and ignored", jsonOnly: true},
	{key: "custom_channels", def: "—", doc: "0.5.2's embedding-only pipes; accepted and ignored", jsonOnly: true},
}

// jobSettingIndex finds a row by its key or one of its aliases.
var jobSettingIndex = func() map[string]*jobSetting {
	idx := make(map[string]*jobSetting, len(jobSettings))
	for i := range jobSettings {
		s := &jobSettings[i]
		for _, k := range append([]string{s.key}, s.aliases...) {
			if idx[k] != nil {
				panic("jobSettings: key " + k + " twice")
			}
			idx[k] = s
		}
	}
	return idx
}()

// iniJobKeys lists the keys of a process section, for the error of an
// unknown one.
var iniJobKeys = func() string {
	var keys []string
	for i := range jobSettings {
		if s := &jobSettings[i]; !s.jsonOnly {
			keys = append(keys, s.iniForm())
		}
	}
	return strings.Join(keys, ", ")
}()

// iniForm is the key as written in a process section: "env:NAME" for a
// kind that takes one entry per key.
func (s *jobSetting) iniForm() string {
	if s.value.addEntry != nil {
		return s.key + ":NAME"
	}
	return s.key
}

// iniJobSetting finds the row of a process section's key, and the NAME
// of a key:NAME form ("env:PORT"), which keeps its written case. nil: an
// unknown key.
func iniJobSetting(k INIKey) (*jobSetting, string) {
	if kind, _, ok := strings.Cut(k.Name, ":"); ok {
		s := jobSettingIndex[kind]
		if s == nil || s.jsonOnly || s.value.addEntry == nil || len(k.Raw) <= len(kind) || !strings.EqualFold(k.Raw[:len(kind)+1], kind+":") {
			return nil, ""
		}
		return s, strings.TrimSpace(k.Raw[len(kind)+1:])
	}
	s := jobSettingIndex[k.Name]
	if s == nil || s.jsonOnly || s.value.fromText == nil {
		return nil, ""
	}
	return s, ""
}

// inMapOf reports whether Map writes the setting of c.
func (s *jobSetting) inMapOf(c *JobConfig) bool {
	switch s.inMap {
	case mapUnlessDefault:
		return !s.value.isDefault(c)
	case mapWithLogfile:
		return c.StdoutLogfile != "" || c.StderrLogfile != "" || c.Logfile != ""
	case mapNever:
		return false
	}
	return true
}

// binding is a kind of value bound to one field of JobConfig, with the
// field's default: what a row does with a value, whatever its type.
type binding struct {
	reset     func(c *JobConfig)
	clone     func(c *JobConfig) // deep-copies the field in place
	fromJSON  func(c *JobConfig, key string, v any) error
	fromText  func(c *JobConfig, s string, l *cfgLoader) error
	addEntry  func(c *JobConfig, name, s string) error // the INI form key:NAME = s
	toJSON    func(c *JobConfig) any
	isDefault func(c *JobConfig) bool
}

// valueKind is a type of setting: how a value reads from JSON and from
// INI text, and is written back to JSON.
type valueKind[T any] struct {
	fromJSON func(key string, v any) (T, error)
	fromText func(s string, l *cfgLoader) (T, error) // nil: no INI form of its own
	addEntry func(v *T, name, s string) error        // INI key:NAME = s; nil: none
	toJSON   func(v T) any                           // nil: the value itself
	clone    func(v T) T                             // nil: a plain copy
}

// field binds a kind to a JobConfig field with its default.
func field[T any](k valueKind[T], def T, get func(*JobConfig) *T) binding {
	b := binding{
		reset: func(c *JobConfig) { *get(c) = def },
		fromJSON: func(c *JobConfig, key string, v any) error {
			x, err := k.fromJSON(key, v)
			if err == nil {
				*get(c) = x
			}
			return err
		},
		toJSON: func(c *JobConfig) any {
			if k.toJSON != nil {
				return k.toJSON(*get(c))
			}
			return *get(c)
		},
		isDefault: func(c *JobConfig) bool { return reflect.DeepEqual(*get(c), def) },
	}
	if k.fromText != nil {
		b.fromText = func(c *JobConfig, s string, l *cfgLoader) error {
			x, err := k.fromText(s, l)
			if err == nil {
				*get(c) = x
			}
			return err
		}
	}
	if k.addEntry != nil {
		b.addEntry = func(c *JobConfig, name, s string) error { return k.addEntry(get(c), name, s) }
	}
	if k.clone != nil {
		b.clone = func(c *JobConfig) { *get(c) = k.clone(*get(c)) }
	}
	return b
}

// The kinds of the table.
var (
	stringKind = valueKind[string]{fromJSON: mapString,
		fromText: func(s string, _ *cfgLoader) (string, error) { return s, nil }}
	// pathKind is a path; in INI, relative to the configuration's directory.
	pathKind = valueKind[string]{fromJSON: mapString,
		fromText: func(s string, l *cfgLoader) (string, error) { return l.path(s), nil }}
	// dirKind is a directory; in INI, relative to the configuration's
	// directory, and empty means that directory.
	dirKind = valueKind[string]{fromJSON: mapString,
		fromText: func(s string, l *cfgLoader) (string, error) {
			if s == "" {
				s = "."
			}
			return l.path(s), nil
		}}
	idKind = valueKind[string]{fromJSON: mapID,
		fromText: func(s string, _ *cfgLoader) (string, error) {
			if s == "" || strings.ContainsAny(s, " \t\n:") {
				return "", fmt.Errorf("expected a name or a number, got %q", s)
			}
			return s, nil
		}}
	boolKind = valueKind[bool]{fromJSON: mapBool,
		fromText: func(s string, _ *cfgLoader) (bool, error) {
			b, ok := ParseBool(s)
			if !ok {
				return false, fmt.Errorf("expected a boolean (true/false, yes/no, on/off, 1/0), got %q", s)
			}
			return b, nil
		}}
	intKind = valueKind[int]{fromJSON: mapInt,
		fromText: func(s string, _ *cfgLoader) (int, error) {
			n, err := strconv.ParseInt(s, 10, 32)
			if err != nil {
				return 0, fmt.Errorf("expected an integer, got %q", s)
			}
			return int(n), nil
		}}
	// secondsKind is a delay: JSON seconds (fractions allowed), INI
	// seconds or a Go duration ("1m30s"); written back as seconds.
	secondsKind = valueKind[time.Duration]{
		fromJSON: func(key string, v any) (time.Duration, error) {
			f, err := mapFloat(key, v)
			return secondsToDuration(f), err
		},
		fromText: func(s string, _ *cfgLoader) (time.Duration, error) { return cfgParseSeconds(s) },
		toJSON:   func(d time.Duration) any { return d.Seconds() }}
	// sizeKind is a byte count: JSON an integer, INI a size such as 10MB.
	sizeKind = valueKind[int64]{
		fromJSON: func(key string, v any) (int64, error) {
			n, err := mapInt(key, v)
			return int64(n), err
		},
		fromText: func(s string, _ *cfgLoader) (int64, error) { return cfgParseSize(s) }}
	// sizeIntKind is a sizeKind of at most 2^31-1 bytes.
	sizeIntKind = valueKind[int]{fromJSON: mapInt,
		fromText: func(s string, _ *cfgLoader) (int, error) {
			n, err := cfgParseSize(s)
			if err == nil && n > math.MaxInt32 {
				err = fmt.Errorf("at most %d bytes", math.MaxInt32)
			}
			return int(n), err
		}}
	// listKind is a list of strings: JSON a list or one comma-separated
	// string, INI comma-separated.
	listKind = valueKind[[]string]{fromJSON: mapStrings,
		fromText: func(s string, _ *cfgLoader) ([]string, error) { return cfgCommaList(s), nil },
		toJSON:   func(v []string) any { return nonNil(v) }, clone: cloneStrings}
	// argsKind is a list of arguments: JSON a list or one string, INI one
	// string; a string is split into words as a shell would.
	argsKind = valueKind[[]string]{fromJSON: mapArgs,
		fromText: func(s string, _ *cfgLoader) ([]string, error) { return SplitCommandLine(s) },
		toJSON:   func(v []string) any { return nonNil(v) }, clone: cloneStrings}
	// envKind is a set of variables: JSON an object, INI one env:NAME key
	// per variable (the name keeps its case). Written back as a copy, so
	// that Map may mask it.
	envKind = valueKind[map[string]string]{fromJSON: mapEnv,
		addEntry: func(env *map[string]string, name, s string) error {
			if err := cfgEnvName(name); err != nil {
				return err
			}
			if *env == nil {
				*env = map[string]string{}
			}
			(*env)[name] = s
			return nil
		},
		toJSON: func(v map[string]string) any {
			if v = maps.Clone[map[string]string](v); v == nil {
				v = map[string]string{}
			}
			return v
		},
		clone: maps.Clone[map[string]string]}
	flappingKind = valueKind[*FlapConfig]{fromJSON: mapFlapping, fromText: textFlapping,
		toJSON: func(f *FlapConfig) any {
			if f == nil {
				return nil
			}
			return *f
		},
		clone: func(f *FlapConfig) *FlapConfig {
			if f == nil {
				return nil
			}
			g := *f
			return &g
		}}
)

// cloneStrings copies a list (nil and empty both give nil).
func cloneStrings(s []string) []string { return append([]string(nil), s...) }

// atLeastZero is the check of a count that cannot be negative.
func atLeastZero(key string, n int64) error {
	if n < 0 {
		return errBadRequest("%s: must be >= 0", key)
	}
	return nil
}

// ParseBool accepts the INI spellings 1/yes/true/on and 0/no/false/off.
func ParseBool(s string) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "yes", "true", "on", "y", "t":
		return true, true
	case "0", "no", "false", "off", "n", "f":
		return false, true
	}
	return false, false
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

// secondsToDuration converts seconds to a Duration, saturating at ±1e9 s
// (the conversion of a larger float is undefined). Every bound a caller
// checks afterwards (max_graceful_timeout, …) is far below, so a huge
// value is still refused, never silently shortened into range.
func secondsToDuration(f float64) time.Duration {
	f = min(max(f, -1e9), 1e9)
	return time.Duration(f * float64(time.Second))
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

// flapRange is the rule of the flapping values.
const flapRange = "attempts must be >= 1 and the other values >= 0"

// valid reports whether f holds to flapRange.
func (f *FlapConfig) valid() bool {
	return f.Attempts >= 1 && f.MaxRetry >= 0 && f.Window >= 0 && f.RetryIn >= 0
}

// mapFlapping reads flapping from JSON: an object of the four values
// (missing ones take the defaults), the INI string form, true for the
// defaults, or false/null for none.
func mapFlapping(k string, v any) (*FlapConfig, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case bool:
		if !x {
			return nil, nil
		}
		f := DefaultFlapConfig()
		return &f, nil
	case string:
		f, err := parseFlapping(x)
		if err != nil {
			return nil, errBadRequest("%s: %v", k, err)
		}
		return f, nil
	case map[string]any:
		f := DefaultFlapConfig()
		for name, val := range x {
			var err error
			switch name {
			case "attempts":
				f.Attempts, err = mapInt(k+".attempts", val)
			case "window":
				f.Window, err = mapFloat(k+".window", val)
			case "retry_in":
				f.RetryIn, err = mapFloat(k+".retry_in", val)
			case "max_retry":
				f.MaxRetry, err = mapInt(k+".max_retry", val)
			default:
				return nil, errBadRequest("%s.%s: unknown setting (want attempts, window, retry_in, max_retry)", k, name)
			}
			if err != nil {
				return nil, err
			}
		}
		return &f, nil
	}
	return nil, typeErr(k, "an object", v)
}

// textFlapping reads flapping from INI: a boolean (true for the defaults),
// or the values as ParseFlapping reads them.
func textFlapping(s string, _ *cfgLoader) (*FlapConfig, error) {
	if b, ok := ParseBool(s); ok && strings.Trim(s, "0123456789") != "" {
		if !b {
			return nil, nil
		}
		f := DefaultFlapConfig()
		return &f, nil
	}
	return parseFlapping(s)
}

// ParseFlapping parses the INI form "2, 1., 7., 5" or "2 1 7 5": attempts,
// window, retry_in, max_retry, positional, missing trailing values taking
// the defaults.
func ParseFlapping(s string) (*FlapConfig, error) {
	f, err := parseFlapping(s)
	if err != nil {
		return nil, errBadRequest("flapping: %v", err)
	}
	return f, nil
}

// parseFlapping is ParseFlapping with errors that do not name the key.
func parseFlapping(s string) (*FlapConfig, error) {
	f := DefaultFlapConfig()
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	if len(fields) == 0 {
		return nil, errors.New("empty value")
	}
	if len(fields) > 4 {
		return nil, fmt.Errorf("at most 4 values (attempts, window, retry_in, max_retry), got %d", len(fields))
	}
	names := []string{"attempts", "window", "retry_in", "max_retry"}
	for i, fld := range fields {
		switch i {
		case 0, 3:
			n, err := strconv.Atoi(fld)
			if err != nil {
				return nil, fmt.Errorf("%s must be an integer, got %q", names[i], fld)
			}
			if i == 0 {
				f.Attempts = n
			} else {
				f.MaxRetry = n
			}
		default:
			x, err := strconv.ParseFloat(fld, 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("%s must be a number, got %q", names[i], fld)
			}
			if i == 1 {
				f.Window = x
			} else {
				f.RetryIn = x
			}
		}
	}
	if !f.valid() {
		return nil, errors.New(flapRange)
	}
	return &f, nil
}
