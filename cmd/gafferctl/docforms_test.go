package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/testenv"
)

// The gafferctl command lines of the gaffer documentation's getting-started
// page, as printed.

// "gafferctl load_process ../test.json", "cat ../test.json | gafferctl
// load_process -" and "gafferctl load_process - < ../test.json" load a
// template that starts with its numprocesses (it was loaded stopped).
func TestLoadProcessStartsTheTemplate(t *testing.T) {
	url, cl := startGafferd(t)
	ctx := context.Background()
	ctl := func(stdin string, args ...string) result {
		return ctlRun(t, stdin, append([]string{"--connect=" + url}, args...)...)
	}
	info := func(full string) gaffer.JobInfo {
		i, err := cl.JobInfo(ctx, full)
		if err != nil {
			t.Fatalf("%s: %v", full, err)
		}
		return i
	}
	// The documentation's test.json, made valid JSON.
	testJSON := func(name string) string {
		return `{"name": "` + name + `", "cmd": "sleep", "args": ["300"], "env": {}, "cwd": "` + t.TempDir() + `",
			"detach": false, "shell": false, "os_env": false, "numprocesses": 2}`
	}
	file := filepath.Join(t.TempDir(), "test.json")
	os.WriteFile(file, []byte(testJSON("somename")), 0o644)
	want(t, ctl("", "load_process", file), 0, "somename\n")
	want(t, ctl(testJSON("fromstdin"), "load_process", "-"), 0, "fromstdin\n")
	for _, full := range []string{"default.somename", "default.fromstdin"} {
		waitFor(t, 20*time.Second, full+" × 2", func() bool { return info(full).Running == 2 })
	}

	// "start": false in the file, --nostart (after the file), and --start.
	want(t, ctl(`{"name": "quiet", "cmd": "sleep 300", "start": false}`, "load_process", "-"), 0, "quiet\n")
	want(t, ctl(`{"name": "quiet2", "cmd": "sleep 300"}`, "load_process", "-", "--nostart"), 0, "quiet2\n")
	want(t, ctl(`{"name": "forced", "cmd": "sleep 300", "start": false}`, "load_process", "--start", "-"), 0, "forced\n")
	waitFor(t, 20*time.Second, "forced", func() bool { return info("default.forced").Running == 1 })
	for _, full := range []string{"default.quiet", "default.quiet2"} {
		if i := info(full); i.Active || i.State != gaffer.JobNotStarted {
			t.Fatalf("%s: %+v", full, i)
		}
	}
	r := ctl(`{"name": "bad", "cmd": "sleep 300", "start": "no"}`, "load_process", "-")
	if r.Code != 1 || !strings.Contains(r.Stderr, `"start" must be true or false`) {
		t.Fatalf("start: \"no\": %d %q", r.Code, r.Stderr)
	}
	if ok, _ := cl.JobExists(ctx, "default.bad"); ok {
		t.Fatal("bad loaded")
	}
	want(t, ctl("{}", "load_process", "--start", "--nostart", "-"), 2, "")
}

func TestDocumentedAdminForms(t *testing.T) {
	url, cl := startGafferd(t)
	ctx := context.Background()
	// 0.4 accepted the global options after the command.
	want(t, ctlRun(t, "", "processes", "--connect="+url), 0, "")
	want(t, ctlRun(t, "", "add_process", "name", "sleep 300", "--connect", url, "--start"), 0, "name\n")
	// gafferctl start name / add name 3 / stop name, with GAFFERD_ADDRESS.
	env := []string{"GAFFERD_ADDRESS=" + url}
	want(t, ctlEnv(t, env, "", "add", "name", "3"), 0, "4\n")
	waitFor(t, 20*time.Second, "name × 4", func() bool { n, _ := cl.JobPids(ctx, "default.name"); return len(n) == 4 })
	want(t, ctlEnv(t, env, "", "stop", "name"), 0, "ok\n")
	want(t, ctlEnv(t, env, "", "start", "name"), 0, "ok\n")
	waitFor(t, 20*time.Second, "name started", func() bool { a, _ := cl.JobActive(ctx, "default.name"); return a })

	// A mistake: one error line, one usage line, exit 2.
	for _, args := range [][]string{{"status", "a", "b"}, {"add", "name", "x"}, {"processes", "--nosuch"}, {"--nosuch"}, {"nosuch"}} {
		r := ctlRun(t, "", args...)
		lines := strings.Split(strings.TrimSuffix(r.Stderr, "\n"), "\n")
		if r.Code != 2 || len(lines) != 2 || !strings.HasPrefix(lines[0], "gafferctl") || !strings.HasPrefix(lines[1], "usage: gafferctl ") {
			t.Errorf("%q: exit %d stderr:\n%s", args, r.Code, r.Stderr)
		}
	}
	r := ctlRun(t, "", "load_process", "-h")
	if r.Code != 0 || !strings.HasPrefix(r.Stderr, "usage: gafferctl load_process <file>|-\n") {
		t.Errorf("load_process -h: %d\n%s", r.Code, r.Stderr)
	}
}

func TestAPIKeyFromTheEnvironment(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	key := testenv.AdminKey(t, data, "admin", "secret")
	url, _ := startGafferdData(t, data, gaffer.ClientOptions{APIKey: key}, "--require-key")
	r := ctlEnv(t, []string{"GAFFERD_ADDRESS=" + url}, "", "processes")
	if r.Code != 1 || !strings.Contains(r.Stderr, "unauthorized") {
		t.Fatalf("no key: %d %q", r.Code, r.Stderr)
	}
	want(t, ctlEnv(t, []string{"GAFFERD_ADDRESS=" + url, "GAFFER_API_KEY=" + key}, "", "processes", "--json"), 0, "[]\n")
	want(t, ctlEnv(t, []string{"GAFFERD_ADDRESS=" + url}, "", "processes", "--api-key", key, "--json"), 0, "[]\n")
}
