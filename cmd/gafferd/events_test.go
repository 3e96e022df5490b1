package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The documentation's config example, [webhooks] create = URL and
// proc.dummy.spawn = URL with [process:dummy], run by the real gafferd
// with -v and -vv: each webhook fires once per event, and the console
// prints each happening on one line.
func TestDocumentedWebhooksAndConsoleOncePerHappening(t *testing.T) {
	for _, verbose := range []string{"-v", "-vv"} {
		t.Run(verbose, func(t *testing.T) {
			created, spawned := newWhReceiver(t, false), newWhReceiver(t, false)
			dir := t.TempDir()
			cfg := baseConfig + `
[webhooks]
create = ` + created.srv.URL + `/echo
proc.dummy.spawn = ` + spawned.srv.URL + `/otherurl

[process:dummy]
cmd = sleep 300
`
			cfg = strings.ReplaceAll(cfg, "%SOCK%", filepath.Join(dir, "g.sock"))
			if err := os.WriteFile(filepath.Join(dir, "gaffer.ini"), []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			d := runDaemon(t, dir, verbose)
			var first int
			d.waitFor(20*time.Second, "dummy's process", func() bool {
				p := d.osPids("default.dummy")
				if len(p) == 1 {
					first = p[0]
				}
				return len(p) == 1
			})
			firstPid := d.job("default.dummy").Processes[0]
			syscall.Kill(first, syscall.SIGKILL)
			d.waitFor(20*time.Second, "the respawn and its webhook", func() bool {
				p := d.osPids("default.dummy")
				return len(p) == 1 && p[0] != first && len(spawned.seen()) >= 2
			})
			d.stop()
			// gafferd has drained its webhooks and exited: all is in.
			if got := created.seen(); strings.Join(got, ",") != "create default.dummy" {
				t.Errorf("create = URL received %q, want the one load", got)
			}
			if got := spawned.seen(); strings.Join(got, ",") != "proc.dummy.spawn default.dummy,proc.dummy.spawn default.dummy" {
				t.Errorf("proc.dummy.spawn = URL received %q, want the two spawns", got)
			}
			out := d.output()
			exitRE := regexp.MustCompile(fmt.Sprintf(`(?m)^\d\d:\d\d:\d\d default\.dummy \| \S*exit\S* process with pid %d$`, firstPid))
			if n := len(exitRE.FindAllString(out, -1)); n != 1 {
				t.Errorf("the exit of pid %d printed %d times:\n%s", firstPid, n, out)
			}
			spawnRE := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d default\.dummy \| \S*spawn\S* process with pid`)
			if n := len(spawnRE.FindAllString(out, -1)); n != 2 {
				t.Errorf("%d spawn lines, want 2:\n%s", n, out)
			}
			if strings.Contains(out, "job.default.dummy.") || strings.Contains(out, "proc.default.dummy.") {
				t.Errorf("aliases printed:\n%s", out)
			}
		})
	}
}
