package gaffer

// The kinds of value of the containment settings of the table of job
// settings (jobsettings.go): sockets, resource limits (setrlimit), nice,
// umask, oom_score_adj and cpu_max. Each reads from JSON and from INI text
// and is kept in one canonical form, so that a job read from a file,
// written as JSON and read back is the same job.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// rlimInfinity is RLIM_INFINITY.
const rlimInfinity = math.MaxUint64

// parseRlimit reads a resource limit: "N" (soft and hard), "SOFT:HARD",
// each side a number or "infinity" ("unlimited"); sized limits (core,
// memlock, as) also take sizes such as 64M.
func parseRlimit(s string, sized bool) (cur, max uint64, err error) {
	one := func(v string) (uint64, error) {
		v = strings.TrimSpace(v)
		switch strings.ToLower(v) {
		case "infinity", "unlimited":
			return rlimInfinity, nil
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			return n, nil
		}
		if sized {
			if n, err := cfgParseSize(v); err == nil && n >= 0 {
				return uint64(n), nil
			}
			return 0, fmt.Errorf("expected a number, a size such as 64M, or infinity, got %q", v)
		}
		return 0, fmt.Errorf("expected a number or infinity, got %q", v)
	}
	a, b, two := strings.Cut(s, ":")
	if cur, err = one(a); err != nil {
		return 0, 0, err
	}
	max = cur
	if two {
		if max, err = one(b); err != nil {
			return 0, 0, err
		}
	}
	if cur > max {
		return 0, 0, fmt.Errorf("the soft limit %s is above the hard limit %s", formatRlimitValue(cur), formatRlimitValue(max))
	}
	return cur, max, nil
}

func formatRlimitValue(n uint64) string {
	if n == rlimInfinity {
		return "infinity"
	}
	return strconv.FormatUint(n, 10)
}

// formatRlimit is the canonical form of a limit: "N" or "SOFT:HARD".
func formatRlimit(cur, max uint64) string {
	if cur == max {
		return formatRlimitValue(cur)
	}
	return formatRlimitValue(cur) + ":" + formatRlimitValue(max)
}

// rlimitKind is a resource limit, kept as its canonical text ("" unset).
func rlimitKind(sized bool) valueKind[string] {
	canon := func(s string) (string, error) {
		if strings.TrimSpace(s) == "" {
			return "", nil
		}
		cur, max, err := parseRlimit(s, sized)
		return formatRlimit(cur, max), err
	}
	return valueKind[string]{
		fromJSON: func(key string, v any) (string, error) {
			var s string
			switch x := v.(type) {
			case nil:
				return "", nil
			case string:
				s = x
			case json.Number:
				s = string(x)
			case float64:
				if x < 0 || x != math.Trunc(x) {
					return "", errBadRequest("%s: expected a limit >= 0, got %v", key, x)
				}
				s = strconv.FormatFloat(x, 'f', -1, 64)
			default:
				return "", typeErr(key, "a number or a string", v)
			}
			out, err := canon(s)
			if err != nil {
				return "", errBadRequest("%s: %v", key, err)
			}
			return out, nil
		},
		fromText: func(s string, _ *cfgLoader) (string, error) { return canon(s) },
	}
}

// optIntKind is an integer that may be unset (nil).
var optIntKind = valueKind[*int]{
	fromJSON: func(key string, v any) (*int, error) {
		if v == nil {
			return nil, nil
		}
		n, err := mapInt(key, v)
		if err != nil {
			return nil, err
		}
		return &n, nil
	},
	fromText: func(s string, _ *cfgLoader) (*int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("expected an integer, got %q", s)
		}
		return &n, nil
	},
	toJSON: func(v *int) any {
		if v == nil {
			return nil
		}
		return *v
	},
	clone: func(v *int) *int {
		if v == nil {
			return nil
		}
		n := *v
		return &n
	},
}

// umaskKind is an octal mask from 0000 to 0777, kept as 4 digits.
var umaskKind = valueKind[string]{
	fromJSON: func(key string, v any) (string, error) {
		s, err := mapString(key, v)
		if err != nil {
			return "", errBadRequest("%s: expected an octal mask as a string, such as \"0027\"", key)
		}
		out, err := parseUmask(s)
		if err != nil {
			return "", errBadRequest("%s: %v", key, err)
		}
		return out, nil
	},
	fromText: func(s string, _ *cfgLoader) (string, error) { return parseUmask(s) },
}

func parseUmask(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return "", fmt.Errorf("expected an octal mask from 0000 to 0777, got %q", s)
	}
	return fmt.Sprintf("%04o", n), nil
}

// coresKind is an amount of CPU in cores: 0.5, or a percent of one core
// ("50%"). 0 is none.
var coresKind = valueKind[float64]{
	fromJSON: func(key string, v any) (float64, error) {
		if s, ok := v.(string); ok {
			f, err := parseCores(s)
			if err != nil {
				return 0, errBadRequest("%s: %v", key, err)
			}
			return f, nil
		}
		return mapFloat(key, v)
	},
	fromText: func(s string, _ *cfgLoader) (float64, error) { return parseCores(s) },
}

func parseCores(s string) (float64, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	f, err := strconv.ParseFloat(strings.TrimSuffix(t, "%"), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("expected cores (0.5) or a percent of one core (50%%), got %q", s)
	}
	if pct {
		f /= 100
	}
	return f, nil
}

// maxCores bounds cpu_max.
const maxCores = 1024

func checkCores(c *JobConfig) error {
	if c.CPUMax != 0 && (c.CPUMax < 0.01 || c.CPUMax > maxCores) {
		return errBadRequest("cpu_max: expected from 0.01 to %d cores (0 for none), got %g", maxCores, c.CPUMax)
	}
	return nil
}

// checkRange is the check of an optional integer setting.
func checkRange(key string, v *int, lo, hi int) error {
	if v != nil && (*v < lo || *v > hi) {
		return errBadRequest("%s: expected from %d to %d, got %d", key, lo, hi, *v)
	}
	return nil
}

// socketsKind is the sockets setting: specs in their canonical form and
// @NAME references (a configuration file resolves them). In a file, a
// relative unix path is relative to the configuration's directory.
var socketsKind = valueKind[[]string]{
	fromJSON: func(key string, v any) ([]string, error) {
		list, err := mapStrings(key, v)
		if err != nil {
			return nil, err
		}
		out, err := canonSockets(list, nil)
		if err != nil {
			return nil, errBadRequest("%s: %v", key, err)
		}
		return out, nil
	},
	fromText: func(s string, l *cfgLoader) ([]string, error) { return canonSockets(cfgCommaList(s), l) },
	toJSON:   func(v []string) any { return nonNil(v) },
	clone:    cloneStrings,
}

// canonSockets writes each spec in its canonical form; l, when set,
// resolves relative unix paths.
func canonSockets(list []string, l *cfgLoader) ([]string, error) {
	var out []string
	for _, e := range list {
		e = strings.TrimSpace(e)
		if strings.HasPrefix(e, "@") {
			out = append(out, e)
			continue
		}
		s, err := parseSocketSpec(e)
		if err != nil {
			return nil, err
		}
		if s.network == "unix" && s.addr[0] != '@' && !strings.HasPrefix(s.addr, "/") {
			if l == nil {
				return nil, errors.New(e + ": a unix socket path must be absolute")
			}
			s.addr = l.path(s.addr)
		}
		out = append(out, s.String())
	}
	return out, nil
}
