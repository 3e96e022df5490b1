package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBrowser runs test/browser/run.mjs against a real gafferd, in Debian's
// Chromium driven by playwright-core: sockjs-client over each SockJS
// transport on /channel, and the web console at /ui/ (key prompt, scaling
// with a click, live output of a child with capture times, start/stop,
// the cpu graph of a job whose cpu rises, restart of a job and of a
// process, events shown once, the filter box). gafferd runs with
// require_key, a TCP endpoint for the browser and a trusted unix socket for
// the test's own setup. Screenshots go to $GAFFER_ARTIFACTS (default: a
// temporary folder whose path is logged).
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests skipped in -short mode")
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("browser tests skipped: %s is missing (apt-get install chromium; .ci/install-deps does it where it can)", chromium)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("browser tests skipped: node is not installed")
	}
	browserDir, err := filepath.Abs(filepath.Join("..", "..", "test", "browser"))
	if err != nil {
		t.Fatal(err)
	}
	sockjsJS := filepath.Join(browserDir, "node_modules", "sockjs-client", "dist", "sockjs.min.js")
	for _, p := range []string{sockjsJS, filepath.Join(browserDir, "node_modules", "playwright-core")} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("browser tests skipped: %s is missing (run npm ci in test/browser; .ci/install-deps does it)", p)
		}
	}

	dir := t.TempDir()
	// A plugin site that loads sockjs-client: the page of the SockJS tests.
	site := filepath.Join(dir, "plugins", "sockjs-test", "_site")
	if err := os.MkdirAll(site, 0o755); err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(sockjsJS)
	if err != nil {
		t.Fatal(err)
	}
	page := "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>sockjs test</title>\n" +
		"<script src=\"sockjs.min.js\"></script></head><body><h1>sockjs-client test page</h1></body></html>\n"
	if err := os.WriteFile(filepath.Join(site, "index.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(site, "sockjs.min.js"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	// A job whose cpu changes: idle, then burning one core for a while,
	// then idle again until it is stopped (bounded: one burst per start).
	burn := filepath.Join(dir, "burn.js")
	script := `const idle = 12000, burn = 15000;
console.log('idle for ' + idle + ' ms');
setTimeout(() => {
  console.log('burning cpu for ' + burn + ' ms');
  const end = Date.now() + burn;
  while (Date.now() < end) {}
  console.log('idle again');
}, idle);
setInterval(() => {}, 1 << 30);
`
	if err := os.WriteFile(burn, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := `[gaffer]
http_endpoints = sock, web
require_key = true
unix_socket_trusted = true
plugins_dir = ` + filepath.Join(dir, "plugins") + `
data_dir = ` + dir + `
[endpoint:sock]
bind = unix:%SOCK%
[endpoint:web]
bind = 127.0.0.1:0

[process:browser:cat]
cmd = cat
redirect_input = true
redirect_output = stdout
graceful_timeout = 1

[process:browser:burn]
cmd = ` + node + ` ` + burn + `
redirect_output = stdout
graceful_timeout = 1
`
	d := startDaemon(t, dir, cfg)
	addr := ""
	re := regexp.MustCompile(`address=(127\.0\.0\.1:\d+)`)
	d.waitFor(10*time.Second, "the TCP endpoint", func() bool {
		if m := re.FindStringSubmatch(d.output()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	// An admin key, made over the trusted unix socket.
	resp, err := d.client.Post("http://localhost/keys", "application/json",
		strings.NewReader(`{"label": "browser test", "permissions": {"admin": true}}`))
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		APIKey string `json:"api_key"`
	}
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != 200 || created.APIKey == "" {
		t.Fatalf("POST /keys: %d", resp.StatusCode)
	}
	d.waitFor(10*time.Second, "the cat and burn jobs", func() bool {
		return d.job("browser.cat").Running == 1 && d.job("browser.burn").Running == 1
	})
	// The routes the browser needs; fail fast and say which is missing.
	for _, p := range []string{"/ui/", "/channel/info", "/_plugin/sockjs-test/"} {
		resp, err := d.client.Get("http://localhost" + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d; gafferd must serve the console (s.uiRoutes()), the SockJS channel (s.sockjsRoutes()) and the plugin sites (PluginsApp)", p, resp.StatusCode)
		}
	}

	artifacts := os.Getenv("GAFFER_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join(os.TempDir(), "gaffer-browser-artifacts")
	}
	if abs, err := filepath.Abs(artifacts); err == nil {
		artifacts = abs
	}
	cmd := exec.Command(node, "run.mjs")
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(),
		"GAFFER_URL=http://"+addr,
		"GAFFER_KEY="+created.APIKey,
		"GAFFER_JOB=browser.cat",
		"GAFFER_BURN_JOB=browser.burn",
		"SOCKJS_PAGE=/_plugin/sockjs-test/",
		"ARTIFACTS="+artifacts,
		"CHROMIUM="+chromium,
	)
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, testLogWriter{t})
	cmd.Stderr = cmd.Stdout
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatal("the browser tests did not finish in 5 minutes")
	}
	t.Logf("screenshots: %s", artifacts)
	if err != nil {
		t.Fatalf("browser tests failed (%v); see the lines above", err)
	}
	if !strings.Contains(out.String(), " 0 failed") {
		t.Fatal("the browser tests printed no summary")
	}
}

// testLogWriter sends each line it gets to t.Log.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(line)
	}
	return len(p), nil
}
