package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "keys")
	os.WriteFile(empty, []byte("# no key\n\n"), 0o600)
	badKey := filepath.Join(dir, "badkeys")
	os.WriteFile(badKey, []byte("good\nbad key\n"), 0o600)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--version"}, 0, "gaffer_lookupd "},
		{[]string{"--nope"}, 2, "flag provided but not defined"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--ping-interval", "0s"}, 2, "--ping-interval must be positive"},
		{[]string{"--certfile", filepath.Join(dir, "missing.pem"), "--keyfile", filepath.Join(dir, "k.pem")}, 1, "missing.pem"},
		{[]string{"--certfile", empty}, 2, "TLS needs both --certfile and --keyfile"},
		{[]string{"--keys-file", empty}, 1, "holds no key"},
		{[]string{"--keys-file", badKey}, 1, "badkeys:2: not a valid API key"},
		{[]string{"--node-key-file", empty}, 1, "--node-key-file: " + empty + " holds no key"},
		{[]string{"--node-key", "bad key"}, 2, "--node-key: not a valid key"},
		{[]string{"--bind", "unix:"}, 1, "needs a socket path"},
		{[]string{"--log-format", "xml"}, 2, "expected text or json"},
	} {
		var out, errb bytes.Buffer
		code := run(tt.args, &out, &errb)
		if code != tt.code || !strings.Contains(out.String()+errb.String(), tt.want) {
			t.Errorf("%v: exit %d, output %q %q; want %d and %q", tt.args, code, out.String(), errb.String(), tt.code, tt.want)
		}
	}
}

// TestSignals: SIGHUP is ignored, SIGTERM stops with exit 0 and removes
// the pidfile and the unix socket; a live pidfile refuses a second start.
func TestSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	_, lookupd := binaries(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "lk.sock")
	pidfile := filepath.Join(dir, "lk.pid")
	c := startChild(t, "lookupd", "", lookupd, "--bind", "unix:"+sock, "--pidfile", pidfile)
	client := unixClient(sock)
	eventually(t, 10*time.Second, "lookupd answers", func() error { return call(client, "GET", "/ping", "", nil) })
	data, err := os.ReadFile(pidfile)
	if err != nil || strings.TrimSpace(string(data)) != strconv.Itoa(c.Cmd.Process.Pid) {
		t.Fatalf("pidfile: %q %v", data, err)
	}

	second := startChild(t, "second", "", lookupd, "--bind", "unix:"+filepath.Join(dir, "other.sock"), "--pidfile", pidfile)
	select {
	case <-second.Done:
		if second.Code() != 1 || !strings.Contains(second.Output(), "already running") {
			t.Fatalf("second start: exit %d, %q", second.Code(), second.Output())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second lookupd with a live pidfile did not exit")
	}

	syscall.Kill(c.Cmd.Process.Pid, syscall.SIGHUP)
	// SIGHUP is ignored: still serving afterwards, and the SIGTERM that
	// follows it ends the process with 0 (a SIGHUP acted upon would end it
	// by the signal, exit code -1).
	for i := 0; i < 20; i++ {
		if err := call(client, "GET", "/version", "", nil); err != nil {
			t.Fatalf("after SIGHUP: %v", err)
		}
	}
	if code := c.Stop(t); code != 0 {
		t.Fatalf("SIGTERM: exit %d, want 0\n%s", code, c.Output())
	}
	for _, p := range []string{pidfile, sock} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
}
