package gaffer

import (
	"fmt"
	"testing"
	"time"
)

// GET /jobs/<sid>/<job>/pids lists the committed processes too, as job
// info does (issue 14).
func TestRoutesJobPidsIncludeCommits(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	a.json("POST", "/jobs/app", childJSON(t, "w", "sleep", `, "numprocesses": 1`), 200)
	c := a.json("POST", "/jobs/app/w/commit", `{}`, 200)
	v := a.json("GET", "/jobs/app/w/pids", "", 200)
	pids, _ := v["pids"].([]any)
	info := a.json("GET", "/jobs/app/w", "", 200)
	procs, _ := info["processes"].([]any)
	if len(pids) != 2 || pids[1] != c["pid"] || len(procs) != 2 || pids[0] != procs[0] || pids[1] != procs[1] {
		t.Fatalf("job pids %v, job info processes %v, commit %v", pids, procs, c["pid"])
	}
}

// After DELETE /<pid> of a kept-alive process, the pid leaves GET /pids
// and GET /<pid> at once and GET /jobs/<sid>/<job>/pids lists its
// replacement (the original client's test_pids).
func TestRoutesStoppedPidLeavesAtOnce(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	a.json("POST", "/jobs/default", childJSON(t, "dummy", "ignoreterm", `, "redirect_output": ["out"]`), 200)
	p, _ := a.m.Process(1)
	st, _ := p.Stream("")
	waitFor(t, 10*time.Second, "the child to ignore SIGTERM", func() bool { return st.LastSeq() > 0 })
	a.json("DELETE", "/1", "", 202)
	if v := a.json("GET", "/pids", "", 200); fmt.Sprint(v["pids"]) != "[2]" {
		t.Fatalf("GET /pids after DELETE /1: %v", v)
	}
	a.json("GET", "/1", "", 404)
	if v := a.json("GET", "/jobs/default/dummy/pids", "", 200); fmt.Sprint(v["pids"]) != "[2]" {
		t.Fatalf("job pids after DELETE /1: %v", v)
	}
	if !alive(p.OSPid) {
		t.Fatal("the test needs the stopped process to be still stopping")
	}
}
