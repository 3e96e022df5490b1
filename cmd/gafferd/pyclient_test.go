package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests drive gafferd with the original gaffer 0.5.2 Python client
// (gaffer.httpclient and its websocket channels) and run 0.5.2's own
// client tests against it. The 0.5.2 source and its dependencies
// (tornado 2.4.1, pyuv) are not in any registry this project's CI
// reaches, so the tests skip unless GAFFER_PY_SRC points at them:
// test/python/README.md says how to prepare them.

// pyClientPython returns the interpreter to use and the environment for
// the scripts under test/python, or skips the test saying what is missing.
func pyClientPython(t *testing.T) (string, []string) {
	t.Helper()
	if os.Getenv("GAFFER_PY_SRC") == "" {
		t.Skip("GAFFER_PY_SRC is not set: the original gaffer 0.5.2 client is needed (see test/python/README.md)")
	}
	py := os.Getenv("GAFFER_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
		if _, err := os.Stat(py); err != nil {
			if py, err = exec.LookPath("python3"); err != nil {
				t.Skip("python3 is not installed")
			}
		}
	}
	dir, err := filepath.Abs("../../test/python")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PYTHONPATH="+dir, "PYTHONDONTWRITEBYTECODE=1")
	cmd := exec.Command(py, "-c", "import gaffer052; print(gaffer052.missing() or '')")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("%s cannot load test/python/gaffer052.py: %v\n%s", py, err, out)
	}
	if why := strings.TrimSpace(string(out)); why != "" {
		t.Skip(why)
	}
	return py, env
}

// pyCommand runs a Python script in its own process group (so gafferds it
// starts die with it) with a deadline.
func pyCommand(t *testing.T, timeout time.Duration, py string, env []string, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, py, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// TestPyClient052 runs test/python/client_check.py, which exercises the
// original client against a gafferd on a loopback port; each of its checks
// is a subtest.
func TestPyClient052(t *testing.T) {
	py, env := pyClientPython(t)
	port := tlsFreePort(t)
	startDaemon(t, t.TempDir(), "[gaffer]\nhttp_endpoints = sock, tcp\n[endpoint:sock]\nbind = unix:%SOCK%\n"+
		"[endpoint:tcp]\nbind = 127.0.0.1:"+port+"\n")
	cmd := pyCommand(t, 5*time.Minute, py, env, "../../test/python/client_check.py", "http://127.0.0.1:"+port)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		var line struct {
			Check  string `json:"check"`
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
			Done   bool   `json:"done"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Errorf("client_check.py printed a line that is not JSON: %q", sc.Text())
			continue
		}
		if line.Done {
			done = true
			continue
		}
		t.Run(line.Check, func(t *testing.T) {
			if !line.OK {
				t.Error(line.Detail)
			}
		})
	}
	if err := cmd.Wait(); err != nil || !done {
		t.Errorf("client_check.py did not finish (%v)\nstderr:\n%s", err, stderr.String())
	}
}

// pytestResult matches pytest's -rA summary lines.
var pytestResult = regexp.MustCompile(`^(PASSED|FAILED|ERROR|SKIPPED) (\S+)(?: - (.*))?$`)

// TestPyClient052OriginalSuite runs 0.5.2's own client tests
// (test_http.py, test_webchannel.py, test_pid_channel.py) unchanged, with
// test/python/gafferd_manager.py standing in for the in-process manager:
// Manager.start runs this gafferd. Each 0.5.2 test is a subtest.
func TestPyClient052OriginalSuite(t *testing.T) {
	py, env := pyClientPython(t)
	probe := exec.Command(py, "-c", "import pytest")
	probe.Env = env
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("pytest is not installed for %s (apt python3-pytest): %s", py, out)
	}
	suite := filepath.Join(os.Getenv("GAFFER_PY_SRC"), "test")
	env = append(env, "GAFFERD_BIN="+gafferdBinary(t), "GAFFERD_PORT="+tlsFreePort(t))
	cmd := pyCommand(t, 10*time.Minute, py, env, "-m", "pytest", "-q", "-rA",
		"-p", "no:cacheprovider", "-p", "gafferd_manager", "--rootdir", suite,
		"test_http.py", "test_webchannel.py", "test_pid_channel.py")
	cmd.Dir = suite
	out, err := cmd.CombinedOutput()
	results := 0
	for _, l := range strings.Split(string(out), "\n") {
		m := pytestResult.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		results++
		status, name, why := m[1], m[2], m[3]
		t.Run(name, func(t *testing.T) {
			switch status {
			case "FAILED", "ERROR":
				t.Errorf("%s: %s (full pytest output in the parent test's log)", status, why)
			case "SKIPPED":
				t.Skip(why)
			}
		})
	}
	if results == 0 || (err != nil && !t.Failed()) {
		t.Errorf("pytest: %v, %d results\n%s", err, results, out)
	} else if t.Failed() {
		t.Logf("pytest output:\n%s", out)
	}
}
