package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer/cmd/internal/testenv"
)

// The command line of the gaffer documentation's "gafferd -h".

const documentedSynopsis = `usage: gafferd [-h] [-c CONFIG_FILE] [-p PLUGINS_DIR] [-v] [-vv] [--daemon]
               [--pidfile PIDFILE] [--bind BIND] [--certfile CERTFILE]
               [--keyfile KEYFILE] [--backlog BACKLOG]
               [config]
`

func runGafferdQuick(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(gafferdBinary(t), args...)
	cmd.Env = append(os.Environ(), "GAFFERD_CONFIG=")
	r := testenv.Run(t, cmd)
	return r.Stdout, r.Stderr, r.Code
}

func TestGafferdHelpPrintsTheDocumentedSynopsis(t *testing.T) {
	for _, h := range []string{"-h", "--help"} {
		_, stderr, code := runGafferdQuick(t, h)
		if code != 0 || !strings.HasPrefix(stderr, documentedSynopsis) {
			t.Fatalf("%s: exit %d\n%s", h, code, stderr)
		}
		for _, s := range []string{"-c CONFIG_FILE, --config CONFIG_FILE", "-p PLUGINS_DIR, --plugins-dir PLUGINS_DIR",
			"\n  config ", "\n  -vv ", "\n  --lookupd-address URL", "\n  --require-key "} {
			if !strings.Contains(stderr, s) {
				t.Errorf("%s lacks %q:\n%s", h, s, stderr)
			}
		}
	}
}

func TestGafferdDocumentedCommandLines(t *testing.T) {
	forms := []struct {
		name string
		args func(cfg, plugins string) []string
		vv   bool
	}{
		{"positional config, then -vv", func(cfg, _ string) []string { return []string{cfg, "-vv"} }, true},
		{"-c FILE -p DIR (the getting-started page)", func(cfg, p string) []string { return []string{"-c", cfg, "-p", p} }, false},
		{"--config FILE -p DIR", func(cfg, p string) []string { return []string{"--config", cfg, "-p", p} }, false},
		{"-c FILE --plugins-dir DIR", func(cfg, p string) []string { return []string{"-c", cfg, "--plugins-dir", p} }, false},
		{"--config=FILE --plugins-dir=DIR -v", func(cfg, p string) []string {
			return []string{"--config=" + cfg, "--plugins-dir=" + p, "-v"}
		}, false},
		{"--plugin-dir DIR (0.5.2) and the config twice", func(cfg, p string) []string {
			return []string{"--plugin-dir", p, "-c", cfg, cfg}
		}, false},
	}
	for _, f := range forms {
		t.Run(f.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "gaffer.ini")
			text := strings.ReplaceAll(baseConfig, "%SOCK%", filepath.Join(dir, "g.sock")) +
				"[process:dummy]\ncmd = sh -c 'echo dummy is alive; exec sleep 300'\nredirect_output = stdout\n"
			if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			plugins := filepath.Join(dir, "plugins")
			os.MkdirAll(filepath.Join(plugins, "hello", "_site"), 0o755)
			os.WriteFile(filepath.Join(plugins, "hello", "_site", "index.html"), []byte("hello plugin\n"), 0o644)
			args := f.args(cfg, plugins)
			d := runDaemonArgs(t, dir, args...)
			d.waitFor(10*time.Second, "the config's job", func() bool { return d.job("default.dummy").Running == 1 })
			usesPlugins := strings.Contains(strings.Join(args, " "), plugins)
			if usesPlugins {
				// Plugins start once the listeners are open: poll.
				var status int
				var body []byte
				d.waitFor(10*time.Second, "the plugin site", func() bool {
					resp, err := d.client.Get("http://localhost/_plugin/hello/")
					if err != nil {
						return false
					}
					body, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
					return status == 200
				})
				if status != 200 || string(body) != "hello plugin\n" {
					t.Fatalf("plugin site: %d %q", status, body)
				}
			}
			if f.vv {
				d.waitFor(10*time.Second, "-vv's process output", func() bool {
					return strings.Contains(d.output(), "default.dummy | dummy is alive")
				})
			}
		})
	}
}

func TestGafferdCommandLineMistakes(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.ini"), filepath.Join(dir, "b.ini")
	cases := []struct {
		args []string
		msg  string
	}{
		{[]string{"-c", a, b}, `gafferd: two configurations: -c "` + a + `" and "` + b + `" (give one)`},
		{[]string{"--config=" + a, b}, `gafferd: two configurations: -c "` + a + `" and "` + b + `" (give one)`},
		{[]string{a, b}, `gafferd: unexpected argument "` + b + `" (one configuration at most)`},
		{[]string{a, "--nosuch"}, "gafferd: flag provided but not defined: -nosuch"},
		{[]string{"--backlog", "many"}, `gafferd: invalid value "many" for flag -backlog: parse error`},
	}
	for _, tc := range cases {
		stdout, stderr, code := runGafferdQuick(t, tc.args...)
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		if code != 2 || stdout != "" || len(lines) != 2 || lines[0] != tc.msg || !strings.HasPrefix(lines[1], "usage: gafferd [-h] ") {
			t.Errorf("%q: exit %d stdout %q stderr:\n%s", tc.args, code, stdout, stderr)
		}
	}
}
