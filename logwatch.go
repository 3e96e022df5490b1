package gaffer

// ready = log:REGEX: a process is ready once a line of its output (any
// of its redirect_output streams) matches. The watcher sits in the
// output path of the pipe readers only until it matched or the process
// stopped; a line is matched on its first logLineMax bytes, and lines are
// kept apart per stream, so that stdout and stderr never splice.

import (
	"regexp"
	"sync"
)

// logLineMax bounds the part of a line the watcher keeps.
const logLineMax = 4096

type logWatch struct {
	re      *regexp.Regexp
	mu      sync.Mutex
	partial map[string][]byte // per stream label: the line so far
	matched bool
	done    bool   // matched or detached: no more matching
	onMatch func() // set once the process registered
}

func newLogWatch(re *regexp.Regexp) *logWatch {
	return &logWatch{re: re, partial: map[string][]byte{}}
}

// wrap returns the output function of a spawn with the watcher in front
// of next (which may be nil).
func (w *logWatch) wrap(next func(p *Process, label string, data []byte)) func(p *Process, label string, data []byte) {
	return func(p *Process, label string, data []byte) {
		if data != nil {
			w.feed(label, data)
		}
		if next != nil {
			next(p, label, data)
		}
	}
}

// feed looks for a matching line in a chunk of output.
func (w *logWatch) feed(label string, data []byte) {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return
	}
	line := w.partial[label]
	hit := false
	for _, c := range data {
		if c == '\n' {
			if w.re.Match(line) {
				hit = true
				break
			}
			line = line[:0]
			continue
		}
		if len(line) < logLineMax {
			line = append(line, c)
		}
	}
	if !hit && len(line) > 0 && w.re.Match(line) {
		hit = true // a prompt without its newline ("listening… ")
	}
	w.partial[label] = line
	var cb func()
	if hit {
		w.matched, w.done, w.partial = true, true, nil
		cb = w.onMatch
	}
	w.mu.Unlock()
	if cb != nil {
		cb()
	}
}

// attach sets the callback of a match; it reports a match that came
// before (the line was printed before the process registered).
func (w *logWatch) attach(cb func()) (matched bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.matched {
		return true
	}
	w.onMatch = cb
	return false
}

// detach stops the matching.
func (w *logWatch) detach() {
	w.mu.Lock()
	w.done, w.onMatch, w.partial = true, nil, nil
	w.mu.Unlock()
}
