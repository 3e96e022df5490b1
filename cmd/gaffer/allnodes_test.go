package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/testenv"
)

func TestPsAllNodes(t *testing.T) {
	lk := gaffer.NewLookupd(gaffer.LookupdOptions{PingInterval: 2 * time.Second})
	lsrv := httptest.NewServer(lk)
	t.Cleanup(func() { lsrv.Close(); lk.Close() })

	var origins []string
	for i := 0; i < 2; i++ {
		port := strconv.Itoa(testenv.FreePort(t))
		origin := "http://127.0.0.1:" + port
		_, cl := testenv.Gafferd(t, gaffer.ClientOptions{}, "--bind", "127.0.0.1:"+port, "--data-dir", t.TempDir(),
			"--lookupd-address", lsrv.URL, "--broadcast-address", origin)
		cfg := gaffer.NewJobConfig("job"+strconv.Itoa(i), "sleep 300")
		if err := cl.Load(context.Background(), "app", cfg); err != nil {
			t.Fatal(err)
		}
		origins = append(origins, origin)
	}
	waitFor(t, 10*time.Second, "both nodes registered", func() bool { return len(lk.Nodes()) == 2 })
	r := gafferIn(t, t.TempDir(), "", "ps", "--all-nodes", "-L", lsrv.URL)
	want(t, r, 0, "NODE", origins[0], origins[1], "app.job0", "app.job1", "running")
	for _, line := range strings.Split(r.Stdout, "\n") {
		if strings.Contains(line, "app.job0") && !strings.Contains(line, origins[0]) {
			t.Fatalf("job0 listed under the wrong node: %q", line)
		}
	}
	r = gafferIn(t, t.TempDir(), "", "ps", "--all-nodes", "--json", "-L", lsrv.URL)
	want(t, r, 0, `"jobs"`, `"app.job1"`)
}

// anRun runs the gaffer binary with env added to a clean environment
// (no key, no endpoint, the user config given by the caller).
func anRun(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := gafferCmd(t, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), append([]string{"GAFFERD_ADDRESS=", "GAFFER_API_KEY=", "GAFFER_LOOKUPD_ADDRESS="}, env...)...)
	r := testenv.Run(t, cmd)
	return r.Stdout, r.Stderr, r.Code
}

// anKeyNode runs a gafferd with require_key on 127.0.0.1, registered
// with the lookupd at lookupd, with one job; it returns its origin and
// its admin user's API key (user admin, password pw).
func anKeyNode(t *testing.T, lookupd string) (origin, key string) {
	t.Helper()
	dir := t.TempDir()
	key = testenv.AdminKey(t, dir, "admin", "pw")
	port := strconv.Itoa(testenv.FreePort(t))
	origin = "http://127.0.0.1:" + port
	_, cl := testenv.Gafferd(t, gaffer.ClientOptions{APIKey: key}, "--bind", "127.0.0.1:"+port, "--data-dir", dir, "--require-key",
		"--lookupd-address", lookupd, "--broadcast-address", origin)
	if err := cl.Load(context.Background(), "app", gaffer.NewJobConfig("secure", "sleep 300")); err != nil {
		t.Fatal(err)
	}
	return origin, key
}

// TestPsAllNodesFakeNodeGetsNoKey performs the attack of issue 13: a
// program that reaches the lookupd registers a node whose origin is its
// own listener, and waits for `gaffer ps --all-nodes` to send it the
// operator's API key. The CLI sends a key only to the origin it holds
// that key for (--api-key-for, or the key `gaffer login` saved), never
// --api-key / $GAFFER_API_KEY; a node without a key is asked without one
// and its 401 is reported as such.
func TestPsAllNodesFakeNodeGetsNoKey(t *testing.T) {
	lk := gaffer.NewLookupd(gaffer.LookupdOptions{})
	lsrv := httptest.NewServer(lk)
	t.Cleanup(func() { lsrv.Close(); lk.Close() })

	var mu sync.Mutex
	var stolen []string
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		for _, v := range []string{r.Header.Get("X-Api-Key"), r.Header.Get("Authorization"), r.URL.Query().Get("api_key")} {
			if v != "" {
				stolen = append(stolen, r.URL.Path+": "+v)
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		w.Write([]byte(`{"error":"unauthorized","reason":"an API key is needed","errno":401}`))
	}))
	t.Cleanup(fake.Close)
	ws, _, err := gaffer.WSDial(context.Background(), "ws"+strings.TrimPrefix(lsrv.URL, "http")+"/ws", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	if err := ws.WriteJSON(map[string]any{"type": "IDENTIFY", "msgid": "1", "name": "fakenode", "origin": fake.URL, "version": "0.1"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatal(err)
	}

	origin, key := anKeyNode(t, lsrv.URL)
	waitFor(t, 10*time.Second, "both nodes registered", func() bool { return len(lk.Nodes()) == 2 })
	checkNothingStolen := func(what string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(stolen) > 0 {
			t.Fatalf("%s: the fake node received credentials: %q", what, stolen)
		}
	}
	userCfg := "GAFFER_CONFIG=" + filepath.Join(t.TempDir(), "gaffer.ini")

	// The global key (flag and environment) goes to no listed node: the
	// real one answers 401, reported with the way to give its key.
	out, errOut, code := anRun(t, []string{userCfg, "GAFFER_API_KEY=" + key}, "--api-key", key, "ps", "--all-nodes", "-L", lsrv.URL)
	checkNothingStolen("--api-key and $GAFFER_API_KEY")
	if code != 1 || !strings.Contains(out, "fakenode") || !strings.Contains(out, "--api-key-for") || strings.Contains(out, "app.secure") {
		t.Fatalf("global key: exit %d\n%s%s", code, out, errOut)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, origin) && !strings.Contains(line, "unauthorized") {
			t.Fatalf("the keyless node's line does not say unauthorized: %q", line)
		}
	}

	// --api-key-for ORIGIN=KEY: that origin only.
	out, errOut, code = anRun(t, []string{userCfg}, "--api-key-for", origin+"="+key, "ps", "--all-nodes", "-L", lsrv.URL)
	checkNothingStolen("--api-key-for")
	if code != 0 || !strings.Contains(out, "app.secure") || !strings.Contains(out, "running") {
		t.Fatalf("--api-key-for: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code = anRun(t, []string{userCfg}, "--api-key-for", "no-equals-sign", "ps", "--all-nodes", "-L", lsrv.URL); code != 2 || !strings.Contains(errOut, "ORIGIN=KEY") {
		t.Fatalf("bad --api-key-for: exit %d, %q", code, errOut)
	}

	// The key `gaffer login` saved for the node's origin.
	if out, errOut, code = anRun(t, []string{userCfg}, "-g", origin, "login", "-u", "admin", "-p", "pw"); code != 0 {
		t.Fatalf("login: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = anRun(t, []string{userCfg, "GAFFER_API_KEY=" + key}, "ps", "--all-nodes", "-L", lsrv.URL)
	checkNothingStolen("the key saved by login")
	if code != 0 || !strings.Contains(out, "app.secure") {
		t.Fatalf("saved key: exit %d\n%s%s", code, out, errOut)
	}
}
