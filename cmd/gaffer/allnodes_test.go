package main

import (
	"context"
	"net"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer"
)

// freePort returns a TCP port free on 127.0.0.1 right now.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestPsAllNodes(t *testing.T) {
	lk := gaffer.NewLookupd(gaffer.LookupdOptions{PingInterval: 200 * time.Millisecond})
	lsrv := httptest.NewServer(lk)
	t.Cleanup(func() { lsrv.Close(); lk.Close() })

	var origins []string
	for i := 0; i < 2; i++ {
		port := strconv.Itoa(freePort(t))
		origin := "http://127.0.0.1:" + port
		dir := t.TempDir()
		cmd := exec.Command(filepath.Join(binDir, "gafferd"), "--bind", "127.0.0.1:"+port, "--data-dir", dir,
			"--lookupd-address", lsrv.URL, "--broadcast-address", origin)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		})
		cl, err := gaffer.NewClient(origin, gaffer.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "gafferd to answer", func() bool { return cl.Ping(context.Background()) == nil })
		cfg := gaffer.NewJobConfig("job"+strconv.Itoa(i), "sleep 300")
		if err := cl.Load(context.Background(), "app", cfg); err != nil {
			t.Fatal(err)
		}
		origins = append(origins, origin)
	}
	waitFor(t, 10*time.Second, "both nodes registered", func() bool { return len(lk.Nodes()) == 2 })
	r := gafferIn(t, t.TempDir(), "", "ps", "--all-nodes", "-L", lsrv.URL)
	want(t, r, 0, "NODE", origins[0], origins[1], "app.job0", "app.job1", "running")
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.Contains(line, "app.job0") && !strings.Contains(line, origins[0]) {
			t.Fatalf("job0 listed under the wrong node: %q", line)
		}
	}
	r = gafferIn(t, t.TempDir(), "", "ps", "--all-nodes", "--json", "-L", lsrv.URL)
	want(t, r, 0, `"jobs"`, `"app.job1"`)
}
