// Package testenv is the harness of the tests of the programs under cmd/:
// it builds the programs once per test binary and runs them as real
// processes, keeping their output for the log of a failed test, and has
// the small helpers those tests share (polling with a deadline, free
// ports, HTTP over a unix socket). Only tests import it.
package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StopTimeout is how long a program has to exit after SIGTERM when its
// test ends before it is killed.
const StopTimeout = 30 * time.Second

var (
	buildMu  sync.Mutex
	binDir   string
	binPaths = map[string]string{}
	binErrs  = map[string]error{}
)

// Main runs the tests of m and then removes the programs Binary built.
// Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	buildMu.Lock()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	buildMu.Unlock()
	os.Exit(code)
}

// Binary returns the path of the program cmd/<name> ("gafferd",
// "gaffer", "gafferctl", "gaffer_lookupd"), built with CGO_ENABLED=0
// once per test binary; a failed build fails t.
func Binary(t testing.TB, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if _, done := binPaths[name]; !done {
		binPaths[name], binErrs[name] = build(name)
	}
	if err := binErrs[name]; err != nil {
		t.Fatal(err)
	}
	return binPaths[name]
}

func build(name string) (string, error) {
	if binDir == "" {
		dir, err := os.MkdirTemp("", "gaffer-test-bin-")
		if err != nil {
			return "", err
		}
		binDir = dir
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	path := filepath.Join(binDir, name)
	cmd := exec.Command(goTool, "build", "-o", path, "github.com/gaffer-go/gaffer/cmd/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", name, err, out)
	}
	return path, nil
}

// Buffer collects the output of a program; it is safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Proc is a program started by a test.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Out  *Buffer       // its stdout and stderr, unless the caller set them
	Done chan struct{} // closed once it has exited
	Err  error         // what Wait returned, once Done is closed
	// Lenient: a program still running StopTimeout after SIGTERM at the
	// end of the test is killed without failing the test.
	Lenient bool
}

// Start starts cmd. When the test ends the program is stopped (Stop)
// and, if the test failed, the end of its output is logged.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{Name: name, Cmd: cmd, Out: &Buffer{}, Done: make(chan struct{})}
	if cmd.Stdout == nil && cmd.Stderr == nil {
		cmd.Stdout, cmd.Stderr = p.Out, p.Out
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.Err = cmd.Wait()
		close(p.Done)
	}()
	t.Cleanup(func() {
		p.Stop(t)
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", name, tail(p.Out.String(), 32<<10))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Exited reports whether the program has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.Done:
		return true
	default:
		return false
	}
}

// Code is the exit status, once the program has exited (-1 for a
// signal).
func (p *Proc) Code() int {
	<-p.Done
	return p.Cmd.ProcessState.ExitCode()
}

// Output is what the program has written so far.
func (p *Proc) Output() string { return p.Out.String() }

// Stop sends SIGCONT (in case it was frozen) and SIGTERM, and waits for
// the exit. After StopTimeout it kills the program (its process group when
// it leads one) and, unless Lenient, fails the test. It returns the exit
// status.
func (p *Proc) Stop(t testing.TB) int {
	if p.Exited() {
		return p.Code()
	}
	pid := p.Cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGCONT)
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-p.Done:
	case <-time.After(StopTimeout):
		if !p.Lenient {
			t.Errorf("%s did not stop within %v after SIGTERM; killing it", p.Name, StopTimeout)
		}
		if a := p.Cmd.SysProcAttr; a != nil && a.Setpgid {
			syscall.Kill(-pid, syscall.SIGKILL)
		} else {
			p.Cmd.Process.Kill()
		}
		<-p.Done
	}
	return p.Code()
}

// Lines starts cmd with its stdout read line by line into the channel
// (closed at the end of the output) and its stderr into the Buffer.
func Lines(t testing.TB, cmd *exec.Cmd) (<-chan string, *Buffer) {
	t.Helper()
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return lines, stderr
}

// Result is the outcome of a program run to its end.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs cmd to its end (with the Stdin the caller set, if any) and
// returns its output and exit status; a program that cannot be run fails
// t.
func Run(t testing.TB, cmd *exec.Cmd) Result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return Result{out.String(), errb.String(), code}
}

// WaitFor polls cond until it holds, failing t after d.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Eventually polls cond until it returns nil, failing t with its last
// error after d.
func Eventually(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %s: %v", d, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FreePort returns a TCP port free on 127.0.0.1 right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// UnixClient is an HTTP client that reaches a server through the unix
// socket at path, whatever the URL's host.
func UnixClient(path string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}
