package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// End-to-end tests of the persisted runtime state (state.go): a real
// gafferd, driven over its unix socket, stopped with SIGTERM or killed
// with SIGKILL, and started again on the same data directory.

// stProc is one run of gafferd (see runDaemon in daemon_test.go).
type stProc struct{ *daemon }

// stSetup writes the config (a file job "default.fjob") and a job script
// that exits once gafferd is gone, so a SIGKILL leaves nothing behind.
func stSetup(t *testing.T) (dir, script string) {
	dir = t.TempDir()
	script = filepath.Join(dir, "watch.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nwhile kill -0 $PPID 2>/dev/null; do sleep 0.1; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := "[gaffer]\nrequire_key = false\ndata_dir = data\nhttp_endpoints = sock\n" +
		"[endpoint:sock]\nbind = unix:" + filepath.Join(dir, "g.sock") + "\n" +
		"[process:fjob]\ncmd = " + script + "\nnumprocesses = 1\n"
	if err := os.WriteFile(filepath.Join(dir, "gaffer.ini"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, script
}

func stStart(t *testing.T, dir string) *stProc {
	t.Helper()
	return &stProc{runDaemon(t, dir)}
}

// call makes a request and returns the status and the decoded body.
func (p *stProc) call(method, path, body string) (int, map[string]any, error) {
	req, err := http.NewRequest(method, "http://localhost"+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var v map[string]any
	json.Unmarshal(data, &v)
	return resp.StatusCode, v, nil
}

func (p *stProc) must(method, path, body string) map[string]any {
	p.t.Helper()
	code, v, err := p.call(method, path, body)
	if err != nil || code >= 300 {
		p.t.Fatalf("%s %s: %d %v %v", method, path, code, v, err)
	}
	return v
}

func (p *stProc) numprocesses(full string) int {
	p.t.Helper()
	sid, name, _ := strings.Cut(full, ".")
	v := p.must("GET", "/jobs/"+sid+"/"+name+"/numprocesses", "")
	n, _ := v["numprocesses"].(float64)
	return int(n)
}

func (p *stProc) pids(full string) int {
	sid, name, _ := strings.Cut(full, ".")
	_, v, _ := p.call("GET", "/jobs/"+sid+"/"+name+"/pids", "")
	l, _ := v["pids"].([]any)
	return len(l)
}

func (p *stProc) stop(sig syscall.Signal) {
	p.t.Helper()
	p.signalExit(sig, 30*time.Second, fmt.Sprintf("gafferd did not exit on %v", sig))
}

// NEEDS the daemon wiring of state.go (OpenState/MergeState/StateRecorder
// in Daemon.Run): fails until daemon.go restores the state.
func TestStateSurvivesSIGTERM(t *testing.T) {
	dir, script := stSetup(t)
	g := stStart(t, dir)
	g.must("POST", "/jobs/api", fmt.Sprintf(`{"name": "w", "cmd": %q, "numprocesses": 1}`, script))
	if v := g.must("POST", "/jobs/api/w/numprocesses", `{"scale": 2}`); v["numprocesses"] != float64(3) {
		t.Fatalf("scale answered %v", v)
	}
	g.must("POST", "/jobs/default/fjob/numprocesses", `{"scale": "=2"}`)
	g.must("POST", "/jobs/api", fmt.Sprintf(`{"name": "idle", "cmd": %q}`, script))
	g.must("POST", "/jobs/api/idle/state", `0`)
	g.waitFor(10*time.Second, "3 processes of api.w", func() bool { return g.pids("api.w") == 3 })
	g.stop(syscall.SIGTERM)

	if _, err := os.Stat(filepath.Join(dir, "data", "state.json")); err != nil {
		t.Fatalf("no state file: %v", err)
	}
	g = stStart(t, dir)
	if n := g.numprocesses("api.w"); n != 3 {
		t.Fatalf("api.w restored with numprocesses %d, want 3", n)
	}
	if n := g.numprocesses("default.fjob"); n != 2 {
		t.Fatalf("file job restored with numprocesses %d, want the API's 2", n)
	}
	g.waitFor(10*time.Second, "api.w running its 3 processes", func() bool { return g.pids("api.w") == 3 })
	g.waitFor(10*time.Second, "fjob running its 2 processes", func() bool { return g.pids("default.fjob") == 2 })
	if n := g.pids("api.idle"); n != 0 {
		t.Fatalf("stopped job api.idle restored with %d processes", n)
	}
	resp, err := g.client.Get("http://localhost/jobs/api/idle/state")
	if err != nil {
		t.Fatal(err)
	}
	state, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(state) != "0" {
		t.Fatalf("api.idle state %q, want 0 (stopped)", state)
	}
}

// NEEDS the daemon wiring of state.go, including StateRecorder.Middleware
// on the API handlers (an answered change is on disk).
func TestStateConsistentAfterSIGKILLDuringBurst(t *testing.T) {
	dir, script := stSetup(t)
	g := stStart(t, dir)
	// A burst of changes from 4 clients: each loads its jobs one after
	// the other (not started, so that no process is spawned) and scales
	// each once it is loaded. acked[c] counts the answered operations of
	// client c; the kill comes in the middle.
	const clients = 4
	var acked [clients]atomic.Int64
	var total atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("c%dj%d", c, i)
				code, _, err := g.call("POST", "/jobs/burst", fmt.Sprintf(`{"name": %q, "cmd": %q, "numprocesses": 0, "start": false}`, name, script))
				if err != nil || code != 200 {
					return
				}
				acked[c].Add(1)
				total.Add(1)
				code, _, err = g.call("POST", "/jobs/burst/"+name+"/numprocesses", `{"scale": "=7"}`)
				if err != nil || code != 200 {
					return
				}
				acked[c].Add(1)
				total.Add(1)
			}
		}(c)
	}
	g.waitFor(30*time.Second, "a burst of answered changes", func() bool { return total.Load() >= 60 })
	g.Cmd.Process.Signal(syscall.SIGKILL)
	<-g.Done
	close(stop)
	wg.Wait()

	g = stStart(t, dir)
	if aside, _ := filepath.Glob(filepath.Join(dir, "data", "state.json.corrupt-*")); len(aside) != 0 {
		t.Fatalf("state file found corrupt after SIGKILL: %v", aside)
	}
	var jobs struct {
		Jobs []string `json:"jobs"`
	}
	resp, err := g.client.Get("http://localhost/jobs/burst")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&jobs)
	resp.Body.Close()
	have := map[string]bool{}
	for _, j := range jobs.Jobs {
		have[strings.TrimPrefix(j, "burst.")] = true
	}
	for c := 0; c < clients; c++ {
		ops := int(acked[c].Load())
		// Every answered load is there; so is at most the one in flight.
		for i := 0; ; i++ {
			name := fmt.Sprintf("c%dj%d", c, i)
			if !have[name] {
				if 2*i < ops {
					t.Errorf("client %d: answered load of %s lost (%d answered operations)", c, name, ops)
				}
				if have[fmt.Sprintf("c%dj%d", c, i+1)] {
					t.Errorf("client %d: %s missing but a later job restored", c, name)
				}
				break
			}
			delete(have, name)
			n := g.numprocesses("burst." + name)
			switch {
			case 2*i+1 < ops && n != 7:
				t.Errorf("%s: answered scale lost (numprocesses %d)", name, n)
			case n != 7 && n != 0:
				t.Errorf("%s: numprocesses %d, want 0 or 7", name, n)
			}
		}
	}
	if len(have) != 0 {
		t.Errorf("unexpected jobs restored: %v", have)
	}
}

// The README's rule: an API change of a file job survives a restart until
// the file itself changes that job; then the file's version runs, at a
// restart as at a SIGHUP.
func TestStateFileEditWinsAfterRestart(t *testing.T) {
	dir, script := stSetup(t)
	g := stStart(t, dir)
	g.must("POST", "/jobs/default/fjob/numprocesses", `{"scale": "=3"}`)
	g.waitFor(10*time.Second, "3 processes of fjob", func() bool { return g.pids("default.fjob") == 3 })
	g.stop(syscall.SIGTERM)

	// No edit: the API's numprocesses survives.
	g = stStart(t, dir)
	if n := g.numprocesses("default.fjob"); n != 3 {
		t.Fatalf("unedited file: numprocesses %d after restart, want the API's 3", n)
	}
	g.waitFor(10*time.Second, "3 processes of fjob", func() bool { return g.pids("default.fjob") == 3 })
	g.stop(syscall.SIGTERM)

	// Edit the job in the file (numprocesses and cmd) while gafferd is
	// stopped: the file's version runs.
	script2 := filepath.Join(dir, "watch2.sh")
	data, _ := os.ReadFile(script)
	if err := os.WriteFile(script2, data, 0o755); err != nil {
		t.Fatal(err)
	}
	ini := filepath.Join(dir, "gaffer.ini")
	cfg, _ := os.ReadFile(ini)
	edited := strings.Replace(strings.Replace(string(cfg), "numprocesses = 1", "numprocesses = 2", 1), "cmd = "+script, "cmd = "+script2, 1)
	if edited == string(cfg) {
		t.Fatal("the config was not edited")
	}
	os.WriteFile(ini, []byte(edited), 0o644)
	g = stStart(t, dir)
	if n := g.numprocesses("default.fjob"); n != 2 {
		t.Fatalf("edited file: numprocesses %d after restart, want the file's 2", n)
	}
	if cmd := g.job("default.fjob").Config["cmd"]; cmd != script2 {
		t.Fatalf("edited file: cmd %v after restart, want the file's %s", cmd, script2)
	}
	g.waitFor(10*time.Second, "2 processes of fjob", func() bool { return g.pids("default.fjob") == 2 })

	// From here the file's version is the one in force: a new API change
	// survives the next restart again.
	g.must("POST", "/jobs/default/fjob/numprocesses", `{"scale": "=4"}`)
	g.stop(syscall.SIGTERM)
	g = stStart(t, dir)
	if n := g.numprocesses("default.fjob"); n != 4 {
		t.Fatalf("after the edit, an API change: numprocesses %d after restart, want 4", n)
	}
	if cmd := g.job("default.fjob").Config["cmd"]; cmd != script2 {
		t.Fatalf("cmd %v, want %s", cmd, script2)
	}
}
