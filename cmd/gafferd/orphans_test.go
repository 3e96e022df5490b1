package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer/cmd/internal/testenv"
)

// End-to-end tests of what a gafferd killed with SIGKILL leaves behind:
// the processes are counted by the markers of their environment
// (GAFFER_INSTANCE, GAFFER_JOB), by a scan of /proc.

// markedProcs returns the live (non-zombie) processes whose
// GAFFER_INSTANCE is one of insts, by job.
func markedProcs(insts ...string) map[string][]int {
	want := map[string]bool{}
	for _, i := range insts {
		want[i] = true
	}
	out := map[string][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !processAlive(pid) {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		var inst, job string
		for _, kv := range strings.Split(string(data), "\x00") {
			if v, ok := strings.CutPrefix(kv, "GAFFER_INSTANCE="); ok {
				inst = v
			}
			if v, ok := strings.CutPrefix(kv, "GAFFER_JOB="); ok {
				job = v
			}
		}
		if want[inst] {
			out[job] = append(out[job], pid)
		}
	}
	for _, pids := range out {
		sort.Ints(pids)
	}
	return out
}

// killMarked ends what a failed test left behind (processes this test
// started, found by the instance ids it saw).
func killMarked(insts ...string) {
	for _, pids := range markedProcs(insts...) {
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
	removeInstanceCgroups(insts...) // the cgroups of processes no gafferd stopped
}

func countMarked(insts ...string) int {
	n := 0
	for _, pids := range markedProcs(insts...) {
		n += len(pids)
	}
	return n
}

// instanceOf returns the GAFFER_INSTANCE of a job's first process.
func (d *daemon) instanceOf(job string) string {
	d.t.Helper()
	ji := d.job(job)
	if len(ji.Processes) == 0 {
		d.t.Fatalf("job %s has no process", job)
	}
	var pi procInfo
	if code := d.getJSON("/"+strconv.Itoa(ji.Processes[0]), &pi); code != 200 {
		d.t.Fatalf("GET /%d: %d", ji.Processes[0], code)
	}
	return pi.Env["GAFFER_INSTANCE"]
}

func (d *daemon) kill9() {
	d.t.Helper()
	d.signalExit(syscall.SIGKILL, 10*time.Second, "gafferd did not die on SIGKILL")
}

func (d *daemon) stop() {
	d.t.Helper()
	d.signalExit(syscall.SIGTERM, 30*time.Second, "gafferd did not stop on SIGTERM")
}

var waitUntil = testenv.WaitFor

// The escaping job's shell starts a grandchild in a session of its own
// from a subshell that exits: it is re-parented, out of every group.
const orphanConfig = baseConfig + `
[process:sleeper]
cmd = sleep 300
numprocesses = 3
graceful_timeout = 2

[process:escaper]
cmd = sh -c '(setsid sleep 301 &); exec sleep 302'
graceful_timeout = 2
`

func TestKill9LeavesNothingAndRestartDoesNotDuplicate(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, orphanConfig)
	d.waitFor(10*time.Second, "4 processes", func() bool {
		return d.job("default.sleeper").Running == 3 && d.job("default.escaper").Running == 1
	})
	first := d.instanceOf("default.sleeper")
	insts := []string{first}
	t.Cleanup(func() { killMarked(insts...) })
	// 3 sleepers, the escaper and its grandchild.
	d.waitFor(10*time.Second, "the escaped grandchild", func() bool { return countMarked(first) == 5 })

	d.kill9()
	// The children die with gafferd (parent-death signal); the escaped
	// grandchild, never a child, survives.
	waitUntil(t, 10*time.Second, "the children to die with gafferd", func() bool {
		m := markedProcs(first)
		return len(m["default.sleeper"]) == 0 && len(m["default.escaper"]) == 1
	})
	orphan := markedProcs(first)["default.escaper"][0]

	d2 := runDaemon(t, dir)
	// The leftovers are ended before any job starts, so before the API
	// answers.
	if n := countMarked(first); n != 0 {
		t.Fatalf("%d processes of the killed gafferd still run after the restart: %v", n, markedProcs(first))
	}
	if processAlive(orphan) {
		t.Fatalf("the escaped grandchild %d survived the restart", orphan)
	}
	d2.waitFor(10*time.Second, "the jobs", func() bool {
		return d2.job("default.sleeper").Running == 3 && d2.job("default.escaper").Running == 1
	})
	second := d2.instanceOf("default.sleeper")
	insts = append(insts, second)
	if second == first {
		t.Fatal("the restarted gafferd has the same instance id")
	}
	d2.waitFor(10*time.Second, "the new escaped grandchild", func() bool { return countMarked(second) == 5 })
	if got := markedProcs(first, second); len(got["default.sleeper"]) != 3 || len(got["default.escaper"]) != 2 {
		t.Fatalf("after kill -9 and restart: %v, want 3 sleepers and the escaper with its grandchild", got)
	}
	if !strings.Contains(d2.output(), "ended a process left by the previous gafferd") {
		t.Fatalf("the ending of the leftovers is not logged:\n%s", d2.output())
	}
	t.Logf("after kill -9 and restart: %d processes of the new instance, %d of the killed one", countMarked(second), countMarked(first))

	d2.stop()
	deadline := time.Now().Add(10 * time.Second)
	for countMarked(first, second) != 0 {
		if time.Now().After(deadline) {
			left := markedProcs(first, second)
			var desc []string
			for job, pids := range left {
				for _, p := range pids {
					stat, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
					cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline")
					desc = append(desc, fmt.Sprintf("%s %d %q stat=%s", job, p, strings.ReplaceAll(string(cmd), "\x00", " "), stat))
				}
			}
			t.Fatalf("left after the stop: %s\n%s", strings.Join(desc, "; "), d2.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const detachConfig = baseConfig + `
[process:d]
cmd = sleep 303
numprocesses = 2
detach = true
graceful_timeout = 2
`

func TestDetachedSurviveAndAreAdopted(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, detachConfig)
	d.waitFor(10*time.Second, "2 detached processes", func() bool { return d.job("default.d").Running == 2 })
	pids := d.osPids("default.d")
	sort.Ints(pids)
	inst := d.instanceOf("default.d")
	insts := []string{inst}
	t.Cleanup(func() { killMarked(insts...) })
	// No pipe to gafferd: stdio is /dev/null.
	for _, p := range pids {
		for _, fd := range []string{"0", "1", "2"} {
			if target, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(p), "fd", fd)); target != os.DevNull {
				t.Fatalf("detached process %d: fd %s is %q, want /dev/null", p, fd, target)
			}
		}
	}

	check := func(d *daemon, what string) {
		t.Helper()
		for _, p := range pids {
			if !processAlive(p) {
				t.Fatalf("%s: detached process %d is gone", what, p)
			}
		}
		d.waitFor(10*time.Second, "the job", func() bool { return d.job("default.d").Running == 2 })
		got := d.osPids("default.d")
		sort.Ints(got)
		if len(got) != 2 || got[0] != pids[0] || got[1] != pids[1] {
			t.Fatalf("%s: the job runs %v, want the adopted %v", what, got, pids)
		}
		if n := len(markedProcs(inst)["default.d"]); n != 2 {
			t.Fatalf("%s: %d detached processes run, want 2 (no duplicate)", what, n)
		}
	}

	d.stop()
	d = runDaemon(t, dir)
	check(d, "after a stop and a restart")
	d.kill9()
	d = runDaemon(t, dir)
	check(d, "after kill -9 and a restart")

	// An adopted process can be stopped: it ends and is replaced.
	insts = append(insts, d.instanceOfRunning())
	ji := d.job("default.d")
	var victim procInfo
	d.getJSON("/"+strconv.Itoa(ji.Processes[0]), &victim)
	req, _ := http.NewRequest("DELETE", "http://localhost/"+strconv.Itoa(ji.Processes[0]), nil)
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("DELETE of an adopted process: %d", resp.StatusCode)
	}
	waitUntil(t, 10*time.Second, "the adopted process to end", func() bool { return !processAlive(victim.OSPid) })
	d.waitFor(10*time.Second, "its replacement", func() bool {
		got := d.osPids("default.d")
		return len(got) == 2 && got[0] != victim.OSPid && got[1] != victim.OSPid
	})
	d.stop()
}

// instanceOfRunning reads the running gafferd's instance id from its
// process record.
func (d *daemon) instanceOfRunning() string {
	d.t.Helper()
	data, err := os.ReadFile(filepath.Join(d.dir, "instance.json"))
	if err != nil {
		d.t.Fatal(err)
	}
	var doc struct {
		Instance string `json:"instance"`
	}
	if err := json.Unmarshal(data, &doc); err != nil || doc.Instance == "" {
		d.t.Fatalf("instance.json: %v %s", err, data)
	}
	return doc.Instance
}

// A second SIGTERM during the graceful stop stops at once: the child that
// ignores SIGTERM would otherwise hold gafferd for its 300 s.
func TestSecondStopSignalKillsAtOnce(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, baseConfig+`
[process:stubborn]
cmd = sh -c 'trap "" TERM; echo ignoring; exec sleep 310'
redirect_output = stdout, stderr
graceful_timeout = 300
`)
	d.waitFor(10*time.Second, "the child to ignore SIGTERM", func() bool {
		return strings.Contains(d.output(), "ignoring")
	})
	pids := d.osPids("default.stubborn")
	t.Cleanup(func() {
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
	})
	d.Cmd.Process.Signal(syscall.SIGTERM)
	d.waitFor(10*time.Second, "the graceful stop to begin", func() bool {
		return strings.Contains(d.output(), "msg=stopping")
	})
	select {
	case <-d.Done:
		t.Fatal("gafferd did not wait for the graceful timeout")
	case <-time.After(500 * time.Millisecond):
	}
	d.signalExit(syscall.SIGTERM, 30*time.Second, "gafferd still waits after a second SIGTERM")
	for _, p := range pids {
		if processAlive(p) {
			t.Fatalf("process %d survived the second stop signal", p)
		}
	}
	if !strings.Contains(d.output(), "second stop signal") {
		t.Fatalf("not logged:\n%s", d.output())
	}
}
