package gaffer

import (
	"math/rand/v2"
	"slices"
	"time"
)

// restartPolicy decides what follows the end of a kept-alive process that
// gaffer did not stop, a pure state machine like flapState: time and
// randomness come in as arguments, nothing here sleeps or spawns.
//
// The rule. A run is a failure when the process was killed by a signal,
// exited with a status not in success_exit_codes, or was ended by its
// lifecycle (not ready within ready_timeout, unhealthy, watchdog). It is
// replaced when restart is always, or on-failure and the run failed;
// never, it is not. The wait before the replacement is restart_delay's
// MIN; with a MAX, it is MIN·2^(n-1) for the n-th consecutive exit,
// capped at MAX, times a jitter of ±10 %; the count starts again when
// the process that ended had stayed up for MAX or more. Flapping
// (flapState) is the circuit breaker above it: it is consulted first.
type restartPolicy struct {
	mode     string
	success  []int
	min, max time.Duration
	streak   int // consecutive exits counted for the delay
}

func newRestartPolicy(cfg *JobConfig) restartPolicy {
	mode := cfg.Restart
	if mode == "" {
		mode = restartAlways
	}
	return restartPolicy{mode: mode, success: cfg.successCodes(), min: cfg.RestartDelay[0], max: cfg.RestartDelay[1]}
}

// restartVerdict is what follows one end.
type restartVerdict struct {
	failure bool          // the run failed
	respawn bool          // the process is replaced
	delay   time.Duration // after this wait
}

// ended records the end of a run: its exit status or signal (0: none),
// lifecycle the failure the lifecycle found ("" none), uptime how long
// the process lived. jitter is a number in [0, 1).
func (rp *restartPolicy) ended(status, signal int, lifecycle string, uptime time.Duration, jitter float64) restartVerdict {
	v := restartVerdict{failure: signal != 0 || lifecycle != "" || !slices.Contains(rp.success, status)}
	switch rp.mode {
	case restartAlways:
		v.respawn = true
	case restartOnFailure:
		v.respawn = v.failure
	}
	if !v.respawn {
		return v
	}
	if rp.max <= 0 {
		v.delay = rp.min
		return v
	}
	if uptime >= rp.max {
		rp.streak = 0
	}
	rp.streak++
	d := rp.min
	for i := 1; i < rp.streak && d < rp.max; i++ {
		d *= 2
	}
	d = min(d, rp.max)
	v.delay = time.Duration(float64(d) * (0.9 + 0.2*jitter))
	return v
}

// reset forgets the consecutive exits (start, restart, update).
func (rp *restartPolicy) reset() { rp.streak = 0 }

// restartJitter is the randomness of the delays.
func restartJitter() float64 { return rand.Float64() }
