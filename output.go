package gaffer

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"time"
)

// OutputSink receives the output of a job's processes, one chunk (one pipe
// read) at a time, from the pipe reader's goroutine. Log files are sinks.
type OutputSink interface {
	// writeFrom writes a chunk of output of writer src.
	writeFrom(src writerKey, p []byte)
	// endWriter says that writer src's output has ended.
	endWriter(src writerKey)
	// release says that no new writer will come from the job.
	release()
	Close() error
}

// jobSinks are a job's log files by output label.
type jobSinks map[string]OutputSink

// normalizeLogConfig makes a job that asks for log files redirect its
// output, so that there is something to write.
func normalizeLogConfig(cfg *JobConfig) {
	if len(cfg.RedirectOutput) == 0 && (cfg.Logfile != "" || cfg.StdoutLogfile != "" || cfg.StderrLogfile != "") {
		if cfg.Logfile != "" && cfg.StdoutLogfile == "" && cfg.StderrLogfile == "" {
			cfg.RedirectOutput = []string{"stdout", "stdout"}
		} else {
			cfg.RedirectOutput = []string{"stdout", "stderr"}
		}
	}
}

// openSinksLocked opens the log files of a job.
func (m *Manager) openSinksLocked(j *job) { m.setSinksLocked(j, nil) }

// reopenSinksLocked opens the log files of a job's new config: a file
// whose path and options did not change is kept (the processes of the old
// config and of the new one write to the same file), the others are
// released.
func (m *Manager) reopenSinksLocked(j *job) { m.setSinksLocked(j, j.sinks) }

func (m *Manager) setSinksLocked(j *job, old jobSinks) {
	opts := LogFileOptions{MaxBytes: j.cfg.LogfileMaxBytes, Backups: j.cfg.LogfileBackups, Timestamps: j.cfg.LogfileTimestamps}
	sinks := jobSinks{}
	kept := map[OutputSink]bool{}
	open := func(label, path string) {
		if path == "" || label == "" || sinks[label] != nil {
			return
		}
		for _, s := range old {
			if l, ok := s.(*LogFile); ok && l.path == path && l.opts == opts {
				l.reuse()
				sinks[label], kept[s] = s, true
				return
			}
		}
		s, err := newLogFile(path, opts, m.log.With("job", j.full))
		if err != nil {
			m.log.Error("cannot open log file; trying again at each write", "job", j.full, "path", path, "err", err)
		}
		sinks[label] = s
	}
	var outLabel, errLabel string
	if len(j.cfg.RedirectOutput) > 0 {
		outLabel = j.cfg.RedirectOutput[0]
		errLabel = outLabel
	}
	if len(j.cfg.RedirectOutput) > 1 {
		errLabel = j.cfg.RedirectOutput[1]
	}
	if j.cfg.Logfile != "" {
		open(outLabel, j.cfg.Logfile)
		if errLabel != outLabel {
			if s := sinks[outLabel]; s != nil {
				sinks[errLabel] = s
			}
		}
	}
	open(outLabel, j.cfg.StdoutLogfile)
	open(errLabel, j.cfg.StderrLogfile)
	releaseSinks(old, kept)
	if m.sinks == nil {
		m.sinks = map[string]map[string]OutputSink{}
	}
	m.sinks[j.full] = sinks
	j.sinks = sinks
}

// closeSinksLocked lets go of the log files of a job: each closes once the
// output of the processes still writing to it has ended.
func (m *Manager) closeSinksLocked(j *job) {
	releaseSinks(j.sinks, nil)
	j.sinks = nil
	delete(m.sinks, j.full)
}

// releaseSinks releases every sink of sinks but those kept.
func releaseSinks(sinks jobSinks, kept map[OutputSink]bool) {
	for _, s := range sinks {
		if !kept[s] {
			kept = mapSet(kept, s)
			s.release()
		}
	}
}

func mapSet(m map[OutputSink]bool, s OutputSink) map[OutputSink]bool {
	if m == nil {
		m = map[OutputSink]bool{}
	}
	m[s] = true
	return m
}

// outputFunc returns what a pipe reader of the job calls with each chunk.
// A log file or an Output hook that panics is isolated: the panic is
// logged with its stack (rate-limited) and the output keeps flowing to
// everything else, the ring buffer included.
func (m *Manager) outputFunc(j *job) func(p *Process, label string, data []byte) {
	sinks := j.sinks
	hook := m.opts.Output
	if len(sinks) == 0 && hook == nil {
		return nil
	}
	log := m.log.With("job", j.full)
	var sinkPanics, hookPanics panicLog
	return func(p *Process, label string, data []byte) {
		if s := sinks[label]; s != nil {
			func() {
				defer sinkPanics.recover(log, "a log file", "pid", p.ID, "stream", label)
				if data == nil {
					s.endWriter(writerKey{p.ID, label})
				} else {
					s.writeFrom(writerKey{p.ID, label}, data)
				}
			}()
		}
		if hook != nil && data != nil {
			func() {
				defer hookPanics.recover(log, "the output hook", "pid", p.ID, "stream", label)
				hook(p, label, data)
			}()
		}
	}
}

// panicLogInterval is the least time between two logged panics of one
// output consumer; those in between are counted.
const panicLogInterval = 10 * time.Second

// panicLog recovers the panics of one output consumer (a log file, an
// Output hook, the console) and logs them with their stack, at most once
// per panicLogInterval.
type panicLog struct {
	mu     sync.Mutex
	at     time.Time
	missed int
}

// relayPanics logs the panics of the readers' relays.
var relayPanics panicLog

// recover must be deferred directly: it stops a panic of what what names.
func (pl *panicLog) recover(log *slog.Logger, what string, attrs ...any) {
	if v := recover(); v != nil {
		pl.log(log, v, what, attrs...)
	}
}

// log logs the recovered panic v of what.
func (pl *panicLog) log(log *slog.Logger, v any, what string, attrs ...any) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	now := time.Now()
	if !pl.at.IsZero() && now.Sub(pl.at) < panicLogInterval {
		pl.missed++
		return
	}
	log.Error(what+" panicked; recovered, the output keeps flowing to the others",
		append(attrs, "panic", fmt.Sprint(v), "panics_not_logged", pl.missed, "stack", string(debug.Stack()))...)
	pl.at, pl.missed = now, 0
}

// ReopenLogs reopens every log file (after an external rotation; gafferd
// calls it on SIGUSR1).
func (m *Manager) ReopenLogs() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, sinks := range m.sinks {
		for _, s := range sinks {
			if r, ok := s.(interface{ Reopen() error }); ok {
				r.Reopen()
			}
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
