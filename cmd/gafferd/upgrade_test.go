package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer/cmd/internal/testenv"
)

// End-to-end tests of the upgrade in place (SIGUSR2, POST /upgrade): the
// real gafferd binary, copied where the test can replace it.

// counterJob prints numbered lines ("<name> <n>") without end.
func counterJob(name string) string {
	return fmt.Sprintf(`
[process:%s]
cmd = sh -c 'i=0; while :; do i=$((i+1)); echo "%s $i"; sleep 0.005; done'
redirect_output = out
graceful_timeout = 2
`, name, name)
}

// ownBinary copies gafferd into dir/bin, where the test may replace it.
func ownBinary(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(gafferdBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin", "gafferd")
	os.MkdirAll(filepath.Dir(bin), 0o755)
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// replaceBinary puts data at bin the way a new build lands: a new file
// renamed over the old one (the running binary cannot be written).
func replaceBinary(t *testing.T, bin string, data []byte) {
	t.Helper()
	tmp := bin + ".new"
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
}

// startDaemonBin is startDaemon with the binary bin.
func startDaemonBin(t *testing.T, bin, dir, cfg string, extra ...string) *daemon {
	t.Helper()
	cfg = strings.ReplaceAll(cfg, "%SOCK%", filepath.Join(dir, "g.sock"))
	if err := os.WriteFile(filepath.Join(dir, "gaffer.ini"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "g.sock")
	d := &daemon{t: t, dir: dir, sock: sock, client: testenv.UnixClient(sock, 10*time.Second)}
	args := append([]string{"-c", filepath.Join(dir, "gaffer.ini")}, extra...)
	d.Proc = testenv.Start(t, "gafferd", exec.Command(bin, args...))
	d.Lenient = true
	d.waitFor(10*time.Second, "the API to answer", func() bool {
		resp, err := d.client.Get("http://localhost/ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return d
}

// upgrades is GET /'s count of upgrades (-1 when the API does not answer).
func (d *daemon) upgrades(key string) int {
	req, _ := http.NewRequest("GET", "http://localhost/", nil)
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var v struct{ Upgrades int }
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&v) != nil {
		return -1
	}
	return v.Upgrades
}

// post sends POST path with key and returns the status and body.
func (d *daemon) post(path, key, body string) (int, string) {
	req, _ := http.NewRequest("POST", "http://localhost"+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sseReader follows the eventsource feed of one stream, reconnecting with
// Last-Event-ID whenever the connection ends, and keeps every event.
type sseReader struct {
	mu      sync.Mutex
	ids     []uint64
	data    bytes.Buffer
	reconns int
	gaps    []string
	stop    chan struct{}
	done    chan struct{}
}

func followStream(d *daemon, pid int, label string) *sseReader {
	r := &sseReader{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Transport: d.client.Transport} // no timeout: a feed lasts
	go func() {
		defer close(r.done)
		var last uint64
		resumed := false
		for {
			select {
			case <-r.stop:
				return
			default:
			}
			req, _ := http.NewRequest("GET", fmt.Sprintf("http://localhost/streams/%d/%s?feed=eventsource&heartbeat=1", pid, label), nil)
			if resumed {
				req.Header.Set("Last-Event-ID", strconv.FormatUint(last, 10))
			} else {
				req.URL.RawQuery += "&since=0"
			}
			ctxDone := make(chan struct{})
			go func() {
				select {
				case <-r.stop:
				case <-ctxDone:
				}
			}()
			resp, err := client.Do(req)
			if err != nil {
				close(ctxDone)
				time.Sleep(20 * time.Millisecond)
				continue
			}
			if resumed {
				r.mu.Lock()
				r.reconns++
				r.mu.Unlock()
			}
			resumed = true
			br := bufio.NewReader(resp.Body)
			var ev string
			var id uint64
			var lines []string
			hasData := false
			stopRead := make(chan struct{})
			go func() {
				select {
				case <-r.stop:
					resp.Body.Close()
				case <-stopRead:
				}
			}()
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					break
				}
				line = strings.TrimSuffix(line, "\n")
				switch {
				case line == "":
					if hasData {
						r.mu.Lock()
						if ev == "gap" {
							r.gaps = append(r.gaps, strings.Join(lines, "\n"))
						} else if ev != "heartbeat" {
							r.ids = append(r.ids, id)
							r.data.WriteString(strings.Join(lines, "\n"))
							last = id
						}
						r.mu.Unlock()
					}
					ev, id, lines, hasData = "", 0, nil, false
				case strings.HasPrefix(line, "event: "):
					ev = line[len("event: "):]
				case strings.HasPrefix(line, "id: "):
					id, _ = strconv.ParseUint(line[len("id: "):], 10, 64)
				case strings.HasPrefix(line, "data: "):
					lines = append(lines, line[len("data: "):])
					hasData = true
				case line == "data:":
					lines = append(lines, "")
					hasData = true
				}
			}
			close(stopRead)
			close(ctxDone)
			resp.Body.Close()
		}
	}()
	return r
}

// lines returns the complete lines received so far.
func (r *sseReader) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	text := r.data.String()
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		return strings.Split(text[:i], "\n")
	}
	return nil
}

func (r *sseReader) end() {
	close(r.stop)
	<-r.done
}

// checkCounted checks that lines are "<name> 1", "<name> 2", … each once.
func checkCounted(t *testing.T, name string, lines []string) {
	t.Helper()
	for i, l := range lines {
		if want := fmt.Sprintf("%s %d", name, i+1); l != want {
			lo, hi := max(0, i-3), min(len(lines), i+4)
			t.Fatalf("%s: line %d is %q, want %q (around it: %q)", name, i+1, l, want, lines[lo:hi])
		}
	}
}

func TestUpgradeKeepsChildrenAndEveryLine(t *testing.T) {
	dir := t.TempDir()
	bin := ownBinary(t, dir)
	d := startDaemonBin(t, bin, dir, baseConfig+counterJob("a")+counterJob("b")+counterJob("c"))
	jobs := []string{"default.a", "default.b", "default.c"}
	d.waitFor(10*time.Second, "3 jobs running", func() bool {
		for _, j := range jobs {
			if d.job(j).Running != 1 {
				return false
			}
		}
		return true
	})
	inst := d.instanceOf("default.a")
	t.Cleanup(func() { killMarked(inst) })
	pids := map[string][]int{}
	internal := map[string]int{}
	for _, j := range jobs {
		pids[j] = d.osPids(j)
		internal[j] = d.job(j).Processes[0]
	}
	readers := map[string]*sseReader{}
	for _, j := range jobs {
		readers[j] = followStream(d, internal[j], "out")
	}
	waitLines := func(n int, what string) {
		d.waitFor(20*time.Second, what, func() bool {
			for _, r := range readers {
				if len(r.lines()) < n {
					return false
				}
			}
			return true
		})
	}
	waitLines(50, "50 lines of each job")

	// Upgrade 1: SIGUSR2, the binary replaced by a new build (a copy).
	data, _ := os.ReadFile(bin)
	replaceBinary(t, bin, data)
	if err := d.Cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	d.waitFor(30*time.Second, "the first upgrade", func() bool { return d.upgrades("") == 1 })
	before := map[string]int{}
	for j, r := range readers {
		before[j] = len(r.lines())
	}
	d.waitFor(20*time.Second, "lines after the first upgrade", func() bool {
		for j, r := range readers {
			if len(r.lines()) < before[j]+50 {
				return false
			}
		}
		return true
	})

	// Upgrade 2: POST /upgrade (answered before the exec).
	if code, body := d.post("/upgrade", "", ""); code != 202 {
		t.Fatalf("POST /upgrade: %d %s", code, body)
	}
	d.waitFor(30*time.Second, "the second upgrade", func() bool { return d.upgrades("") == 2 })
	// Upgrade 3: gaffer upgrade, which waits for the new instance.
	out, err := exec.Command(testenv.Binary(t, "gaffer"), "--endpoint", "unix:"+d.sock, "upgrade").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "gafferd upgraded") || d.upgrades("") != 3 {
		t.Fatalf("gaffer upgrade: %v %s (GET / says %d upgrades)", err, out, d.upgrades(""))
	}
	for j, r := range readers {
		before[j] = len(r.lines())
	}
	d.waitFor(20*time.Second, "lines after the second upgrade", func() bool {
		for j, r := range readers {
			if len(r.lines()) < before[j]+50 {
				return false
			}
		}
		return true
	})
	for _, r := range readers {
		r.end()
	}

	for _, j := range jobs {
		ji := d.job(j)
		if got := d.osPids(j); !slices.Equal(got, pids[j]) {
			t.Errorf("%s: OS pids %v after the upgrades, were %v", j, got, pids[j])
		}
		if ji.Processes[0] != internal[j] {
			t.Errorf("%s: internal pid %d after the upgrades, was %d", j, ji.Processes[0], internal[j])
		}
		if ji.Restarts != 0 {
			t.Errorf("%s: %d restarts after the upgrades", j, ji.Restarts)
		}
		r := readers[j]
		if r.reconns < 3 {
			t.Errorf("%s: the feed reconnected %d times, want one per upgrade", j, r.reconns)
		}
		if len(r.gaps) > 0 {
			t.Errorf("%s: gaps in the feed: %v", j, r.gaps)
		}
		for i := 1; i < len(r.ids); i++ {
			if r.ids[i] != r.ids[i-1]+1 {
				t.Fatalf("%s: event ids go from %d to %d", j, r.ids[i-1], r.ids[i])
			}
		}
		lines := r.lines()
		checkCounted(t, j[len("default."):], lines)
		t.Logf("%s: %d lines, %d events, %d reconnections, none lost or repeated", j, len(lines), len(r.ids), r.reconns)
	}
	if inst2 := d.instanceOf("default.a"); inst2 != inst {
		t.Fatalf("instance %s after the upgrades, was %s", inst2, inst)
	}

	// kill -9 of the upgraded gafferd: every child dies with it, those
	// spawned before the upgrades and one spawned after.
	if code, body := d.post("/jobs/default/a/numprocesses", "", `{"scale": "=2"}`); code != 200 {
		t.Fatalf("scale: %d %s", code, body)
	}
	d.waitFor(10*time.Second, "the process spawned after the upgrades", func() bool { return d.job("default.a").Running == 2 })
	all := d.osPids("default.a")
	// No child inherits what the handoff passed (the data directory's
	// lock, which would outlive gafferd with it).
	for _, p := range all {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p))
		for _, e := range ents {
			if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p, e.Name())); target == dir {
				t.Fatalf("child %d holds the data directory (fd %s): an inherited descriptor leaked", p, e.Name())
			}
		}
	}
	for _, j := range jobs[1:] {
		all = append(all, d.osPids(j)...)
	}
	d.kill9()
	waitUntil(t, 10*time.Second, "the children to die with gafferd", func() bool {
		for _, p := range all {
			if processAlive(p) {
				return false
			}
		}
		return true
	})
	d2 := startDaemonBin(t, bin, dir, baseConfig+counterJob("a")+counterJob("b")+counterJob("c"))
	// The state file kept the scale of default.a.
	d2.waitFor(10*time.Second, "the jobs again", func() bool {
		return d2.job("default.a").Running == 2 && d2.job("default.b").Running == 1 && d2.job("default.c").Running == 1
	})
	inst3 := d2.instanceOf("default.a")
	t.Cleanup(func() { killMarked(inst3) })
	if n := countMarked(inst); n != 0 {
		t.Fatalf("%d processes of the upgraded gafferd run after its kill -9 and a fresh start", n)
	}
	// Its children (the shells; their short-lived sleeps are not counted).
	children := 0
	for _, list := range markedProcs(inst3) {
		for _, p := range list {
			if parentOf(p) == d2.Cmd.Process.Pid {
				children++
			}
		}
	}
	if children != 4 {
		t.Fatalf("the fresh gafferd has %d children, want 4: %v", children, markedProcs(inst3))
	}
	d2.stop()
}

func TestUpgradeRefusedKeepsTheRunningGafferd(t *testing.T) {
	dir := t.TempDir()
	bin := ownBinary(t, dir)
	admin := testenv.AdminKey(t, dir, "admin", "pw")
	d := startDaemonBin(t, bin, dir, baseConfig+counterJob("a"), "--require-key", "--data-dir", dir)
	code, body := d.post("/keys", admin, `{"permissions":{"manage":["*"]}}`)
	var k struct {
		APIKey string `json:"api_key"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &k) != nil || k.APIKey == "" {
		t.Fatalf("POST /keys: %d %s", code, body)
	}
	get := func(path string, v any) int {
		req, _ := http.NewRequest("GET", "http://localhost"+path, nil)
		req.Header.Set("X-Api-Key", admin)
		resp, err := d.client.Do(req)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(v)
		return resp.StatusCode
	}
	var ji jobInfo
	d.waitFor(10*time.Second, "the job", func() bool { return get("/jobs/default/a", &ji) == 200 && ji.Running == 1 })
	var pi procInfo
	get("/"+strconv.Itoa(ji.Processes[0]), &pi)
	osPid := pi.OSPid
	t.Cleanup(func() { killMarked(pi.Env["GAFFER_INSTANCE"]) })

	// A key that may manage every job is still not an admin.
	if code, body := d.post("/upgrade", k.APIKey, ""); code != 403 {
		t.Fatalf("POST /upgrade with a non-admin key: %d %s, want 403", code, body)
	}
	if code, _ := d.post("/upgrade", "", ""); code != 401 {
		t.Fatalf("POST /upgrade without a key: %d, want 401", code)
	}

	// A broken new binary: refused, the running gafferd goes on.
	replaceBinary(t, bin, []byte("#!/bin/sh\necho this build is broken >&2\nexit 3\n"))
	code, body = d.post("/upgrade", admin, "")
	if code != 503 || !strings.Contains(body, "failed its check") || !strings.Contains(body, "broken") {
		t.Fatalf("POST /upgrade with a broken binary: %d %s, want 503 naming the failed check", code, body)
	}
	// Not a gafferd at all (no handoff protocol).
	replaceBinary(t, bin, []byte("#!/bin/sh\necho hello\n"))
	if code, body := d.post("/upgrade", admin, ""); code != 503 || !strings.Contains(body, "does not speak") {
		t.Fatalf("POST /upgrade with a binary that is no gafferd: %d %s, want 503", code, body)
	}
	// SIGUSR2 too: logged, nothing else happens.
	d.Cmd.Process.Signal(syscall.SIGUSR2)
	d.waitFor(30*time.Second, "the refusal in the log", func() bool {
		return strings.Count(d.output(), "upgrade did not happen") >= 3
	})
	if d.Exited() {
		t.Fatal("gafferd exited after refused upgrades")
	}
	if n := d.upgrades(admin); n != 0 {
		t.Fatalf("GET / says %d upgrades, want 0", n)
	}
	get("/jobs/default/a", &ji)
	get("/"+strconv.Itoa(ji.Processes[0]), &pi)
	if pi.OSPid != osPid || ji.Restarts != 0 {
		t.Fatalf("after the refused upgrades: os_pid %d (was %d), %d restarts", pi.OSPid, osPid, ji.Restarts)
	}
	d.stop()
}

// parentOf returns the parent pid of pid (0 when unknown).
func parentOf(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}
