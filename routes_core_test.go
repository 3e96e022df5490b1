package gaffer

import "testing"

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
