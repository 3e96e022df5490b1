package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/testenv"
)

// The command lines of the gaffer documentation (docs §1.2.4 "Gaffer"),
// as printed, next to the 0.5.2 forms.

// documentedSynopses are the SUBCOMMANDS synopses of the documentation
// (with its typographic damage undone: "-nostart" is --nostart,
// "concurrency concurrency" is --concurrency concurrency).
var documentedSynopses = map[string]string{
	"export": "[-c concurrency|--concurrency concurrency] [--format=format] [--out=filename] [<name>]",
	"load":   "[-c concurrency|--concurrency concurrency] [--nostart] [<name>]",
	"ps":     "[<appname>]",
	"run":    "[-c concurrency] [<args>]...",
	"scale":  "[<appname>] [process=value]...",
	"start":  "[-c concurrency|--concurrency concurrency]",
	"unload": "[<name>]",
}

func TestHelpShowsTheDocumentedSynopses(t *testing.T) {
	dir := t.TempDir()
	for name, syn := range documentedSynopses {
		r := gafferIn(t, dir, "", name, "-h")
		if r.Code != 0 || !strings.HasPrefix(r.Stderr, "usage: gaffer "+name+" "+syn+"\n") {
			t.Errorf("%s -h: exit %d\n%s", name, r.Code, r.Stderr)
		}
	}
	if r := gafferIn(t, dir, "", "start", "-h"); !strings.Contains(r.Stderr, "\n       gaffer start <type>\n") {
		t.Errorf("start -h lacks 'start <type>':\n%s", r.Stderr)
	}
	r := gafferIn(t, dir, "", "-h")
	for _, s := range []string{"-d, --directory DIR", "-e, --env FILE|KEY=VALUE", "--endpoint ADDRESS", "-v, --vv"} {
		if r.Code != 0 || !strings.Contains(r.Stderr, s) {
			t.Errorf("gaffer -h lacks %q: exit %d\n%s", s, r.Code, r.Stderr)
		}
	}
}

// A mistake exits 2 with one error line and one usage line.
func TestUsageErrorsAreTwoLines(t *testing.T) {
	app := writeApp(t)
	for _, args := range [][]string{
		{"ps", "--nosuchflag"}, {"ps", "a", "b"}, {"ps", "a", "--app", "b"}, {"load", "x", "y"},
		{"scale", "web"}, {"scale", "myapp", "web"}, {"run", "-c", "x=2", "sh"}, {"run", "-c", "0", "sh"},
		{"--nosuchflag", "ps"}, {"nosuchcommand"}, {"unload", "--from-file"},
	} {
		r := gafferIn(t, app, "", args...)
		lines := strings.Split(strings.TrimSuffix(r.Stderr, "\n"), "\n")
		if r.Code != 2 || r.Stdout != "" || len(lines) != 2 || !strings.HasPrefix(lines[0], "gaffer") || !strings.HasPrefix(lines[1], "usage: gaffer ") {
			t.Errorf("%q: exit %d stdout %q stderr:\n%s", args, r.Code, r.Stdout, r.Stderr)
		}
	}
	r := gafferIn(t, app, "", "ps", "--nosuchflag")
	if want := "gaffer ps: flag provided but not defined: -nosuchflag\nusage: gaffer ps [<appname>] (gaffer ps -h for details)\n"; r.Stderr != want {
		t.Errorf("ps --nosuchflag: %q", r.Stderr)
	}
}

func TestDocumentedServerForms(t *testing.T) {
	addr, cl := startGafferd(t)
	ctx := context.Background()
	app := writeApp(t)
	other := t.TempDir()
	g := func(args ...string) result {
		return gafferIn(t, app, "", append([]string{"--endpoint", addr}, args...)...)
	}
	running := func(full string, n int) func() bool {
		return func() bool {
			info, err := cl.JobInfo(ctx, full)
			return err == nil && info.Running == n
		}
	}

	// load <name>: the application (session) name, even when a directory
	// has that name; flags after it.
	os.Mkdir(filepath.Join(app, "mysess"), 0o755)
	want(t, g("load", "mysess", "-c", "web=2"), 0, "==> 'mysess' has been loaded in "+addr+"\n")
	waitFor(t, 20*time.Second, "mysess.web × 2", running("mysess.web", 2))
	waitFor(t, 20*time.Second, "mysess.worker × 1", running("mysess.worker", 1))
	// load . (the current folder), --nostart, the global option after the
	// command, from the directory given with --directory.
	want(t, gafferIn(t, other, "", "--directory", app, "load", ".", "--nostart", "--concurrency", "worker=2", "--endpoint", addr),
		0, "==> 'myapp' has been loaded in ")
	info, err := cl.JobInfo(ctx, "myapp.worker")
	if err != nil || info.Active || info.Config["cwd"] != app {
		t.Fatalf("load . --nostart: %+v %v", info, err)
	}

	// ps on stopped jobs shows them with their state (it printed nothing).
	r := g("ps", "--app", "myapp")
	want(t, r, 0, "=== web: `sh -c ", "=== worker: `sh -c ")
	if !regexp.MustCompile("(?m)^=== worker: `[^`]+` \\(not started\\)$").MatchString(r.Stdout) {
		t.Fatalf("ps --app myapp:\n%s", r.Stdout)
	}
	// ps <appname>, ps . and ps --app give the same.
	for _, args := range [][]string{{"ps", "myapp"}, {"ps", "."}, {"ps"}} {
		if r2 := g(args...); r2.Code != 0 || r2.Stdout != r.Stdout {
			t.Errorf("%q: exit %d\n%s\nwant\n%s", args, r2.Code, r2.Stdout, r.Stdout)
		}
	}
	var psj []struct {
		Job gaffer.JobInfo `json:"job"`
	}
	if r := g("ps", "myapp", "--json"); json.Unmarshal([]byte(r.Stdout), &psj) != nil || len(psj) != 2 || psj[0].Job.State != gaffer.JobNotStarted {
		t.Fatalf("ps myapp --json: %s", r.Stdout)
	}
	r = g("ps", "mysess")
	want(t, r, 0, "=== web: `sh -c ")
	if n := len(regexp.MustCompile(`(?m)^web\.\d+: up for `).FindAllString(r.Stdout, -1)); n != 2 {
		t.Fatalf("ps mysess: %d web processes\n%s", n, r.Stdout)
	}
	want(t, g("ps", "mysess", "--app", "other"), 2)
	want(t, g("ps", "nosuch"), 1)

	// scale <appname> process=value...
	want(t, g("scale", "mysess", "web=3", "worker+1"), 0,
		"Scaling mysess.web processes... done, now running 3\n", "Scaling mysess.worker processes... done, now running 2\n")
	waitFor(t, 20*time.Second, "mysess.web × 3", running("mysess.web", 3))
	want(t, g("scale", "--app", "mysess", "web-2"), 0, "now running 1\n")

	// unload <name>: the application.
	want(t, g("unload", "mysess", "--no-input"), 0, "==> app 'mysess' unloaded\n")
	if jobs, _ := cl.SessionJobs(ctx, "mysess"); len(jobs) != 0 {
		t.Fatalf("mysess left: %v", jobs)
	}
	// A job of the current app keeps the 0.5.2 meaning.
	want(t, g("unload", "--no-input", "web"), 0, "job 'web' unloaded\n")
	if ok, _ := cl.JobExists(ctx, "myapp.worker"); !ok {
		t.Fatal("unload web took myapp.worker too")
	}
	r = g("unload", "--no-input", "nosuch")
	if r.Code != 1 || r.Stderr != "gaffer: 'nosuch' not found in 'myapp'\n" {
		t.Fatalf("unload nosuch: %d %q", r.Code, r.Stderr)
	}
	want(t, g("unload", ".", "--no-input"), 0, "==> app 'myapp' unloaded\n")
	if jobs, _ := cl.Jobs(ctx); len(jobs) != 0 {
		t.Fatalf("jobs left: %v", jobs)
	}
	want(t, g("unload", "myapp"), 1) // confirmation without an answer

	// An existing file is a job file; a missing one is not an app name.
	os.WriteFile(filepath.Join(app, "jobs.json"), []byte(`{"name": "sleeper", "cmd": "sleep 300"}`), 0o644)
	want(t, g("load", "jobs.json", "--app", "files"), 0, "'files.sleeper' has been loaded in ")
	waitFor(t, 20*time.Second, "files.sleeper", running("files.sleeper", 1))
	r = g("load", "missing.json")
	if r.Code != 1 || r.Stderr != "gaffer: missing.json: no such file\n" {
		t.Fatalf("load missing.json: %d %q", r.Code, r.Stderr)
	}
	r = gafferIn(t, other, "", "--endpoint", addr, "load", "noprocfile")
	if r.Code != 1 || !strings.Contains(r.Stderr, "no Procfile here to load as 'noprocfile'") {
		t.Fatalf("load <name> without a Procfile: %d %q", r.Code, r.Stderr)
	}

	// GAFFERD_ADDRESS stands for --endpoint.
	want(t, gafferEnv(t, app, []string{"GAFFERD_ADDRESS=" + addr}, "", "apps"), 0, "files\n")
}

// ps --app X printed nothing when X's jobs were loaded but not running.
func TestPsShowsStoppedJobs(t *testing.T) {
	addr, cl := startGafferd(t)
	ctx := context.Background()
	app := writeApp(t)
	g := func(args ...string) result { return gafferIn(t, app, "", append([]string{"-g", addr}, args...)...) }
	want(t, g("load", "--nostart", "--app", "x"), 0)
	r := g("ps", "--app", "x")
	want(t, r, 0)
	if !regexp.MustCompile("(?m)^=== web: `sh -c [^`]+` \\(not started\\)\n\n=== worker: `sh -c [^`]+` \\(not started\\)\n$").MatchString(r.Stdout) {
		t.Fatalf("ps --app x, not started:\n%s", r.Stdout)
	}
	want(t, g("ps:start", "--app", "x", "worker"), 0)
	waitFor(t, 20*time.Second, "worker", func() bool { a, _ := cl.JobActive(ctx, "x.worker"); return a })
	want(t, g("ps:stop", "--app", "x", "worker"), 0)
	waitFor(t, 20*time.Second, "worker to stop", func() bool { a, _ := cl.JobActive(ctx, "x.worker"); return !a })
	r = g("ps", "--app", "x")
	if !regexp.MustCompile("(?m)^=== worker: `sh -c [^`]+` \\(stopped\\)$").MatchString(r.Stdout) {
		t.Fatalf("ps --app x, stopped:\n%s", r.Stdout)
	}
}

func TestAPIKeyFromTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	key := testenv.AdminKey(t, data, "admin", "secret")
	addr, _ := startGafferdData(t, dir, data, gaffer.ClientOptions{APIKey: key}, "--require-key")
	app := writeApp(t)
	r := gafferEnv(t, app, []string{"GAFFERD_ADDRESS=" + addr}, "", "apps")
	if r.Code != 1 || !strings.Contains(r.Stderr, "unauthorized") {
		t.Fatalf("no key: %d %q", r.Code, r.Stderr)
	}
	want(t, gafferEnv(t, app, []string{"GAFFERD_ADDRESS=" + addr, "GAFFER_API_KEY=" + key}, "", "load", "--nostart"), 0, "==> 'myapp' has been loaded")
	want(t, gafferEnv(t, app, []string{"GAFFERD_ADDRESS=" + addr, "GAFFER_API_KEY=" + key}, "", "ps", "myapp"), 0, "=== web: ")
}

func TestDocumentedLocalForms(t *testing.T) {
	app := writeApp(t)
	other := t.TempDir()

	// run -c: that many copies; the .env and -e k=v environment; -d.
	r := gafferIn(t, other, "", "-d", app, "run", "-c", "2", "sh", "-c", `echo "run $GREETING $(pwd)"`)
	want(t, r, 0)
	if r.Stdout != "run hello "+app+"\nrun hello "+app+"\n" {
		t.Fatalf("run -c 2: %q", r.Stdout)
	}
	r = gafferIn(t, app, "", "-e", "GREETING=bye", "run", "--concurrency", "sh=3", "sh", "-c", `echo "run $GREETING"`)
	if r.Code != 0 || r.Stdout != strings.Repeat("run bye\n", 3) {
		t.Fatalf("-e k=v run --concurrency sh=3: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	want(t, gafferIn(t, app, "", "run", "-c", "3", "sh", "-c", "exit 4"), 4)
	// An -e that names an existing file is a .env file, even with a "=".
	envFile := filepath.Join(other, "a=b.env")
	os.WriteFile(envFile, []byte("GREETING=from-file\n"), 0o644)
	want(t, gafferIn(t, app, "", "--env", envFile, "run", "sh", "-c", `echo "$GREETING"`), 0, "from-file\n")

	// export [-c …] [--format=…] [--out=…] [<name>], with --directory.
	out := filepath.Join(other, "worker.json")
	want(t, gafferIn(t, other, "", "--directory", app, "export", "--concurrency", "worker=3", "--format=json", "--out="+out, "worker"), 0)
	var doc struct {
		Jobs []struct {
			Name         string `json:"name"`
			NumProcesses int    `json:"numprocesses"`
		} `json:"jobs"`
	}
	data, _ := os.ReadFile(out)
	if err := json.Unmarshal(data, &doc); err != nil || len(doc.Jobs) != 1 || doc.Jobs[0].Name != "myapp.worker" || doc.Jobs[0].NumProcesses != 3 {
		t.Fatalf("export --format=json: %v %s", err, data)
	}
	want(t, gafferIn(t, app, "", "-e", "EXTRA=1", "export", "-c", "web=2", "--format=ini"), 0,
		"[process:myapp:web]\n", "numprocesses = 2\n", "env:EXTRA = 1\n")

	// start <type> with --concurrency after it, -d, and --vv.
	cmd := gafferCmd(t, "-d", app, "start", "worker", "--concurrency", "worker=2", "--vv")
	cmd.Dir = other
	cmd.Env = append(os.Environ(), "GAFFER_CONFIG=/nonexistent", "NO_COLOR=1")
	lines, stderr := testenv.Lines(t, cmd)
	seen := map[string]bool{}
	var all []string
	deadline := time.After(20 * time.Second)
	for !(seen["worker.1 | worker tick"] && seen["worker.2 | worker tick"] && seen["worker.1 | start"]) {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("start ended early:\n%s\nstderr: %s", strings.Join(all, "\n"), stderr.String())
			}
			all = append(all, l)
			if i := strings.IndexByte(l, ' '); i > 0 {
				seen[l[i+1:]] = true
			}
		case <-deadline:
			t.Fatalf("missing lines:\n%s\nstderr: %s", strings.Join(all, "\n"), stderr.String())
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	for l := range lines {
		all = append(all, l)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("start after SIGINT: %v\n%s", err, stderr.String())
	}
	if text := strings.Join(all, "\n"); strings.Contains(text, " web.") {
		t.Fatalf("start worker ran web:\n%s", text)
	}
}
