package gaffer

// The bounds every job is held to, whatever path it comes by (the
// configuration file, the HTTP API, the control channel, the 0.4 routes,
// the state file): at most max_processes processes per job and a
// graceful_timeout of at most max_graceful_timeout. A value over a bound is
// refused with an error that names the setting and the bound; it is never
// clamped in silence.

import (
	"fmt"
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

// checkJob checks a job config against the bounds.
func (l jobLimits) checkJob(c *JobConfig) error {
	if err := l.checkProcesses("numprocesses", c.NumProcesses); err != nil {
		return err
	}
	return l.checkGraceful("graceful_timeout", c.GracefulTimeout)
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
