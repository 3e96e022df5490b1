package gaffer

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// readRotated returns the lines of path and its backups, oldest first.
func readRotated(t *testing.T, path string) ([]string, []int64) {
	t.Helper()
	files, _ := filepath.Glob(path + ".*")
	sort.Slice(files, func(i, j int) bool { // path.3 (oldest) … path.1
		a, _ := strconv.Atoi(filepath.Ext(files[i])[1:])
		b, _ := strconv.Atoi(filepath.Ext(files[j])[1:])
		return a > b
	})
	files = append(files, path)
	var lines []string
	var sizes []int64
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, int64(len(data)))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			t.Fatalf("%s ends inside a line", f)
		}
		lines = append(lines, strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")...)
	}
	return lines, sizes
}

func TestLogFileRotationKeepsEveryLineWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	const max = 4096
	l, err := OpenLogFile(path, LogFileOptions{MaxBytes: max, Backups: 100})
	if err != nil {
		t.Fatal(err)
	}
	// 10× maxbytes of numbered lines, written in chunks that cut lines
	// anywhere, from two writers whose chunks interleave.
	var a, b strings.Builder
	n := 0
	for a.Len()+b.Len() < 10*max {
		n++
		line := fmt.Sprintf("%06d %s\n", n, strings.Repeat("x", n%50))
		if n%2 == 0 {
			a.WriteString(line)
		} else {
			b.WriteString(line)
		}
	}
	sa, sb := a.String(), b.String()
	for i, j := 0, 0; i < len(sa) || j < len(sb); {
		ca, cb := min(len(sa)-i, 37), min(len(sb)-j, 53)
		l.WriteFrom(1, []byte(sa[i:i+ca]))
		l.WriteFrom(2, []byte(sb[j:j+cb]))
		i, j = i+ca, j+cb
	}
	l.EndWriter(1)
	l.EndWriter(2)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines, sizes := readRotated(t, path)
	if len(sizes) < 10 {
		t.Fatalf("only %d files for 10x maxbytes", len(sizes))
	}
	for i, sz := range sizes[:len(sizes)-1] {
		if sz > max+100 {
			t.Fatalf("file %d holds %d bytes, more than maxbytes and a line", i, sz)
		}
	}
	seen := map[int]bool{}
	for _, line := range lines {
		num, err := strconv.Atoi(line[:6])
		if err != nil || line != fmt.Sprintf("%06d %s", num, strings.Repeat("x", num%50)) {
			t.Fatalf("damaged line %q", line)
		}
		if seen[num] {
			t.Fatalf("line %d twice", num)
		}
		seen[num] = true
	}
	if len(seen) != n {
		t.Fatalf("%d lines of %d", len(seen), n)
	}
}

func TestLogFileBackupsBoundAndReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.log")
	l, err := OpenLogFile(path, LogFileOptions{MaxBytes: 100, Backups: 2, Timestamps: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 50; i++ {
		l.Write([]byte(fmt.Sprintf("line %d\n", i)))
	}
	files, _ := filepath.Glob(path + "*")
	if len(files) != 3 {
		t.Fatalf("files %v, want the log and 2 backups", files)
	}
	data, _ := os.ReadFile(path)
	first := strings.SplitN(string(data), "\n", 2)[0]
	ts, rest, _ := strings.Cut(first, " ")
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasPrefix(rest, "line ") {
		t.Fatalf("timestamped line %q", first)
	}
	// An external rotation (mv) then Reopen: new lines go to a new file.
	os.Rename(path, path+".moved")
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("after reopen\n"))
	data, err = os.ReadFile(path)
	if err != nil || !strings.HasSuffix(string(data), "after reopen\n") {
		t.Fatalf("after reopen: %q %v", data, err)
	}
}

func TestJobLogfileThroughManager(t *testing.T) {
	m := newTestManager(t)
	path := filepath.Join(t.TempDir(), "job.log")
	cfg := childConfig(t, "lg", "lines", map[string]string{"LINES": "20000", "THEN_SLEEP": "1"})
	cfg.Logfile = path
	cfg.LogfileMaxBytes = 64 << 10
	cfg.LogfileBackups = 100
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	// The output is complete once the last line is in the current file
	// (reading while a rotation renames files could see a file missing).
	waitFor(t, 10*time.Second, "all lines in the log files", func() bool {
		data, err := os.ReadFile(path)
		return err == nil && strings.HasSuffix(string(data), "00020000 line\n")
	})
	lines, _ := readRotated(t, path)
	for i, line := range lines {
		if line != fmt.Sprintf("%08d line", i+1) {
			t.Fatalf("line %d is %q", i+1, line)
		}
	}
}

// TestLogfileKeepsStdoutAndStderrApart: one logfile takes both streams;
// a partial stdout line is not finished by a stderr line (issue 12).
func TestLogfileKeepsStdoutAndStderrApart(t *testing.T) {
	m := newTestManager(t)
	path := filepath.Join(t.TempDir(), "both.log")
	cfg := NewJobConfig("both", `sh -c 'printf out-start; sleep 0.3; echo err-line >&2; sleep 0.3; echo out-end; exec sleep 300'`)
	cfg.RedirectOutput = []string{"stdout", "stderr"}
	cfg.Logfile = path
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "both lines in the log file", func() bool {
		data, _ := os.ReadFile(path)
		return strings.Count(string(data), "\n") >= 2
	})
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	sort.Strings(lines)
	if strings.Join(lines, "|") != "err-line|out-startout-end" {
		t.Fatalf("log file %q: want the lines err-line and out-startout-end", data)
	}
}

// TestLogfileKeepsOutputOfStoppingProcesses: what a process prints while
// it stops after an update or an unload of its job reaches the log file
// (the file used to be closed before the processes were stopped).
func TestLogfileKeepsOutputOfStoppingProcesses(t *testing.T) {
	m := newTestManager(t)
	dir := t.TempDir()
	job := func(name, path string) JobConfig {
		cfg := NewJobConfig(name, `sh -c 'trap "echo stopping-$GEN; exit 0" TERM; echo started-$GEN; while :; do sleep 0.05; done'`)
		cfg.Env = map[string]string{"GEN": "1"}
		cfg.Logfile = path
		return cfg
	}
	contains := func(path, s string) func() bool {
		return func() bool {
			data, _ := os.ReadFile(path)
			return strings.Contains(string(data), s)
		}
	}
	// Update: the old process's last line, then the new one's first.
	up := filepath.Join(dir, "update.log")
	if err := m.Load("default", job("up", up), nil, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the first process's start", contains(up, "started-1\n"))
	cfg := job("up", up)
	cfg.Env["GEN"] = "2"
	if err := m.Update("default", cfg, nil, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the second process's start", contains(up, "started-2\n"))
	waitFor(t, 10*time.Second, "the first process's last line", contains(up, "stopping-1\n"))
	// Unload: the last line is kept and the file is closed after it.
	un := filepath.Join(dir, "unload.log")
	if err := m.Load("default", job("un", un), nil, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the process's start", contains(un, "started-1\n"))
	procs, _ := m.JobProcesses("default.un")
	if err := m.Unload("default.un"); err != nil {
		t.Fatal(err)
	}
	<-procs[0].IODone()
	waitFor(t, 10*time.Second, "the last line after the unload", contains(un, "stopping-1\n"))
	if n := openFDsTo(un); n != 0 {
		t.Fatalf("%d descriptors still open on the log file of an unloaded job", n)
	}
}

// openFDsTo counts this process's descriptors open on path.
func openFDsTo(path string) int {
	fds, _ := os.ReadDir("/proc/self/fd")
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && target == path {
			n++
		}
	}
	return n
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogFileRecoversFromARemovedDirectory: the log directory is removed
// under a running writer and cannot be created again for a while; the
// failure is logged once (not once per line), and once the directory can
// be created again the next lines arrive in a new file.
func TestLogFileRecoversFromARemovedDirectory(t *testing.T) {
	defer func(d time.Duration) { logFileErrorInterval = d }(logFileErrorInterval)
	logFileErrorInterval = time.Hour
	var logged syncBuffer
	dir := filepath.Join(t.TempDir(), "logs")
	path := filepath.Join(dir, "app.log")
	l, err := newLogFile(path, LogFileOptions{}, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.writeFrom(writerKey{1, "stdout"}, []byte("before\n"))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	// A file where the directory was: it cannot be created again.
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	i := 0
	waitFor(t, 10*time.Second, "the failure to be noticed", func() bool {
		i++
		l.writeFrom(writerKey{1, "stdout"}, fmt.Appendf(nil, "lost %d\n", i))
		time.Sleep(5 * time.Millisecond)
		return strings.Contains(logged.String(), "cannot open")
	})
	for j := 0; j < 100; j++ {
		l.writeFrom(writerKey{1, "stdout"}, fmt.Appendf(nil, "lost again %d\n", j))
	}
	if n := strings.Count(logged.String(), "level=ERROR"); n != 1 {
		t.Fatalf("%d error lines for one failure, want 1:\n%s", n, logged.String())
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	l.writeFrom(writerKey{1, "stdout"}, []byte("after\n"))
	data, err := os.ReadFile(path)
	if err != nil || string(data) != "after\n" {
		t.Fatalf("new log file: %q, %v", data, err)
	}
	if !strings.Contains(logged.String(), "writable again") || !strings.Contains(logged.String(), "errors_not_logged=100") {
		t.Fatalf("recovery not logged with the count of errors:\n%s", logged.String())
	}
}

// TestLogFileWriteErrorsAreLoggedOnce: a full disk (/dev/full answers
// every write with ENOSPC) gives one error line with the count of the
// errors that followed, not one per line.
func TestLogFileWriteErrorsAreLoggedOnce(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	defer func(d time.Duration) { logFileErrorInterval = d }(logFileErrorInterval)
	logFileErrorInterval = time.Hour
	var logged syncBuffer
	l, err := newLogFile("/dev/full", LogFileOptions{}, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		l.writeFrom(writerKey{1, "stdout"}, []byte("a line\n"))
	}
	l.Close()
	out := logged.String()
	if strings.Count(out, "level=ERROR") != 1 || !strings.Contains(out, "no space left on device") {
		t.Fatalf("want one error line for 50 failed writes:\n%s", out)
	}
}
