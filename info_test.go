package gaffer

import (
	"encoding/json"
	"testing"
	"time"
)

// TestJobInfoJSONFollowsChanges checks that the cached encoding of job
// info is refreshed by every change and equals a fresh encoding.
func TestJobInfoJSONFollowsChanges(t *testing.T) {
	m := newTestManager(t)
	if err := m.Load("default", childConfig(t, "c", "sleep", nil), nil, true); err != nil {
		t.Fatal(err)
	}
	check := func(want int) {
		t.Helper()
		data, err := m.JobInfoJSON("default.c", false)
		if err != nil {
			t.Fatal(err)
		}
		var got JobInfo
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		fresh, _ := m.JobInfo("default.c", false)
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(fresh)
		if string(a) != string(b) || got.MaxProcesses != want {
			t.Fatalf("cached %s\nfresh  %s", a, b)
		}
	}
	check(1)
	check(1)
	m.Scale("default.c", ScaleOp{Value: 2})
	check(3)
	m.StopJob("default.c")
	// The stopped processes exit a moment later (and that changes the
	// info again): compare once they are gone.
	waitFor(t, 10*time.Second, "the processes to exit", func() bool {
		pids, _ := m.Pids("")
		info, _ := m.JobInfo("default.c", false)
		return len(pids) == 0 && info.LastExit != nil
	})
	check(3)
	m.Unload("default.c")
	if _, err := m.JobInfoJSON("default.c", false); err == nil {
		t.Fatal("info of an unloaded job")
	}
}

// The job-info cache is per job: events about another job keep a job's
// cached JSON (the same bytes come back), and every event about the job
// itself, a commit's spawn (published without the job) included, renews
// it.
func TestJobInfoCacheIsPerJob(t *testing.T) {
	m := newTestManager(t)
	for _, n := range []string{"a", "b"} {
		if err := m.Load("default", childConfig(t, n, "sleep", nil), nil, true); err != nil {
			t.Fatal(err)
		}
	}
	get := func(full string) []byte {
		t.Helper()
		data, err := m.JobInfoJSON(full, false)
		if err != nil {
			t.Fatal(err)
		}
		fresh, _ := m.JobInfo(full, false)
		want, _ := json.Marshal(fresh)
		if string(data) != string(want)+"\n" {
			t.Fatalf("%s: cached %s\nfresh  %s", full, data, want)
		}
		return data
	}
	a := get("default.a")
	if b := get("default.a"); &a[0] != &b[0] {
		t.Fatal("a's info encoded twice without a change")
	}
	if _, err := m.Scale("default.b", ScaleOp{Value: 1}); err != nil {
		t.Fatal(err)
	}
	get("default.b")
	if b := get("default.a"); &a[0] != &b[0] {
		t.Fatal("an event about b renewed a's cached info")
	}
	if _, err := m.Commit("default.a", 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	var info JobInfo
	json.Unmarshal(get("default.a"), &info)
	if info.RunningOut != 1 {
		t.Fatalf("after a commit: running_out %d, want 1", info.RunningOut)
	}
}

// GET /jobs?details=1's body is the JSON of every readable job's info,
// as encoding the list at once gives it, with the cache cold or warm.
func TestAllJobInfoJSONMatchesEncoding(t *testing.T) {
	m := newTestManager(t)
	for _, n := range []string{"a", "b", "c"} {
		cfg := childConfig(t, n, "sleep", map[string]string{"API_TOKEN": "s3cret"})
		if err := m.Load("default", cfg, nil, n != "c"); err != nil {
			t.Fatal(err)
		}
	}
	show := func(full string) bool { return full == "default.a" }
	read := func(full string) bool { return full != "default.b" }
	check := func() {
		t.Helper()
		got, err := m.allJobInfoJSON(show, read)
		if err != nil {
			t.Fatal(err)
		}
		out := []JobInfo{}
		for _, in := range m.AllJobInfo(show) {
			if read(in.Name) {
				out = append(out, in)
			}
		}
		want, _ := json.Marshal(map[string]any{"jobs": out})
		if string(got) != string(want)+"\n" {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	}
	check()
	check()
	m.JobInfoJSON("default.c", true) // the other variant cached
	check()
	m.StartJob("default.c")
	check()
	empty, err := m.allJobInfoJSON(show, func(string) bool { return false })
	if err != nil || string(empty) != `{"jobs":[]}`+"\n" {
		t.Fatalf("no readable job: %s %v", empty, err)
	}
}

// An encoding taken before an event about its job, stored after it, is
// not served: the event found no cache entry to mark, so a new entry
// counts every event since as a change.
func TestJobInfoCacheStaleStoreIsNotServed(t *testing.T) {
	m := newTestManager(t)
	if err := m.Load("default", childConfig(t, "a", "sleep", nil), nil, false); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	gen := m.gen
	m.mu.Unlock()
	if _, err := m.Scale("default.a", ScaleOp{Value: 1}); err != nil { // an "update" event
		t.Fatal(err)
	}
	m.mu.Lock()
	j, _ := m.jobLocked("default.a")
	m.storeInfoLocked(j, 0, gen, []byte("taken before the update\n"))
	got := m.cachedInfoLocked(j, 0)
	m.mu.Unlock()
	if got != nil {
		t.Fatalf("served %q, taken before the job changed", got)
	}
}
