package gaffer

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
// JobConfigFromMap so that the defaults are set.
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

	// Log files (per job): output written to files with size rotation.
	StdoutLogfile     string
	StderrLogfile     string
	Logfile           string // both streams to one file
	LogfileMaxBytes   int64  // rotate past this size; 0 = never
	LogfileBackups    int    // rotated files kept
	LogfileTimestamps bool   // prefix each line with an RFC 3339 time
}

// NewJobConfig returns a config with every default set.
func NewJobConfig(name, cmd string) JobConfig {
	return JobConfig{
		Name:            name,
		Cmd:             cmd,
		NumProcesses:    1,
		GracefulTimeout: DefaultGracefulTimeout,
		Priority:        DefaultPriority,
		Start:           true,
		RingSize:        DefaultRingSize,
		LogfileBackups:  5,
	}
}

// Clone returns a deep copy of c.
func (c JobConfig) Clone() JobConfig {
	d := c
	d.Args = append([]string(nil), c.Args...)
	d.RedirectOutput = append([]string(nil), c.RedirectOutput...)
	d.CustomStreams = append([]string(nil), c.CustomStreams...)
	if c.Env != nil {
		d.Env = make(map[string]string, len(c.Env))
		for k, v := range c.Env {
			d.Env[k] = v
		}
	}
	if c.Flapping != nil {
		f := *c.Flapping
		d.Flapping = &f
	}
	return d
}

// Validate checks the settings that can be wrong whatever their source.
func (c *JobConfig) Validate() error {
	if err := ValidateName(c.Name, "name"); err != nil {
		return err
	}
	if strings.TrimSpace(c.Cmd) == "" {
		return errBadRequest("cmd: the command line is empty")
	}
	if c.NumProcesses < 0 {
		return errBadRequest("numprocesses: must be >= 0, got %d", c.NumProcesses)
	}
	if c.GracefulTimeout < 0 {
		return errBadRequest("graceful_timeout: must be >= 0")
	}
	if len(c.RedirectOutput) > 2 {
		return errBadRequest("redirect_output: at most 2 labels (stdout, stderr), got %d", len(c.RedirectOutput))
	}
	seen := map[string]bool{"stdin": true}
	for _, l := range c.RedirectOutput {
		if err := validateLabel(l, "redirect_output"); err != nil {
			return err
		}
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
	if f := c.Flapping; f != nil {
		if f.Attempts < 1 || f.MaxRetry < 0 || f.Window < 0 || f.RetryIn < 0 {
			return errBadRequest("flapping: attempts must be >= 1 and the other values >= 0")
		}
	}
	if c.RingSize < 0 {
		return errBadRequest("ring_size: must be >= 0")
	}
	if c.LogfileMaxBytes < 0 || c.LogfileBackups < 0 {
		return errBadRequest("logfile_maxbytes and logfile_backups must be >= 0")
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

// jobConfigKeys lists every key JobConfigFromMap accepts.
var jobConfigKeys = map[string]bool{
	"name": true, "cmd": true, "args": true, "env": true, "os_env": true, "uid": true, "gid": true,
	"cwd": true, "detach": true, "shell": true, "numprocesses": true, "redirect_output": true,
	"redirect_input": true, "custom_streams": true, "graceful_timeout": true, "flapping": true,
	"priority": true, "start": true, "ring_size": true, "stdout_logfile": true,
	"stderr_logfile": true, "logfile": true, "logfile_maxbytes": true, "logfile_backups": true,
	"logfile_timestamps": true,
	// accepted and ignored for compatibility with the original's clients
	"group": true, "custom_channels": true,
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
	for _, k := range keys {
		v := m[k]
		if !jobConfigKeys[k] {
			return c, errBadRequest("%s: unknown setting", k)
		}
		var err error
		switch k {
		case "name":
			c.Name, err = mapString(k, v)
		case "cmd":
			c.Cmd, err = mapString(k, v)
		case "args":
			c.Args, err = mapArgs(k, v)
		case "env":
			c.Env, err = mapEnv(k, v)
		case "os_env":
			c.OSEnv, err = mapBool(k, v)
		case "uid":
			c.UID, err = mapID(k, v)
		case "gid":
			c.GID, err = mapID(k, v)
		case "cwd":
			c.Cwd, err = mapString(k, v)
		case "detach":
			c.Detach, err = mapBool(k, v)
		case "shell":
			c.Shell, err = mapBool(k, v)
		case "numprocesses":
			c.NumProcesses, err = mapInt(k, v)
		case "redirect_output":
			c.RedirectOutput, err = mapStrings(k, v)
		case "redirect_input":
			c.RedirectInput, err = mapBool(k, v)
		case "custom_streams":
			c.CustomStreams, err = mapStrings(k, v)
		case "graceful_timeout":
			var f float64
			f, err = mapFloat(k, v)
			c.GracefulTimeout = secondsToDuration(f)
		case "flapping":
			c.Flapping, err = mapFlapping(k, v)
		case "priority":
			c.Priority, err = mapInt(k, v)
		case "start":
			c.Start, err = mapBool(k, v)
		case "ring_size":
			c.RingSize, err = mapInt(k, v)
		case "stdout_logfile":
			c.StdoutLogfile, err = mapString(k, v)
		case "stderr_logfile":
			c.StderrLogfile, err = mapString(k, v)
		case "logfile":
			c.Logfile, err = mapString(k, v)
		case "logfile_maxbytes":
			var n int
			n, err = mapInt(k, v)
			c.LogfileMaxBytes = int64(n)
		case "logfile_backups":
			c.LogfileBackups, err = mapInt(k, v)
		case "logfile_timestamps":
			c.LogfileTimestamps, err = mapBool(k, v)
		}
		if err != nil {
			return c, err
		}
	}
	if _, ok := m["name"]; !ok {
		return c, errBadRequest("name: missing")
	}
	if _, ok := m["cmd"]; !ok {
		return c, errBadRequest("cmd: missing")
	}
	return c, c.Validate()
}

// secondsToDuration converts seconds to a Duration, saturating at ±1e9 s
// (the conversion of a larger float is undefined). Every bound a caller
// checks afterwards (max_graceful_timeout, …) is far below, so a huge
// value is still refused, never silently shortened into range.
func secondsToDuration(f float64) time.Duration {
	f = min(max(f, -1e9), 1e9)
	return time.Duration(f * float64(time.Second))
}

// Map returns the config as the JSON object shown under "config" in job
// info. Secret-looking env values are masked unless showSecrets.
func (c JobConfig) Map(showSecrets bool) map[string]any {
	env := map[string]string{}
	for k, v := range c.Env {
		if !showSecrets && IsSecretName(k) {
			v = "********"
		}
		env[k] = v
	}
	m := map[string]any{
		"name":             c.Name,
		"cmd":              c.Cmd,
		"args":             nonNil(c.Args),
		"env":              env,
		"os_env":           c.OSEnv,
		"cwd":              c.Cwd,
		"detach":           c.Detach,
		"shell":            c.Shell,
		"numprocesses":     c.NumProcesses,
		"redirect_output":  nonNil(c.RedirectOutput),
		"redirect_input":   c.RedirectInput,
		"custom_streams":   nonNil(c.CustomStreams),
		"graceful_timeout": c.GracefulTimeout.Seconds(),
	}
	if c.UID != "" {
		m["uid"] = c.UID
	}
	if c.GID != "" {
		m["gid"] = c.GID
	}
	if c.Flapping != nil {
		m["flapping"] = *c.Flapping
	}
	if c.Priority != DefaultPriority {
		m["priority"] = c.Priority
	}
	if c.RingSize != DefaultRingSize {
		m["ring_size"] = c.RingSize
	}
	for k, v := range map[string]string{"stdout_logfile": c.StdoutLogfile, "stderr_logfile": c.StderrLogfile, "logfile": c.Logfile} {
		if v != "" {
			m[k] = v
		}
	}
	if c.StdoutLogfile != "" || c.StderrLogfile != "" || c.Logfile != "" {
		m["logfile_maxbytes"] = c.LogfileMaxBytes
		m["logfile_backups"] = c.LogfileBackups
		m["logfile_timestamps"] = c.LogfileTimestamps
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

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func typeErr(k string, want string, v any) error {
	return errBadRequest("%s: expected %s, got %s", k, want, jsonTypeName(v))
}

func jsonTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number, float64, int:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func mapString(k string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", typeErr(k, "a string", v)
	}
	return s, nil
}

func mapBool(k string, v any) (bool, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		if r, ok := ParseBool(b); ok {
			return r, nil
		}
	}
	return false, typeErr(k, "a boolean", v)
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

func mapInt(k string, v any) (int, error) {
	switch n := v.(type) {
	case json.Number:
		i, err := strconv.ParseInt(string(n), 10, 32)
		if err != nil {
			f, ferr := n.Float64()
			if ferr != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
				return 0, errBadRequest("%s: expected an integer, got %s", k, n)
			}
			return int(f), nil
		}
		return int(i), nil
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > math.MaxInt32 {
			return 0, errBadRequest("%s: expected an integer, got %v", k, n)
		}
		return int(n), nil
	case int:
		return n, nil
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 32)
		if err != nil {
			return 0, errBadRequest("%s: expected an integer, got %q", k, n)
		}
		return int(i), nil
	}
	return 0, typeErr(k, "an integer", v)
}

func mapFloat(k string, v any) (float64, error) {
	var f float64
	var err error
	switch n := v.(type) {
	case json.Number:
		f, err = n.Float64()
	case float64:
		f = n
	case int:
		f = float64(n)
	case string:
		f, err = strconv.ParseFloat(strings.TrimSpace(n), 64)
	default:
		return 0, typeErr(k, "a number", v)
	}
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errBadRequest("%s: expected a number, got %v", k, v)
	}
	return f, nil
}

func mapID(k string, v any) (string, error) {
	switch n := v.(type) {
	case nil:
		return "", nil
	case string:
		return n, nil
	case json.Number:
		i, err := strconv.ParseUint(string(n), 10, 32)
		if err != nil {
			return "", errBadRequest("%s: expected a name or a non-negative integer, got %s", k, n)
		}
		return strconv.FormatUint(i, 10), nil
	case float64:
		if n < 0 || n != math.Trunc(n) {
			return "", errBadRequest("%s: expected a name or a non-negative integer", k)
		}
		return strconv.FormatInt(int64(n), 10), nil
	}
	return "", typeErr(k, "a name or an integer", v)
}

func mapStrings(k string, v any) ([]string, error) {
	switch a := v.(type) {
	case nil:
		return nil, nil
	case string:
		var out []string
		for _, s := range strings.Split(a, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out, nil
	case []any:
		out := make([]string, 0, len(a))
		for i, e := range a {
			s, ok := e.(string)
			if !ok {
				return nil, typeErr(fmt.Sprintf("%s[%d]", k, i), "a string", e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, typeErr(k, "a list of strings", v)
}

func mapArgs(k string, v any) ([]string, error) {
	if s, ok := v.(string); ok {
		args, err := SplitCommandLine(s)
		if err != nil {
			return nil, errBadRequest("%s: %v", k, err)
		}
		return args, nil
	}
	return mapStrings(k, v)
}

// mapEnv reads an env object. Values are strings; a number is taken as
// its text as written ("PORT": 8080 is "8080") and a boolean as "true" or
// "false", as compose files do; null, objects and lists are refused.
func mapEnv(k string, v any) (map[string]string, error) {
	if v == nil {
		return nil, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, typeErr(k, "an object", v)
	}
	env := make(map[string]string, len(obj))
	for name, val := range obj {
		if name == "" || strings.ContainsAny(name, "=\x00") {
			return nil, errBadRequest("%s: invalid variable name %q", k, name)
		}
		switch x := val.(type) {
		case string:
			if strings.ContainsRune(x, 0) {
				return nil, errBadRequest("%s.%s: value contains a NUL byte", k, name)
			}
			env[name] = x
		case json.Number:
			env[name] = string(x)
		case bool:
			env[name] = strconv.FormatBool(x)
		default:
			return nil, typeErr(k+"."+name, "a string (numbers and booleans are taken as their text)", val)
		}
	}
	return env, nil
}

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
		return ParseFlapping(x)
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

// ParseFlapping parses the INI form "2, 1., 7., 5" or "2 1 7 5": attempts,
// window, retry_in, max_retry, positional, missing trailing values taking
// the defaults.
func ParseFlapping(s string) (*FlapConfig, error) {
	f := DefaultFlapConfig()
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	if len(fields) == 0 {
		return nil, errBadRequest("flapping: empty value")
	}
	if len(fields) > 4 {
		return nil, errBadRequest("flapping: at most 4 values (attempts, window, retry_in, max_retry), got %d", len(fields))
	}
	names := []string{"attempts", "window", "retry_in", "max_retry"}
	for i, fld := range fields {
		switch i {
		case 0, 3:
			n, err := strconv.Atoi(fld)
			if err != nil {
				return nil, errBadRequest("flapping: %s must be an integer, got %q", names[i], fld)
			}
			if i == 0 {
				f.Attempts = n
			} else {
				f.MaxRetry = n
			}
		default:
			x, err := strconv.ParseFloat(fld, 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, errBadRequest("flapping: %s must be a number, got %q", names[i], fld)
			}
			if i == 1 {
				f.Window = x
			} else {
				f.RetryIn = x
			}
		}
	}
	if f.Attempts < 1 || f.MaxRetry < 0 || f.Window < 0 || f.RetryIn < 0 {
		return nil, errBadRequest("flapping: attempts must be >= 1 and the other values >= 0")
	}
	return &f, nil
}
