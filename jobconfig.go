package gaffer

// A job's configuration: the JobConfig type, its defaults, Validate, its
// JSON form (JobConfigFromJSON, JobConfigFromMap, Map) and the one name
// syntax of jobs, sessions and stream labels. What each setting is, reads
// from and writes to is the table of jobsettings.go; the INI process
// sections read the same table (configini.go).

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultGracefulTimeout is the delay between SIGTERM and SIGKILL when a job
// does not set graceful_timeout (30 s, as the seed documents).
const DefaultGracefulTimeout = 30 * time.Second

// DefaultPriority places jobs without a priority last.
const DefaultPriority = math.MaxInt32

// DefaultRingSize is the default number of bytes of recent output each
// stream keeps for late and reconnecting readers.
const DefaultRingSize = 256 << 10

// FlapConfig is the crash-loop protection of a job (reference §6.5): when
// Attempts unexpected exits happen within Window seconds, the job is
// stopped and retried after RetryIn seconds, at most MaxRetry times.
type FlapConfig struct {
	Attempts int     `json:"attempts"`
	Window   float64 `json:"window"`
	RetryIn  float64 `json:"retry_in"`
	MaxRetry int     `json:"max_retry"`
}

// DefaultFlapConfig returns the documented defaults 2, 1., 7., 5.
func DefaultFlapConfig() FlapConfig {
	return FlapConfig{Attempts: 2, Window: 1, RetryIn: 7, MaxRetry: 5}
}

// JobConfig describes a job: a command that gaffer keeps NumProcesses copies
// of. The zero value is not usable; build one with NewJobConfig or
// JobConfigFromMap so that the defaults are set. Each field is one row of
// the table of job settings (jobsettings.go), which names its key.
type JobConfig struct {
	Name           string            // job name inside its session (required)
	Cmd            string            // command line (required)
	Args           []string          // extra arguments appended after those of Cmd
	Env            map[string]string // environment, over gafferd's when OSEnv
	OSEnv          bool              // also pass gafferd's environment
	UID            string            // user name or number; "" keeps gafferd's
	GID            string            // group name or number; "" keeps gafferd's
	Cwd            string            // working directory; "" is gafferd's
	Detach         bool              // own session (setsid); left running when gafferd stops
	Shell          bool              // run the whole command line through sh -c
	NumProcesses   int               // target number of kept-alive processes
	RedirectOutput []string          // labels for stdout and stderr (same label merges them)
	RedirectInput  bool              // open a pipe to stdin
	CustomStreams  []string          // extra bidirectional pipes at fd 3, 4, …
	// GracefulTimeout is the delay between SIGTERM and SIGKILL.
	GracefulTimeout time.Duration
	Flapping        *FlapConfig // nil: no crash-loop protection
	Priority        int         // INI load order, lower first
	Start           bool        // start right after load
	RingSize        int         // bytes of recent output kept per stream

	// Lifecycle (lifecycle.go and the files it names): readiness, health
	// checks, dependencies and the restart policy.
	Ready            string           // notify, tcp:HOST:PORT, http://HOST:PORT/PATH, exec:COMMAND or log:REGEX; "": ready when spawned
	ReadyTimeout     time.Duration    // not ready by then: stopped, a failed start; 0: no limit
	Watchdog         time.Duration    // WATCHDOG=1 expected within this interval; 0: none
	DependsOn        []string         // NAME[:CONDITION]: jobs whose condition must hold before this one spawns
	RestartWith      []string         // jobs whose restart restarts this one
	Health           string           // tcp:HOST:PORT, http://HOST:PORT/PATH or exec:COMMAND; "": none
	HealthInterval   time.Duration    // between two health checks
	HealthTimeout    time.Duration    // of one health check
	HealthRetries    int              // consecutive failed checks that make a process unhealthy
	Restart          string           // always, on-failure or never
	SuccessExitCodes []int            // exit statuses that are a success; nil: 0
	RestartDelay     [2]time.Duration // MIN and MAX wait before a respawn; MAX 0: always MIN
	Essential        bool             // when the job gives up, the Manager's owner stops everything (Options.EssentialFailed)

	// Log files (per job): output written to files with size rotation.
	StdoutLogfile     string
	StderrLogfile     string
	Logfile           string // both streams to one file
	LogfileMaxBytes   int64  // rotate past this size; 0 = never
	LogfileBackups    int    // rotated files kept
	LogfileTimestamps bool   // prefix each line with an RFC 3339 time

	// Containment (cgroup_linux.go, execshim_linux.go, sockets.go,
	// memrestart.go).
	Sockets       []string // listening sockets passed at fd 3, 4, … (sd_listen_fds)
	MemoryMax     int64    // bytes of memory of each process's cgroup; 0 = none
	CPUMax        float64  // cores of CPU time of each process's cgroup; 0 = none
	PidsMax       int      // processes (and threads) of each process's cgroup; 0 = none
	MemoryRestart int64    // restart a process whose memory stays above this; 0 = never
	// Resource limits (setrlimit) of each process, "SOFT[:HARD]" or
	// "infinity"; "" leaves gafferd's.
	LimitNofile, LimitNproc, LimitCore, LimitMemlock, LimitAS string

	Nice        *int   // scheduling priority, -20 to 19; nil leaves gafferd's
	Umask       string // octal file mode creation mask; "" leaves gafferd's
	OOMScoreAdj *int   // /proc/<pid>/oom_score_adj, -1000 to 1000; nil leaves gafferd's
}

// NewJobConfig returns a config with every default set (the defaults of
// the table of job settings, jobsettings.go).
func NewJobConfig(name, cmd string) JobConfig {
	var c JobConfig
	for i := range jobSettings {
		if b := jobSettings[i].value; b.reset != nil {
			b.reset(&c)
		}
	}
	c.Name, c.Cmd = name, cmd
	return c
}

// Clone returns a deep copy of c.
func (c JobConfig) Clone() JobConfig {
	d := c
	for i := range jobSettings {
		if b := jobSettings[i].value; b.clone != nil {
			b.clone(&d)
		}
	}
	return d
}

// Validate checks the settings that can be wrong whatever their source.
func (c *JobConfig) Validate() error {
	for i := range jobSettings {
		if check := jobSettings[i].check; check != nil {
			if err := check(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxNameLen bounds every name: session ids, job names, stream labels and
// Procfile process names.
const maxNameLen = 128

// ValidateName checks a job name against the one name syntax of gaffer:
// 1 to 128 bytes of ASCII letters, digits, '_', '-' and '.', where '-' and
// '.' are only allowed inside (not first, not last) and ".." is refused.
// Session ids, stream labels and Procfile process names follow the same
// syntax without '.' (ValidateSession, validateLabel). field names the
// setting in the error.
func ValidateName(s, field string) error {
	return checkName(s, field, true)
}

// ValidateSession checks a session id: a name without '.' (the '.' of
// "session.job" separates the two).
func ValidateSession(s string) error {
	return checkName(s, "sessionid", false)
}

// validateLabel checks a stream label (redirect_output, custom_streams): a
// name without '.' (STREAM:<pid>.<label> separates them with a '.').
func validateLabel(l, field string) error {
	return checkName(l, field, false)
}

// checkName is the name syntax of ValidateName; dots tells whether '.'
// is allowed inside.
func checkName(s, field string, dots bool) error {
	if s == "" {
		return errBadRequest("%s: missing (an empty name)", field)
	}
	if p := nameProblem(s, dots); p != "" {
		return errBadRequest("%s: %s %s", field, quoteName(s), p)
	}
	return nil
}

// nameProblem says what is wrong with a non-empty name, or "".
func nameProblem(s string, dots bool) string {
	if s == "" {
		return "is empty"
	}
	if len(s) > maxNameLen {
		return fmt.Sprintf("is %d bytes long (a name is at most %d)", len(s), maxNameLen)
	}
	allowed := "letters, digits, '_' and '-'"
	if dots {
		allowed = "letters, digits, '_', '-' and '.'"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		case c == '-' || c == '.' && dots:
			if i == 0 || i == len(s)-1 {
				return fmt.Sprintf("must not start or end with %q", c)
			}
			if c == '.' && s[i-1] == '.' {
				return `must not contain ".."`
			}
		default:
			r, _ := utf8.DecodeRuneInString(s[i:])
			return fmt.Sprintf("must not contain %q (a name is made of ASCII %s)", r, allowed)
		}
	}
	return ""
}

// quoteName quotes a name for an error message, shortened when long.
func quoteName(s string) string {
	if len(s) > 40 {
		return strconv.Quote(s[:32]) + "…"
	}
	return strconv.Quote(s)
}

// SplitName splits a full job name: on the first '.', else the first '/',
// else the session is "default" (reference §1.2).
func SplitName(full string) (session, job string) {
	if i := strings.IndexByte(full, '.'); i >= 0 {
		return full[:i], full[i+1:]
	}
	if i := strings.IndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "default", full
}

// JobConfigFromJSON decodes and validates a JSON job object.
func JobConfigFromJSON(data []byte) (JobConfig, error) {
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return JobConfig{}, errBadRequest("invalid JSON: %v", err)
	}
	if m == nil {
		return JobConfig{}, errBadRequest("the body must be a JSON object")
	}
	return JobConfigFromMap(m)
}

// JobConfigFromMap builds a config from a decoded JSON object (as in
// POST /jobs/<sid>), checking the type of every key. An unknown key or a
// value of the wrong type is an error that names the key.
func JobConfigFromMap(m map[string]any) (JobConfig, error) {
	c := NewJobConfig("", "")
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	given := map[*jobSetting]string{}
	for _, k := range keys {
		s := jobSettingIndex[k]
		if s == nil {
			return c, errBadRequest("%s: unknown setting", k)
		}
		if other, dup := given[s]; dup {
			return c, errBadRequest("%s: set twice, as %s and as %s", s.key, other, k)
		}
		given[s] = k
		if s.value.fromJSON == nil {
			continue // accepted and ignored
		}
		if err := s.value.fromJSON(&c, k, m[k]); err != nil {
			return c, err
		}
	}
	for i := range jobSettings {
		if s := &jobSettings[i]; s.required && given[s] == "" {
			return c, errBadRequest("%s: missing", s.key)
		}
	}
	return c, c.Validate()
}

// Map returns the config as the JSON object shown under "config" in job
// info. Secret-looking env values are masked unless showSecrets.
func (c JobConfig) Map(showSecrets bool) map[string]any {
	m := make(map[string]any, len(jobSettings))
	for i := range jobSettings {
		if s := &jobSettings[i]; s.value.toJSON != nil && s.inMapOf(&c) {
			m[s.key] = s.value.toJSON(&c)
		}
	}
	if env, ok := m["env"].(map[string]string); ok && !showSecrets {
		for k := range env {
			if IsSecretName(k) {
				env[k] = "********"
			}
		}
	}
	return m
}

// Equal reports whether two configs describe the same job (used by reload
// to leave unchanged jobs alone). Start is not compared: it is an action.
func (c JobConfig) Equal(d JobConfig) bool {
	a, b := c.Map(true), d.Map(true)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// IsSecretName reports whether an environment variable name looks like it
// holds a secret (TOKEN, SECRET, PASSWORD, KEY…), so its value is masked.
func IsSecretName(name string) bool {
	u := strings.ToUpper(name)
	for _, w := range []string{"TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL"} {
		if strings.Contains(u, w) {
			return true
		}
	}
	return false
}
