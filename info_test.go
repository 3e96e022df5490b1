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
