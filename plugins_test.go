package gaffer

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// plWrite creates a file (and its folders) under dir.
func plWrite(t *testing.T, dir, rel, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func TestLoadPlugins(t *testing.T) {
	if ps, err := LoadPlugins(filepath.Join(t.TempDir(), "missing")); ps != nil || err != nil {
		t.Fatalf("missing dir: %v %v", ps, err)
	}
	dir := t.TempDir()
	plWrite(t, dir, "site/_site/index.html", "<h1>site</h1>", 0o644)
	plWrite(t, dir, "rootsite/index.html", "<h1>root</h1>", 0o644)
	plWrite(t, dir, "tool/run", "#!/bin/sh\n", 0o755)
	plWrite(t, dir, "both/run", "#!/bin/sh\n", 0o755)
	plWrite(t, dir, "both/_site/index.html", "both", 0o644)
	plWrite(t, dir, "noexec/run", "#!/bin/sh\n", 0o644)
	plWrite(t, dir, "bad name/index.html", "x", 0o644)
	plWrite(t, dir, ".hidden/index.html", "x", 0o644)
	plWrite(t, dir, "file.txt", "x", 0o644)
	ps, err := LoadPlugins(dir)
	if err == nil || !strings.Contains(err.Error(), "noexec") || !strings.Contains(err.Error(), "bad name") {
		t.Errorf("error should name noexec and bad name: %v", err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.Name+":"+filepath.Base(p.Site)+":"+filepath.Base(p.Run))
	}
	want := "both:_site:run rootsite:rootsite:. site:_site:. tool:.:run"
	if strings.Join(got, " ") != want {
		t.Fatalf("plugins %q, want %q", strings.Join(got, " "), want)
	}
	if err := CheckMandatoryPlugins(dir, []string{"site", "tool"}); err != nil {
		t.Errorf("mandatory present: %v", err)
	}
	if err := CheckMandatoryPlugins(dir, []string{"site", "nope", "noexec"}); err == nil || !strings.Contains(err.Error(), "nope, noexec") {
		t.Errorf("mandatory missing: %v", err)
	}
}

func TestPluginSites(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	plWrite(t, outside, "secret.txt", "top secret", 0o644)
	plWrite(t, dir, "site/_site/index.html", "<h1>site</h1>", 0o644)
	plWrite(t, dir, "site/_site/css/style.css", "body{}", 0o644)
	plWrite(t, dir, "site/_site/app.js", "let a = 1;", 0o644)
	plWrite(t, dir, "site/_site/empty/.keep", "", 0o644)
	plWrite(t, dir, "site/_site/.env", "SECRET=1", 0o644)
	plWrite(t, dir, "site/not-served.txt", "outside _site", 0o644)
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(dir, "site/_site/link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "site/_site/linkdir")); err != nil {
		t.Fatal(err)
	}
	plWrite(t, dir, "tool/run", "#!/bin/sh\n", 0o755)
	srv := httptest.NewServer(PluginSiteHandler(dir))
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(method, path string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.URL.Opaque = path // send the path as written (no client-side cleaning)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	for _, c := range []struct{ path, ctype, body string }{
		{"/_plugin/site/", "text/html; charset=utf-8", "<h1>site</h1>"},
		{"/_plugin/site/index.html", "text/html; charset=utf-8", "<h1>site</h1>"},
		{"/_plugin/site/css/style.css", "text/css; charset=utf-8", "body{}"},
		{"/_plugin/site/app.js", "text/javascript; charset=utf-8", "let a = 1;"},
	} {
		code, body, h := get("GET", c.path)
		if code != 200 || body != c.body || h.Get("Content-Type") != c.ctype || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %d %q %q", c.path, code, body, h.Get("Content-Type"))
		}
	}
	for _, p := range []string{
		"/_plugin/site/../not-served.txt", "/_plugin/site/%2e%2e/not-served.txt", "/_plugin/site/../../" + filepath.Base(outside) + "/secret.txt",
		"/_plugin/site/link.txt", "/_plugin/site/linkdir/secret.txt", "/_plugin/site/.env", "/_plugin/site/empty/",
		"/_plugin/site/nope.html", "/_plugin/tool/", "/_plugin/tool/run", "/_plugin/nope/", "/_plugin/../etc/passwd", "/_plugin/.hidden/",
	} {
		code, body, _ := get("GET", p)
		if code != 404 || !strings.Contains(body, `"not_found"`) || strings.Contains(body, "top secret") {
			t.Errorf("GET %s: %d %q, want a JSON 404", p, code, body)
		}
	}
	if code, _, h := get("GET", "/_plugin/site"); code != 301 || h.Get("Location") != "/_plugin/site/" {
		t.Errorf("GET /_plugin/site: %d %v", code, h)
	}
	if code, _, h := get("GET", "/_plugin/site/css"); code != 301 || h.Get("Location") != "/_plugin/site/css/" {
		t.Errorf("GET /_plugin/site/css: %d %v", code, h)
	}
	if code, _, _ := get("POST", "/_plugin/site/"); code != 405 {
		t.Errorf("POST: %d", code)
	}
	// A plugin added while serving is served at once.
	plWrite(t, dir, "late/_site/index.html", "late", 0o644)
	if code, body, _ := get("GET", "/_plugin/late/"); code != 200 || body != "late" {
		t.Errorf("late plugin: %d %q", code, body)
	}
}

func TestPluginsAppRunsExecutablePlugins(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plWrite(t, dir, "hello/run", "#!/bin/sh\nGAFFER_TEST_CHILD=printenv exec "+shellQuote(self)+" GAFFERD_ADDRESS GAFFER_API_KEY GAFFER_PLUGIN\n", 0o755)
	plWrite(t, dir, "web/_site/index.html", "hello from a plugin", 0o644)
	sock := filepath.Join(t.TempDir(), "g.sock")
	app := &PluginsApp{Dir: dir}
	d, err := NewDaemon(DaemonOptions{Binds: []string{"127.0.0.1:0", "unix:" + sock}, RequireKey: true, DataDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Apps: []App{app}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, func() { close(ready) }) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the daemon did not stop")
		}
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not start")
	}
	if ps := app.Plugins(); len(ps) != 1 || ps[0].Name != "hello" {
		t.Fatalf("running plugins %v", ps)
	}
	var out string
	waitFor(t, 10*time.Second, "the plugin's output", func() bool {
		pids, _ := d.Manager.Pids("plugins.hello")
		if len(pids) == 0 {
			return false
		}
		p, ok := d.Manager.Process(pids[0])
		if !ok {
			return false
		}
		st, ok := p.Stream("stdout")
		if !ok {
			return false
		}
		chunks, _ := st.Backlog(0)
		out = ""
		for _, c := range chunks {
			out += string(c.Data)
		}
		return strings.Contains(out, "GAFFER_PLUGIN=hello\n")
	})
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	if env["GAFFERD_ADDRESS"] != "unix:"+sock {
		t.Errorf("GAFFERD_ADDRESS=%q, want unix:%s", env["GAFFERD_ADDRESS"], sock)
	}
	key := env["GAFFER_API_KEY"]
	if len(key) < 16 {
		t.Fatalf("GAFFER_API_KEY=%q", key)
	}
	// The key works over the socket, for the plugins session only.
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	defer client.CloseIdleConnections()
	call := func(method, path string) int {
		req, _ := http.NewRequest(method, "http://localhost"+path, nil)
		req.Header.Set("X-Api-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := call("GET", "/jobs/plugins/hello"); code != 200 {
		t.Errorf("the plugin's key cannot read its own job: %d", code)
	}
	if code := call("GET", "/sessions"); code != 403 {
		t.Errorf("the plugin's key may list every session: %d", code)
	}
	// The site is served by the daemon.
	tcp := d.Addrs()[0].String()
	resp, err := http.Get("http://" + tcp + "/_plugin/web/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "hello from a plugin" {
		t.Errorf("plugin site: %d %q", resp.StatusCode, b)
	}
	// A reload picks up a removed plugin (and keeps the key of a plugin
	// that stays).
	if err := os.RemoveAll(filepath.Join(dir, "hello")); err != nil {
		t.Fatal(err)
	}
	if err := app.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Manager.JobInfo("plugins.hello", false); err == nil {
		t.Error("the removed plugin's job is still loaded")
	}
}

func TestMandatoryPluginsStopTheDaemon(t *testing.T) {
	dir := t.TempDir()
	plWrite(t, dir, "plugins/present/_site/index.html", "x", 0o644)
	ini := "[gaffer]\nbind = 127.0.0.1:0\nplugins_dir = " + filepath.Join(dir, "plugins") + "\nmandatory_plugins = present, absent\n"
	plWrite(t, dir, "gaffer.ini", ini, 0o644)
	d, err := NewDaemon(DaemonOptions{ConfigPath: filepath.Join(dir, "gaffer.ini"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = d.Run(ctx, func() { t.Error("the daemon started without a mandatory plugin"); cancel() })
	if err == nil || !strings.Contains(err.Error(), "absent") || strings.Contains(err.Error(), "present,") {
		t.Fatalf("Run: %v, want an error naming the missing plugin", err)
	}
}
