package gaffer

// The bounds every job is held to, whatever path it comes by (the
// configuration file, the HTTP API, the control channel, the 0.4 routes,
// the state file): at most max_processes processes per job and a
// graceful_timeout of at most max_graceful_timeout. A value over a bound is
// refused with an error that names the setting and the bound; it is never
// clamped in silence.

import (
	"fmt"
	"strconv"
	"time"
)

// DefaultMaxProcesses is the default of [gaffer] max_processes: the
// largest numprocesses (and scale target) of one job.
const DefaultMaxProcesses = 1024

// DefaultMaxGracefulTimeout is the default of [gaffer]
// max_graceful_timeout: the largest graceful_timeout of a job, so that a
// child that ignores SIGTERM cannot keep gafferd from stopping for long.
const DefaultMaxGracefulTimeout = time.Hour

// Ceilings of the limits themselves.
const (
	limMaxProcessesCeiling = 100000
	limMaxGracefulCeiling  = 30 * 24 * time.Hour
)

// cfgLimitKey reads [gaffer] max_processes (an integer from 1 to 100000)
// or max_graceful_timeout (seconds or a duration, from the default
// graceful_timeout, 30 s, to 720 h) into c.
func cfgLimitKey(c *Config, key, v string) error {
	if key == "max_processes" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > limMaxProcessesCeiling {
			return fmt.Errorf("expected an integer from 1 to %d, got %q", limMaxProcessesCeiling, v)
		}
		c.MaxProcesses = n
		return nil
	}
	d, err := cfgParseSeconds(v)
	if err != nil {
		return err
	}
	if d < DefaultGracefulTimeout || d > limMaxGracefulCeiling {
		return fmt.Errorf("expected from %s (the default graceful_timeout) to %s, got %q", limSeconds(DefaultGracefulTimeout), limSeconds(limMaxGracefulCeiling), v)
	}
	c.MaxGracefulTimeout = d
	return nil
}

// jobLimits are the bounds in force; zero fields take the defaults.
type jobLimits struct {
	maxProcesses int
	maxGraceful  time.Duration
}

// limits returns the bounds of a manager's options.
func (o Options) limits() jobLimits {
	l := jobLimits{maxProcesses: o.MaxProcesses, maxGraceful: o.MaxGracefulTimeout}
	if l.maxProcesses <= 0 {
		l.maxProcesses = DefaultMaxProcesses
	}
	if l.maxGraceful <= 0 {
		l.maxGraceful = DefaultMaxGracefulTimeout
	}
	return l
}

// checkJob checks a job config against the bounds (the rows of the
// table of job settings that have one).
func (l jobLimits) checkJob(c *JobConfig) error {
	for i := range jobSettings {
		if bound := jobSettings[i].bound; bound != nil {
			if err := bound(l, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkProcesses checks a number of processes of one job.
func (l jobLimits) checkProcesses(field string, n int) error {
	if n > l.maxProcesses {
		return Errorf(CodeBadValue, 400, "%s: %d processes is more than max_processes, the limit of %d per job ([gaffer] max_processes)", field, n, l.maxProcesses)
	}
	return nil
}

// checkGraceful checks a graceful timeout.
func (l jobLimits) checkGraceful(field string, d time.Duration) error {
	if d > l.maxGraceful {
		return Errorf(CodeBadValue, 400, "%s: %s is more than max_graceful_timeout, the limit of %s ([gaffer] max_graceful_timeout)", field, limSeconds(d), limSeconds(l.maxGraceful))
	}
	return nil
}

// validateJob is JobConfig.Validate plus the manager's bounds: what
// Manager.Load and Manager.Update check before anything changes.
func (m *Manager) validateJob(c *JobConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	return m.opts.limits().checkJob(c)
}

// limSeconds writes a duration as seconds ("3600s").
func limSeconds(d time.Duration) string {
	return fmt.Sprintf("%gs", d.Seconds())
}

// withinLimits checks the jobs to restore at start against the limits in
// force, which may be lower than when the state was saved. A saved version
// over them is not restored: a file job loads as the file says instead
// (the file was checked at load), a job of the API is left out; each is
// logged, and *unrestored is set so that the state file is copied before
// it is rewritten.
func (d *Daemon) withinLimits(jobs []RestoreJob, unrestored *bool) []RestoreJob {
	lim := d.Manager.opts.limits()
	out := make([]RestoreJob, 0, len(jobs))
	for _, rj := range jobs {
		err := lim.checkJob(&rj.Config)
		if err == nil {
			err = lim.checkProcesses("numprocesses", rj.Target)
		}
		if err == nil {
			out = append(out, rj)
			continue
		}
		*unrestored = true
		full := rj.FullName()
		for _, fj := range d.cfg.Jobs {
			if rj.Origin == OriginFile && fj.FullName() == full {
				d.log.Error("the saved version of a job is over the limits; it loads as the configuration file says", "job", full, "err", err)
				out = append(out, RestoreJob{Session: fj.Session, Config: fj.Config.Clone(), Target: fj.Config.NumProcesses,
					Start: fj.Config.Start, Origin: OriginFile})
				err = nil
				break
			}
		}
		if err != nil {
			d.log.Error("cannot restore job: over the limits", "job", full, "origin", rj.Origin, "err", err)
		}
	}
	return out
}

// checkReloadLimits checks the jobs of a configuration being reloaded
// against the limits in force before anything changes. The limits
// themselves are read when gafferd starts (the manager keeps them): a
// reload that changes them says so in the log, and its jobs are held to
// the limits in force until the next start.
func (d *Daemon) checkReloadLimits(cfg *Config) error {
	var lim jobLimits
	if d.Manager != nil {
		lim = d.Manager.opts.limits()
	} else { // not running yet: the limits it will start with
		lim = Options{MaxProcesses: d.cfg.MaxProcesses, MaxGracefulTimeout: d.cfg.MaxGracefulTimeout}.limits()
	}
	if cfg.MaxProcesses != lim.maxProcesses || cfg.MaxGracefulTimeout != lim.maxGraceful {
		d.log.Warn("max_processes and max_graceful_timeout changed in the configuration: they apply at the next start of gafferd",
			"max_processes", lim.maxProcesses, "max_graceful_timeout", lim.maxGraceful)
	}
	for _, sj := range cfg.Jobs {
		if err := lim.checkJob(&sj.Config); err != nil {
			return Errorf(CodeInvalidConfig, 400, "%s: job %s: %s (limits in force since gafferd started); nothing was changed", cfg.Path, sj.FullName(), AsError(err).Reason)
		}
	}
	return nil
}
