package gaffer

import "time"

// FlapVerdict is what the flapping rule decides after an unexpected exit.
type FlapVerdict int

const (
	// FlapOK means: respawn now.
	FlapOK FlapVerdict = iota
	// FlapRetry means: the job flaps; stop it and retry after RetryIn.
	FlapRetry
	// FlapGiveUp means: the job flapped MaxRetry times in a row; stop it
	// until someone starts it again.
	FlapGiveUp
)

// String names the verdict: ok, retry or give_up.
func (v FlapVerdict) String() string {
	switch v {
	case FlapRetry:
		return "retry"
	case FlapGiveUp:
		return "give_up"
	}
	return "ok"
}

// flapState is the crash-loop detector of one job, a pure state machine:
// time comes in as arguments, nothing here sleeps or spawns.
//
// The rule (SPEC.md, the reference's "stricter mode"): only unexpected
// exits are fed in. The last Attempts exit times are kept; when Attempts
// of them fall within Window seconds the job flaps, the history is
// cleared and one retry cycle is used. When MaxRetry cycles have been used
// the next flap gives up. The cycle count goes back to 0 only when a
// process stayed up longer than Window, so MaxRetry really bounds the
// number of retry cycles.
type flapState struct {
	cfg     FlapConfig
	history []time.Time
	retries int
}

func newFlapState(cfg FlapConfig) *flapState {
	return &flapState{cfg: cfg}
}

// exit records an unexpected exit at now of a process that had been up
// for uptime, and returns the verdict.
func (f *flapState) exit(now time.Time, uptime time.Duration) FlapVerdict {
	window := secondsToDuration(f.cfg.Window)
	if uptime > window {
		f.retries = 0
	}
	f.history = append(f.history, now)
	if n := len(f.history) - f.cfg.Attempts; n > 0 {
		f.history = append(f.history[:0], f.history[n:]...)
	}
	if len(f.history) < f.cfg.Attempts {
		return FlapOK
	}
	if f.history[len(f.history)-1].Sub(f.history[0]) > window {
		return FlapOK
	}
	f.history = f.history[:0]
	if f.retries < f.cfg.MaxRetry {
		f.retries++
		return FlapRetry
	}
	f.retries = 0
	return FlapGiveUp
}

// reset forgets the history (start_job, update, reload).
func (f *flapState) reset() {
	f.history = f.history[:0]
	f.retries = 0
}
