package main

// Test harness: the real gafferd and gaffer_lookupd binaries, built once,
// run as child processes (optionally inside a network namespace with
// `ip netns exec`) and queried over unix sockets, which cross network
// namespaces.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds gafferd, gaffer_lookupd and gaffer once and returns the
// paths of the first two (the third is gaffer in the same directory).
func binaries(t *testing.T) (gafferd, lookupd string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "gaffer-lookupd-test-")
		if buildErr != nil {
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		cmd := exec.Command(goTool, "build", "-o", binDir+string(os.PathSeparator),
			"github.com/gaffer-go/gaffer/cmd/gafferd", "github.com/gaffer-go/gaffer/cmd/gaffer_lookupd", "github.com/gaffer-go/gaffer/cmd/gaffer")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "gafferd"), filepath.Join(binDir, "gaffer_lookupd")
}

// syncBuffer collects a child's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// child is one running program.
type child struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	code int
}

// startChild runs bin with args, inside network namespace ns when not
// empty. It is stopped (SIGTERM, then SIGKILL to its process group) when
// the test ends; its output is logged if the test failed.
func startChild(t *testing.T, name, ns, bin string, args ...string) *child {
	t.Helper()
	var cmd *exec.Cmd
	if ns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	c := &child{name: name, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		cmd.Wait()
		c.code = cmd.ProcessState.ExitCode()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.stop(t)
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", name, tail(c.out.String(), 4000))
		}
	})
	return c
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// stop sends SIGTERM (after SIGCONT, in case it was frozen) and waits for
// the exit; after 20 s the process group is killed. It returns the exit
// code.
func (c *child) stop(t *testing.T) int {
	select {
	case <-c.done:
		return c.code
	default:
	}
	pid := c.cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGCONT)
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not stop on SIGTERM; killing its process group", c.name)
		syscall.Kill(-pid, syscall.SIGKILL)
		<-c.done
	}
	return c.code
}

// unixClient is an HTTP client that reaches a server through its unix
// socket.
func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// call does one request and decodes the JSON answer into out.
func call(c *http.Client, method, path, body string, out any) error {
	req, err := http.NewRequest(method, "http://unix"+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: %v in %q", method, path, err, data)
	}
	return nil
}

// eventually polls cond until it returns nil or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() error) {
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
