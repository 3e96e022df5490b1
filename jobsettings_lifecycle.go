package gaffer

// The kinds and checks of the lifecycle rows of the table of job settings
// (jobsettings.go): readiness, dependencies, health checks and the
// restart policy. The probes themselves are read by parseProbe (probe.go).

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The defaults of the lifecycle settings.
const (
	defaultReadyTimeout   = 30 * time.Second
	defaultHealthInterval = 10 * time.Second
	defaultHealthTimeout  = 2 * time.Second
	defaultHealthRetries  = 3
)

// The values of restart.
const (
	restartAlways    = "always"
	restartOnFailure = "on-failure"
	restartNever     = "never"
)

// The conditions of depends_on.
const (
	depStarted   = "started"
	depReady     = "ready"
	depHealthy   = "healthy"
	depCompleted = "completed"
)

// depRef is one entry of depends_on: a job name as written (job, or
// session.job) and the condition it must hold.
type depRef struct {
	name, cond string
}

func (d depRef) String() string { return d.name + ":" + d.cond }

// parseDependsOn reads depends_on: NAME or NAME:CONDITION entries.
func parseDependsOn(list []string) ([]depRef, error) {
	var out []depRef
	seen := map[string]bool{}
	for _, e := range list {
		name, cond, has := strings.Cut(strings.TrimSpace(e), ":")
		name, cond = strings.TrimSpace(name), strings.TrimSpace(cond)
		if !has {
			cond = depReady
		}
		switch cond {
		case depStarted, depReady, depHealthy, depCompleted:
		default:
			return nil, errBadRequest("depends_on: %q: unknown condition %q (want started, ready, healthy or completed)", e, cond)
		}
		if err := ValidateName(name, "depends_on"); err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, errBadRequest("depends_on: %s is listed twice", name)
		}
		seen[name] = true
		out = append(out, depRef{name, cond})
	}
	return out, nil
}

// checkRestartWith checks the names of restart_with.
func checkRestartWith(c *JobConfig) error {
	for _, n := range c.RestartWith {
		if err := ValidateName(n, "restart_with"); err != nil {
			return err
		}
	}
	return nil
}

// checkReadySetting checks ready; log:REGEX needs the output.
func checkReadySetting(c *JobConfig) error {
	ps, err := parseProbe("ready", c.Ready, true)
	if err != nil {
		return err
	}
	if ps != nil && ps.kind == probeLog && (len(c.RedirectOutput) == 0 || c.Detach) {
		return errBadRequest("ready: log:REGEX reads the process's output: set redirect_output (and not detach)")
	}
	return nil
}

func positiveDelay(key string, d time.Duration) error {
	if d <= 0 {
		return errBadRequest("%s: must be > 0", key)
	}
	return nil
}

func checkRestartSetting(c *JobConfig) error {
	switch c.Restart {
	case restartAlways, restartOnFailure, restartNever:
		return nil
	}
	return errBadRequest("restart: expected always, on-failure or never, got %q", c.Restart)
}

func checkExitCodes(c *JobConfig) error {
	for _, n := range c.SuccessExitCodes {
		if n < 0 || n > 255 {
			return errBadRequest("success_exit_codes: an exit status is 0 to 255, got %d", n)
		}
	}
	return nil
}

func checkRestartDelay(c *JobConfig) error {
	lo, hi := c.RestartDelay[0], c.RestartDelay[1]
	switch {
	case lo < 0 || hi < 0:
		return errBadRequest("restart_delay: must be >= 0")
	case hi > 0 && lo == 0:
		return errBadRequest("restart_delay: MIN must be > 0 when MAX is given (it doubles from MIN)")
	case hi > 0 && hi < lo:
		return errBadRequest("restart_delay: MAX (%v) is below MIN (%v)", hi, lo)
	}
	return nil
}

// successCodes returns the exit statuses that are a success.
func (c *JobConfig) successCodes() []int {
	if len(c.SuccessExitCodes) == 0 {
		return []int{0}
	}
	return c.SuccessExitCodes
}

var (
	// intListKind is a list of integers: JSON a list, a number or a
	// comma-separated string; INI comma- or space-separated.
	intListKind = valueKind[[]int]{
		fromJSON: func(key string, v any) ([]int, error) {
			switch x := v.(type) {
			case nil:
				return nil, nil
			case string:
				l, err := parseIntList(x)
				if err != nil {
					return nil, errBadRequest("%s: %v", key, err)
				}
				return l, nil
			case []any:
				out := make([]int, 0, len(x))
				for i, e := range x {
					n, err := mapInt(fmt.Sprintf("%s[%d]", key, i), e)
					if err != nil {
						return nil, err
					}
					out = append(out, n)
				}
				return out, nil
			}
			n, err := mapInt(key, v)
			if err != nil {
				return nil, typeErr(key, "a list of integers", v)
			}
			return []int{n}, nil
		},
		fromText: func(s string, _ *cfgLoader) ([]int, error) { return parseIntList(s) },
		toJSON: func(v []int) any {
			if v == nil {
				return []int{}
			}
			return v
		},
		clone: func(v []int) []int { return append([]int(nil), v...) },
	}
	// delayRangeKind is MIN[, MAX] seconds: JSON a number, a list of one
	// or two numbers, or the INI text; written back as MIN alone when
	// there is no MAX, else [MIN, MAX].
	delayRangeKind = valueKind[[2]time.Duration]{
		fromJSON: func(key string, v any) ([2]time.Duration, error) {
			switch x := v.(type) {
			case string:
				r, err := parseDelayRange(x)
				if err != nil {
					return r, errBadRequest("%s: %v", key, err)
				}
				return r, nil
			case []any:
				var r [2]time.Duration
				if len(x) < 1 || len(x) > 2 {
					return r, errBadRequest("%s: expected [MIN] or [MIN, MAX], got %d values", key, len(x))
				}
				for i, e := range x {
					f, err := mapFloat(fmt.Sprintf("%s[%d]", key, i), e)
					if err != nil {
						return r, err
					}
					r[i] = secondsToDuration(f)
				}
				return r, nil
			}
			f, err := mapFloat(key, v)
			if err != nil {
				return [2]time.Duration{}, typeErr(key, "seconds or [MIN, MAX]", v)
			}
			return [2]time.Duration{secondsToDuration(f)}, nil
		},
		fromText: func(s string, _ *cfgLoader) ([2]time.Duration, error) { return parseDelayRange(s) },
		toJSON: func(r [2]time.Duration) any {
			if r[1] == 0 {
				return r[0].Seconds()
			}
			return []float64{r[0].Seconds(), r[1].Seconds()}
		},
	}
)

// parseIntList reads "0, 2 3".
func parseIntList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n > math.MaxInt32 || n < math.MinInt32 {
			return nil, fmt.Errorf("expected integers, got %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseDelayRange reads "MIN" or "MIN, MAX", each as cfgParseSeconds.
func parseDelayRange(s string) ([2]time.Duration, error) {
	var r [2]time.Duration
	parts := strings.FieldsFunc(s, func(c rune) bool { return c == ',' || c == ' ' || c == '\t' })
	if len(parts) < 1 || len(parts) > 2 {
		return r, errors.New("expected MIN or MIN, MAX (seconds)")
	}
	for i, p := range parts {
		d, err := cfgParseSeconds(p)
		if err != nil {
			return r, err
		}
		r[i] = d
	}
	return r, nil
}
