package main

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestStatusTableRestartAndProcesses: status without a name is the
// process table (0.4 names), restart restarts a running template and
// starts a stopped one, and processes prints one name per line.
func TestStatusTableRestartAndProcesses(t *testing.T) {
	url, cl := startGafferd(t)
	ctx := context.Background()
	ctl := func(args ...string) result { return ctlRun(t, "", append([]string{"--connect=" + url}, args...)...) }
	want(t, ctl("add_process", "--start", "web", "sleep 300"), 0, "web\n")
	want(t, ctl("add_process", "app:idle", "sleep 300"), 0, "app:idle\n")
	waitFor(t, 10*time.Second, "web", func() bool { a, _ := cl.JobActive(ctx, "default.web"); return a })

	r := ctl("status")
	want(t, r, 0, "*")
	lines := strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "JOB") || !strings.Contains(lines[0], "LAST EXIT") {
		t.Fatalf("status table:\n%s", r.Stdout)
	}
	if !regexp.MustCompile(`^app:idle +- +- +not_started `).MatchString(lines[1]) ||
		!regexp.MustCompile(`^web +\d+ +\d+ +running +\d+s +0 +\d+\.\d% +\d+(\.\d)? (B|KiB|MiB) +-$`).MatchString(lines[2]) {
		t.Fatalf("status rows:\n%s", r.Stdout)
	}
	r = ctl("status", "--json")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &rows); err != nil || len(rows) != 2 || rows[1]["job"] != "web" || rows[1]["os_pid"] == nil {
		t.Fatalf("status --json: %v\n%s", err, r.Stdout)
	}
	want(t, ctl("status", "web"), 0, "active\n") // the 0.4 form stays

	before, _ := cl.JobPids(ctx, "default.web")
	want(t, ctl("restart", "web", "app:idle"), 0, "ok\n")
	waitFor(t, 20*time.Second, "web restarted and idle started", func() bool {
		now, _ := cl.JobPids(ctx, "default.web")
		idle, _ := cl.JobActive(ctx, "app.idle")
		return len(now) == 1 && !slices.Contains(now, before[0]) && idle
	})
	want(t, ctl("restart"), 2, "")
	want(t, ctl("processes"), 0, "web\napp:idle\n")
	want(t, ctl("processes", "--json"), 0, "[\n  \"web\",\n  \"app:idle\"\n]\n")
}
