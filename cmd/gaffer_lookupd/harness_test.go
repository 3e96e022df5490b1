package main

// Test harness: the real gafferd and gaffer_lookupd binaries, built once,
// run as child processes (optionally inside a network namespace with
// `ip netns exec`) and queried over unix sockets, which cross network
// namespaces.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer/cmd/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// binaries returns the paths of gafferd and gaffer_lookupd, built once.
func binaries(t *testing.T) (gafferd, lookupd string) {
	t.Helper()
	return testenv.Binary(t, "gafferd"), testenv.Binary(t, "gaffer_lookupd")
}

// child is one running program.
type child = testenv.Proc

// startChild runs bin with args, inside network namespace ns when not
// empty, in a process group of its own. It is stopped (SIGTERM, then
// SIGKILL to its process group) when the test ends; its output is logged
// if the test failed.
func startChild(t *testing.T, name, ns, bin string, args ...string) *child {
	t.Helper()
	var cmd *exec.Cmd
	if ns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return testenv.Start(t, name, cmd)
}

// unixClient is an HTTP client that reaches a server through its unix
// socket.
func unixClient(path string) *http.Client { return testenv.UnixClient(path, 5*time.Second) }

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

var eventually = testenv.Eventually
