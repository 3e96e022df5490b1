package main

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// journalDaemon runs gafferd with its stderr on a pipe of the test's, env
// added, and returns a function that waits for a line of stderr matching
// re (and all the lines so far).
type journalRun struct {
	t     *testing.T
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func startJournalDaemon(t *testing.T, dir string, env func(stderr *os.File) []string, args ...string) *journalRun {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gafferdBinary(t), append([]string{"-c", filepath.Join(dir, "gaffer.ini")}, args...)...)
	cmd.Env = append(os.Environ(), env(w)...)
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	jr := &journalRun{t: t, cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			jr.mu.Lock()
			jr.lines = append(jr.lines, sc.Text())
			jr.mu.Unlock()
		}
		r.Close()
		close(jr.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-jr.done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
		cmd.Wait()
	})
	return jr
}

// waitLine waits for a stderr line matching re and returns it.
func (jr *journalRun) waitLine(re string) string {
	jr.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(20 * time.Second)
	for {
		jr.mu.Lock()
		for _, l := range jr.lines {
			if rx.MatchString(l) {
				jr.mu.Unlock()
				return l
			}
		}
		all := strings.Join(jr.lines, "\n")
		jr.mu.Unlock()
		if time.Now().After(deadline) {
			jr.t.Fatalf("no stderr line matches %s:\n%s", re, all)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (jr *journalRun) all() []string {
	jr.mu.Lock()
	defer jr.mu.Unlock()
	return append([]string(nil), jr.lines...)
}

// journalConfig has a warning (an endpoint that is not listed) and a job.
const journalConfig = `[gaffer]
http_endpoints = sock
[endpoint:sock]
bind = unix:%SOCK%
[endpoint:unused]
bind = 127.0.0.1:0
[process:web]
cmd = sleep 300
`

func writeJournalConfig(t *testing.T) string {
	dir := t.TempDir()
	cfg := strings.ReplaceAll(journalConfig, "%SOCK%", filepath.Join(dir, "g.sock"))
	if err := os.WriteFile(filepath.Join(dir, "gaffer.ini"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pipeStream is what systemd puts in $JOURNAL_STREAM for a stream: its
// device and inode.
func pipeStream(t *testing.T, f *os.File) string {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", uint64(st.Dev), uint64(st.Ino))
}

// TestJournalLogFormat: with $JOURNAL_STREAM naming gafferd's stderr (as
// systemd sets it), every line starts with its sd-daemon priority and has
// no timestamp of gafferd's: <4> for a config warning, <6> for info, <3>
// for a failed reload.
func TestJournalLogFormat(t *testing.T) {
	dir := writeJournalConfig(t)
	jr := startJournalDaemon(t, dir, func(w *os.File) []string { return []string{"JOURNAL_STREAM=" + pipeStream(t, w)} })
	warn := jr.waitLine(`not listed in \[gaffer\] http_endpoints`)
	info := jr.waitLine(`listening`)
	// A broken configuration and SIGHUP: the reload fails, an error.
	if err := os.WriteFile(filepath.Join(dir, "gaffer.ini"), []byte("[process:x]\nnumprocesses = many\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	jr.cmd.Process.Signal(syscall.SIGHUP)
	errLine := jr.waitLine(`reload failed`)
	for line, prefix := range map[string]string{warn: "<4>config: ", info: "<6>listening ", errLine: "<3>reload failed"} {
		if !strings.HasPrefix(line, prefix) {
			t.Errorf("line %q does not start with %q", line, prefix)
		}
	}
	for _, l := range jr.all() {
		if !regexp.MustCompile(`^<[3467]>`).MatchString(l) {
			t.Errorf("line without a priority prefix: %q", l)
		}
		if strings.Contains(l, "time=") || regexp.MustCompile(`\d\d:\d\d:\d\d`).MatchString(l) {
			t.Errorf("line with a timestamp of gafferd's: %q", l)
		}
	}
	if !strings.Contains(info, "endpoint=sock") {
		t.Errorf("the attributes are lost: %q", info)
	}
}

// TestJournalLogFormatOnlyOnTheJournal: a $JOURNAL_STREAM inherited by a
// gafferd whose stderr is something else keeps today's format; and
// --log-format journal asks for the journal format anywhere.
func TestJournalLogFormatOnlyOnTheJournal(t *testing.T) {
	dir := writeJournalConfig(t)
	jr := startJournalDaemon(t, dir, func(*os.File) []string { return []string{"JOURNAL_STREAM=1:2"} })
	if l := jr.waitLine(`listening`); !strings.HasPrefix(l, "time=") || !strings.Contains(l, "level=INFO") {
		t.Errorf("not on the journal, the line is %q: want today's format", l)
	}

	dir = writeJournalConfig(t)
	jr = startJournalDaemon(t, dir, func(*os.File) []string { return []string{"JOURNAL_STREAM="} }, "--log-format", "journal")
	if l := jr.waitLine(`listening`); !strings.HasPrefix(l, "<6>listening ") {
		t.Errorf("--log-format journal: %q", l)
	}

	// The same from the file: [gaffer] log_format = journal.
	dir = writeJournalConfig(t)
	ini := filepath.Join(dir, "gaffer.ini")
	b, err := os.ReadFile(ini)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ini, []byte(strings.Replace(string(b), "[gaffer]\n", "[gaffer]\nlog_format = journal\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	jr = startJournalDaemon(t, dir, func(*os.File) []string { return []string{"JOURNAL_STREAM="} })
	if l := jr.waitLine(`listening`); !strings.HasPrefix(l, "<6>listening ") {
		t.Errorf("log_format = journal: %q", l)
	}
}

func TestJournalHandlerLevelsAndEscapes(t *testing.T) {
	var buf bytes.Buffer
	lg := slog.New(newJournalHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	lg.Debug("d", "k", 1)
	lg.Info("two\nlines", "k", "a b")
	lg.With("job", "default.web").WithGroup("g").Warn("w", "x", 2)
	lg.Error("e")
	want := "<7>d k=1\n<6>two\\nlines k=\"a b\"\n<4>w job=default.web g.x=2\n<3>e\n"
	if buf.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", buf.String(), want)
	}
}
