package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/testenv"
)

// statusRows parses the table of gaffer status into cells by column.
func statusRows(t *testing.T, out string) []map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	head := lines[0]
	cols := []string{"JOB", "PID", "OS PID", "STATE", "UPTIME", "RESTARTS", "CPU", "MEMORY", "LAST EXIT"}
	var starts []int
	for _, c := range cols {
		i := strings.Index(head, c)
		if i < 0 {
			t.Fatalf("heading %q lacks %s", head, c)
		}
		starts = append(starts, i)
	}
	if !slices.IsSorted(starts) {
		t.Fatalf("heading %q: columns out of order", head)
	}
	var rows []map[string]string
	for _, l := range lines[1:] {
		r := map[string]string{}
		for i, c := range cols {
			end := len(l)
			if i+1 < len(cols) {
				end = min(starts[i+1], len(l))
			}
			if starts[i] > len(l) {
				t.Fatalf("row %q shorter than its columns", l)
			}
			if starts[i] > 0 && l[starts[i]-1] != ' ' {
				t.Fatalf("row %q: column %s is not aligned", l, c)
			}
			r[c] = strings.TrimSpace(l[starts[i]:end])
		}
		rows = append(rows, r)
	}
	return rows
}

func TestStatusTableAndRestart(t *testing.T) {
	addr, cl := startGafferd(t)
	ctx := context.Background()
	env := []string{"GAFFERD_ADDRESS=" + addr}
	web := gaffer.NewJobConfig("web", "sleep 300")
	web.NumProcesses = 2
	crash := gaffer.NewJobConfig("crash", "sh -c 'sleep 0.2; exit 3'")
	idle := gaffer.NewJobConfig("idle", "sleep 300")
	for _, cfg := range []gaffer.JobConfig{web, crash} {
		if err := cl.Load(ctx, "default", cfg); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.LoadMap(ctx, "other", map[string]any{"name": "idle", "cmd": idle.Cmd, "start": false}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "web × 2 and a crash", func() bool {
		w, _ := cl.JobInfo(ctx, "default.web")
		c, _ := cl.JobInfo(ctx, "default.crash")
		return w.Running == 2 && c.LastExit != nil && *c.LastExit == 3
	})
	// Kill a web process once: one restart.
	w, _ := cl.JobInfo(ctx, "default.web")
	victim, _ := cl.ProcessInfo(ctx, w.Processes[0])
	syscall.Kill(victim.OSPid, syscall.SIGKILL)
	waitFor(t, 20*time.Second, "the replacement", func() bool {
		w, _ := cl.JobInfo(ctx, "default.web")
		return w.Running == 2 && w.Restarts == 1
	})

	r := gafferEnv(t, t.TempDir(), env, "", "status")
	want(t, r, 0)
	if strings.Contains(r.Stdout, "\x1b[") {
		t.Fatalf("colour on a pipe:\n%s", r.Stdout)
	}
	rows := statusRows(t, r.Stdout)
	var webRows []map[string]string
	for _, row := range rows {
		if row["JOB"] == "default.web" {
			webRows = append(webRows, row)
		}
	}
	if len(webRows) != 2 {
		t.Fatalf("%d rows of default.web, want 2:\n%s", len(webRows), r.Stdout)
	}
	for _, row := range webRows {
		pid, _ := strconv.Atoi(row["PID"])
		pi, err := cl.ProcessInfo(ctx, pid)
		if err != nil || strconv.Itoa(pi.OSPid) != row["OS PID"] {
			t.Errorf("row %v: process %d has OS pid %d (%v)", row, pid, pi.OSPid, err)
		}
		if row["STATE"] != "running" || row["RESTARTS"] != "1" || row["LAST EXIT"] != "SIGKILL" {
			t.Errorf("row %v: want running, 1 restart, last exit SIGKILL", row)
		}
		if !regexp.MustCompile(`^\d+s$|^\d+m\d\ds$`).MatchString(row["UPTIME"]) {
			t.Errorf("uptime %q", row["UPTIME"])
		}
		if !regexp.MustCompile(`^\d+\.\d%$`).MatchString(row["CPU"]) {
			t.Errorf("cpu %q", row["CPU"])
		}
		if !regexp.MustCompile(`^\d+(\.\d)? (B|KiB|MiB)$`).MatchString(row["MEMORY"]) {
			t.Errorf("memory %q", row["MEMORY"])
		}
	}
	var idleRow map[string]string
	for _, row := range rows {
		if row["JOB"] == "other.idle" {
			idleRow = row
		}
		if row["JOB"] == "default.crash" && row["LAST EXIT"] != "3" {
			t.Errorf("row %v: want last exit 3 (its exit status)", row)
		}
	}
	if idleRow == nil || idleRow["STATE"] != gaffer.JobNotStarted || idleRow["PID"] != "-" || idleRow["MEMORY"] != "-" {
		t.Errorf("the job without a process: %v\n%s", idleRow, r.Stdout)
	}

	// --json: the same rows, as numbers.
	r = gafferEnv(t, t.TempDir(), env, "", "status", "--json", "default")
	want(t, r, 0)
	var js []struct {
		Job           string   `json:"job"`
		Pid           *int     `json:"pid"`
		OSPid         *int     `json:"os_pid"`
		State         string   `json:"state"`
		UptimeSeconds *float64 `json:"uptime_seconds"`
		Restarts      int      `json:"restarts"`
		CPUPercent    *float64 `json:"cpu_percent"`
		MemoryBytes   *int64   `json:"memory_bytes"`
		LastExit      *int     `json:"last_exit_status"`
		LastSignal    string   `json:"last_exit_signal"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &js); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.Stdout)
	}
	n := 0
	for _, row := range js {
		if row.Job == "other.idle" {
			t.Errorf("status default lists other.idle")
		}
		if row.Job != "default.web" {
			continue
		}
		n++
		if row.Pid == nil || row.OSPid == nil || row.UptimeSeconds == nil || *row.UptimeSeconds < 0 || row.MemoryBytes == nil ||
			*row.MemoryBytes <= 0 || row.CPUPercent == nil || row.Restarts != 1 || row.LastExit == nil || row.LastSignal != "SIGKILL" || row.State != "running" {
			t.Errorf("json row %+v", row)
		}
	}
	if n != 2 {
		t.Errorf("%d json rows of default.web:\n%s", n, r.Stdout)
	}

	// On a terminal: colours, unless NO_COLOR.
	if script, err := exec.LookPath("script"); err == nil {
		tty := func(noColor string) string {
			cmd := exec.Command(script, "-qec", testenv.Binary(t, "gaffer")+" status default.web", "/dev/null")
			cmd.Env = append(os.Environ(), "GAFFERD_ADDRESS="+addr, "NO_COLOR="+noColor, "GAFFER_CONFIG=/nonexistent")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("script: %v\n%s", err, out)
			}
			return string(out)
		}
		if out := tty(""); !strings.Contains(out, "\x1b[32mrunning\x1b[0m") || !strings.Contains(out, "\x1b[1mJOB") {
			t.Errorf("no colours on a terminal: %q", out)
		}
		if out := tty("1"); strings.Contains(out, "\x1b[") {
			t.Errorf("colours with NO_COLOR: %q", out)
		}
	} else {
		t.Log("script(1) is not installed: the terminal colours are not checked")
	}

	// restart: new processes for a running job; a stopped job starts.
	before, _ := cl.JobPids(ctx, "default.web")
	want(t, gafferEnv(t, t.TempDir(), env, "", "restart", "--app", "default", "web"), 0, "job 'web' restarted")
	waitFor(t, 20*time.Second, "web's new processes", func() bool {
		now, _ := cl.JobPids(ctx, "default.web")
		return len(now) == 2 && !slices.Contains(now, before[0]) && !slices.Contains(now, before[1])
	})
	want(t, gafferEnv(t, t.TempDir(), env, "", "restart", "other.idle"), 0, "restarted")
	waitFor(t, 20*time.Second, "idle started", func() bool { a, _ := cl.JobActive(ctx, "other.idle"); return a })
	r = gafferEnv(t, t.TempDir(), env, "", "restart", "--app", "default", "nosuch")
	if r.Code != 1 || !strings.Contains(r.Stderr, "'nosuch' not found") {
		t.Errorf("restart nosuch: %d %q", r.Code, r.Stderr)
	}
}

// TestPsUptimeAndUnits: ps says that "up for" is the uptime, and gives
// its figures with their units.
func TestPsUptimeAndUnits(t *testing.T) {
	addr, cl := startGafferd(t)
	ctx := context.Background()
	web := gaffer.NewJobConfig("web", "sleep 300")
	if err := cl.Load(ctx, "myapp", web); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "web", func() bool { a, _ := cl.JobActive(ctx, "myapp.web"); return a })
	r := gafferEnv(t, t.TempDir(), []string{"GAFFERD_ADDRESS=" + addr}, "", "ps", "myapp")
	want(t, r, 0, "=== web: `sleep 300`")
	if !regexp.MustCompile(`(?m)^Total CPU: \d+\.\d\d% Total MEM: \d+\.\d\d% \(\d+(\.\d)? (B|KiB|MiB)\); up for: time since start$`).MatchString(r.Stdout) {
		t.Errorf("ps header:\n%s", r.Stdout)
	}
	if !regexp.MustCompile(`(?m)^web\.\d+: up for \d+s$`).MatchString(r.Stdout) {
		t.Errorf("ps process line:\n%s", r.Stdout)
	}
}
