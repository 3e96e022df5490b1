package gaffer

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// LogFileOptions configures a LogFile.
type LogFileOptions struct {
	MaxBytes   int64 // rotate when the file reaches this size (at a line boundary); 0 = never
	Backups    int   // rotated files kept: path.1 … path.N
	Timestamps bool  // prefix each line with an RFC 3339 timestamp
}

// LogFile is a job's output file with size-based rotation. Output comes
// from several processes at once; each writer's lines are kept whole: a
// partial last line is held back until its end arrives (or the writer
// ends), so lines of two processes never mix and no line is split across
// a rotation. A LogFile is safe for concurrent use.
type LogFile struct {
	mu   sync.Mutex
	path string
	opts LogFileOptions
	f    *os.File // nil while not open
	size int64
	// partial has an entry for every writer whose output has not ended:
	// the bytes of its unfinished line (often none).
	partial  map[writerKey][]byte
	buf      []byte
	released bool // the job let go: the file closes when its last writer ends
	closed   bool // Close was called: nothing more is written

	// Failures: logged at most once per logFileErrorInterval, then opened
	// again at the next write, so that a full disk or a removed directory
	// recovers by itself.
	log       *slog.Logger
	opened    os.FileInfo // of the open file, to see it removed or replaced
	checkedAt time.Time   // last comparison of path with the open file
	errAt     time.Time   // last error logged
	errs      int         // errors since then, not logged
	lost      int64       // bytes not written since the last success
}

// logFileErrorInterval is the least time between two error lines of one
// log file; logFileCheckInterval the time between two checks that the
// file written is still the one at its path. Variables for the tests.
var (
	logFileErrorInterval = 10 * time.Second
	logFileCheckInterval = time.Second
)

// writerKey names one writer of a log file: one output stream of one
// process. stdout and stderr of a process are two writers, so that a
// partial line of one is never finished by the other.
type writerKey struct {
	pid   int
	label string
}

// maxPartial bounds the unfinished line held per writer; a longer line is
// written in pieces.
const maxPartial = 64 << 10

// OpenLogFile opens (appends to) the log file at path, creating its
// directory when needed.
func OpenLogFile(path string, opts LogFileOptions) (*LogFile, error) {
	l, err := newLogFile(path, opts, nil)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// newLogFile returns a log file at path that logs its errors to log, and
// the error of its first open: it is tried again at the first write.
func newLogFile(path string, opts LogFileOptions, log *slog.Logger) (*LogFile, error) {
	if log == nil {
		log = slog.Default()
	}
	l := &LogFile{path: path, opts: opts, partial: map[writerKey][]byte{}, log: log}
	err := l.open()
	if err != nil {
		l.errAt = time.Now()
	}
	return l, err
}

func (l *LogFile) open() error {
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size, l.opened, l.checkedAt = f, st.Size(), st, time.Now()
	return nil
}

// fail records a failure to op the file; the data of the write is lost.
func (l *LogFile) fail(op string, err error, lost int) {
	l.closeFile()
	l.lost += int64(lost)
	now := time.Now()
	if !l.errAt.IsZero() && now.Sub(l.errAt) < logFileErrorInterval {
		l.errs++
		return
	}
	l.log.Error("log file: cannot "+op+"; output is lost until it works again (tried at every write)",
		"path", l.path, "err", err, "errors_not_logged", l.errs, "bytes_lost", l.lost)
	l.errAt, l.errs = now, 0
}

// ensureOpen opens the file when it is not open, and opens it again when
// the path no longer leads to it (its directory or itself removed or
// replaced); it reports whether the file is open.
func (l *LogFile) ensureOpen(n int) bool {
	if l.f != nil && time.Since(l.checkedAt) >= logFileCheckInterval {
		l.checkedAt = time.Now()
		if st, err := os.Stat(l.path); err != nil || !os.SameFile(st, l.opened) {
			l.closeFile()
		}
	}
	if l.f != nil {
		return true
	}
	if err := l.open(); err != nil {
		l.fail("open it", err, n)
		return false
	}
	return true
}

// Write writes p as output of an anonymous writer (writer 0).
func (l *LogFile) Write(p []byte) (int, error) {
	l.WriteFrom(0, p)
	return len(p), nil
}

// WriteFrom writes the complete lines of p from writer src, holding back
// an unfinished last line.
func (l *LogFile) WriteFrom(src int, p []byte) { l.writeFrom(writerKey{pid: src}, p) }

// EndWriter flushes what writer src held back (its output ended).
func (l *LogFile) EndWriter(src int) { l.endWriter(writerKey{pid: src}) }

func (l *LogFile) writeFrom(src writerKey, p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	held := l.partial[src]
	nl := bytes.LastIndexByte(p, '\n')
	if nl < 0 {
		if len(held)+len(p) <= maxPartial {
			l.partial[src] = append(held, p...)
			return
		}
		// An over-long line: write it out as it is.
		l.partial[src] = nil
		l.writeLines(append(held, p...))
		return
	}
	l.partial[src] = nil // a live writer, holding nothing
	if len(held) > 0 {
		// Finish the held line first, as one piece, so that a rotation
		// cannot fall inside it.
		i := bytes.IndexByte(p, '\n')
		l.writeLines(append(held, p[:i+1]...))
		p, nl = p[i+1:], nl-(i+1)
	}
	if nl >= 0 {
		l.writeLines(p[:nl+1])
	}
	if rest := p[nl+1:]; len(rest) > 0 {
		l.partial[src] = append([]byte(nil), rest...)
	}
}

func (l *LogFile) endWriter(src writerKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if held := l.partial[src]; len(held) > 0 && !l.closed {
		l.writeLines(held)
	}
	delete(l.partial, src)
	if l.released && len(l.partial) == 0 {
		l.closeFile()
	}
}

// release says that the job no longer writes new processes' output here:
// the file is closed as soon as every writer still running has ended (a
// process stopping after an update or an unload prints its last lines
// into it). A writer that starts later opens it again for its output.
func (l *LogFile) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.released = true
	if len(l.partial) == 0 {
		l.closeFile()
	}
}

// reuse takes a released file back (an update that keeps its path).
func (l *LogFile) reuse() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.released = false
}

func (l *LogFile) closeFile() {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// writeLines writes data that starts at a line boundary, rotating between
// lines when the file is full.
func (l *LogFile) writeLines(data []byte) {
	for len(data) > 0 {
		if l.opts.MaxBytes > 0 && l.size >= l.opts.MaxBytes {
			l.rotate()
		}
		n := len(data)
		if l.opts.MaxBytes > 0 {
			room := l.opts.MaxBytes - l.size
			cut := -1
			if room > 0 && room < int64(len(data)) {
				cut = bytes.LastIndexByte(data[:room], '\n')
			}
			if cut >= 0 {
				n = cut + 1
			} else if room < int64(len(data)) {
				// No whole line fits: write one line, the file goes a line over.
				if i := bytes.IndexByte(data, '\n'); i >= 0 {
					n = i + 1
				}
			}
		}
		l.write(data[:n])
		data = data[n:]
	}
}

func (l *LogFile) write(data []byte) {
	if !l.ensureOpen(len(data)) {
		return
	}
	if l.opts.Timestamps {
		l.buf = l.buf[:0]
		ts := time.Now().Format(time.RFC3339Nano)
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			line := data
			if i >= 0 {
				line = data[:i+1]
			}
			l.buf = append(l.buf, ts...)
			l.buf = append(l.buf, ' ')
			l.buf = append(l.buf, line...)
			data = data[len(line):]
		}
		data = l.buf
	}
	n, err := l.f.Write(data)
	l.size += int64(n)
	switch {
	case err != nil:
		l.fail("write to it", err, len(data)-n)
	case !l.errAt.IsZero():
		l.log.Warn("log file: writable again", "path", l.path, "errors_not_logged", l.errs, "bytes_lost", l.lost)
		l.errAt, l.errs, l.lost = time.Time{}, 0, 0
	}
}

// rotate renames path → path.1 → … → path.N and opens a new file.
func (l *LogFile) rotate() {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	check := func(err error) {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			l.fail("rotate it", err, 0)
		}
	}
	if l.opts.Backups <= 0 {
		check(os.Remove(l.path))
	} else {
		check(os.Remove(fmt.Sprintf("%s.%d", l.path, l.opts.Backups)))
		for i := l.opts.Backups - 1; i >= 1; i-- {
			check(os.Rename(fmt.Sprintf("%s.%d", l.path, i), fmt.Sprintf("%s.%d", l.path, i+1)))
		}
		check(os.Rename(l.path, l.path+".1"))
	}
	l.ensureOpen(0)
}

// Reopen closes and reopens the file (after an external rotation). A file
// that is not open stays closed: the next write opens it.
func (l *LogFile) Reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.f == nil {
		return nil
	}
	l.closeFile()
	return l.open()
}

// Close flushes what writers held back and closes the file.
func (l *LogFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	for src, held := range l.partial {
		if len(held) > 0 {
			l.writeLines(held)
		}
		delete(l.partial, src)
	}
	l.closed = true
	if l.f != nil {
		return l.f.Close()
	}
	return nil
}
