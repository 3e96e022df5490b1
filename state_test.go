package gaffer

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func stQuietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func stCfg(name string, n int) JobConfig {
	c := NewJobConfig(name, "/bin/sleep 100")
	c.NumProcesses = n
	return c
}

func TestStateRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	sf, jobs, err := OpenState(dir, stQuietLogger())
	if err != nil || len(jobs) != 0 {
		t.Fatalf("fresh state: %v %v", jobs, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v %v", fi, err)
	}
	a := stCfg("web", 2)
	a.Env = map[string]string{"API_TOKEN": "t0ps3cret", "X": "1"}
	a.Args = []string{"a b", "c"}
	a.GracefulTimeout = 1234567891 * time.Nanosecond
	f := DefaultFlapConfig()
	a.Flapping = &f
	a.UID = "1000"
	a.Logfile = "/tmp/x.log"
	a.LogfileMaxBytes = 1 << 20
	// The lifecycle settings round-trip too (restored after a restart).
	a.Ready, a.ReadyTimeout, a.Watchdog = "http://127.0.0.1:$PORT/ready", 12*time.Second, 1500*time.Millisecond
	a.DependsOn, a.RestartWith = []string{"s2.worker:completed", "db"}, []string{"db"}
	a.Health, a.HealthInterval, a.HealthTimeout, a.HealthRetries = "exec:check --quick", 7*time.Second, 250*time.Millisecond, 5
	a.Restart, a.SuccessExitCodes, a.RestartDelay, a.Essential = restartOnFailure, []int{0, 75}, [2]time.Duration{time.Second, time.Minute}, true
	b := stCfg("worker", 0)
	want := []StateJob{
		{Session: "default", Config: a, Target: 5, State: JobRunning, Origin: OriginAPI},
		{Session: "s2", Config: b, Target: 0, State: JobStopped, Origin: OriginFile, APIChanged: true},
		{Session: "s2", Config: stCfg("gone", 1), Target: 1, State: StateUnloaded, Origin: OriginFile, APIChanged: true},
	}
	if err := sf.Save(want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sf.Path())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode: %v %v", fi, err)
	}
	data, _ := os.ReadFile(sf.Path())
	if !bytes.Contains(data, []byte("t0ps3cret")) {
		t.Fatal("secrets must be saved (the file is 0600)")
	}
	_, got, err := OpenState(dir, stQuietLogger())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d jobs, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.Config.Equal(w.Config) || g.Config.GracefulTimeout != w.Config.GracefulTimeout ||
			g.Session != w.Session || g.Target != w.Target || g.State != w.State || g.Origin != w.Origin || g.APIChanged != w.APIChanged {
			t.Errorf("job %d: got %+v, want %+v", i, g, w)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("data dir holds %v, want only state.json", entries)
	}
}

func TestStateCorruptMovedAside(t *testing.T) {
	good := func(t *testing.T, dir string) []byte {
		sf, _, err := OpenState(dir, stQuietLogger())
		if err != nil {
			t.Fatal(err)
		}
		if err := sf.Save([]StateJob{{Session: "default", Config: stCfg("web", 1), Target: 1, State: JobRunning, Origin: OriginAPI}}); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(sf.Path())
		return data
	}
	cases := map[string]func([]byte) []byte{
		"truncated": func(d []byte) []byte { return d[:len(d)/2] },
		"empty":     func([]byte) []byte { return nil },
		"garbage":   func([]byte) []byte { return []byte("\x00\x01not json") },
		"format":    func(d []byte) []byte { return bytes.Replace(d, []byte(`"format": 1`), []byte(`"format": 99`), 1) },
		"state": func(d []byte) []byte {
			return bytes.Replace(d, []byte(`"state": "running"`), []byte(`"state": "dancing"`), 1)
		},
		"trailing": func(d []byte) []byte { return append(d, []byte(`{}`)...) },
	}
	for name, mangle := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			orig := mangle(good(t, dir))
			if err := os.WriteFile(filepath.Join(dir, StateFileName), orig, 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			sf, jobs, err := OpenState(dir, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatalf("a corrupt file must not stop gafferd: %v", err)
			}
			if len(jobs) != 0 {
				t.Fatalf("got jobs %v from a corrupt file", jobs)
			}
			if _, err := os.Stat(sf.Path()); !os.IsNotExist(err) {
				t.Fatalf("corrupt file still in place: %v", err)
			}
			aside, _ := filepath.Glob(filepath.Join(dir, StateFileName+".corrupt-*"))
			if len(aside) != 1 {
				t.Fatalf("moved-aside files: %v", aside)
			}
			if kept, _ := os.ReadFile(aside[0]); !bytes.Equal(kept, orig) {
				t.Fatal("the moved-aside file differs from the original")
			}
			l := logs.String()
			if !strings.Contains(l, "level=ERROR") || !strings.Contains(l, aside[0]) {
				t.Fatalf("log does not report the error and where the file went: %s", l)
			}
		})
	}
}

func TestStateSaveAtomic(t *testing.T) {
	dir := t.TempDir()
	sf, _, err := OpenState(dir, stQuietLogger())
	if err != nil {
		t.Fatal(err)
	}
	// A save interrupted by a kill -9 leaves at most a temporary file:
	// the state file itself is the previous complete one, and the
	// leftover is cleaned up at the next start.
	if err := sf.Save([]StateJob{{Session: "default", Config: stCfg("a", 1), Target: 1, State: JobRunning, Origin: OriginAPI}}); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(dir, "."+StateFileName+".tmp-deadbeef")
	if err := os.WriteFile(leftover, []byte(`{"format": 1, "jobs": [{"sess`), 0o600); err != nil {
		t.Fatal(err)
	}
	sf2, jobs, err := OpenState(dir, stQuietLogger())
	if err != nil || len(jobs) != 1 || jobs[0].Config.Name != "a" {
		t.Fatalf("got %v %v", jobs, err)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatal("leftover temporary file not removed")
	}
	// Many saves: the file is always complete when read concurrently.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			var js []StateJob
			for k := 0; k <= i%5; k++ {
				js = append(js, StateJob{Session: "default", Config: stCfg("j"+itoa(k), i), Target: i, State: JobRunning, Origin: OriginAPI})
			}
			if err := sf2.Save(js); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	reads := 0
	for {
		select {
		case <-done:
			if reads == 0 {
				t.Log("no concurrent read happened")
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Fatalf("data dir holds %v after the saves", entries)
			}
			return
		default:
		}
		if _, err := stReadFile(sf2.Path()); err != nil {
			t.Fatalf("read during saves: %v", err)
		}
		reads++
	}
}

func TestMergeState(t *testing.T) {
	file := func(name string, n int, start bool) SessionJob {
		c := stCfg(name, n)
		c.Start = start
		return SessionJob{Session: "default", Config: c}
	}
	changed := stCfg("web", 1)
	changed.Cmd = "/bin/sleep 200"
	fileJobs := []SessionJob{
		file("web", 1, true),     // API-changed: saved wins
		file("plain", 2, true),   // never changed: file wins
		file("fresh", 3, false),  // not in the state: file
		file("dropped", 1, true), // unloaded through the API
		file("edited", 4, true),  // saved but not API-changed: the file's (edited) config wins
		file("adopted", 1, true), // loaded through the API, now in the file too
	}
	saved := []StateJob{
		{Session: "default", Config: changed, Target: 7, State: JobStopped, Origin: OriginFile, APIChanged: true},
		{Session: "default", Config: stCfg("plain", 2), Target: 2, State: JobRunning, Origin: OriginFile},
		{Session: "default", Config: stCfg("dropped", 1), Target: 1, State: StateUnloaded, Origin: OriginFile, APIChanged: true},
		{Session: "default", Config: stCfg("edited", 1), Target: 1, State: JobRunning, Origin: OriginFile},
		{Session: "default", Config: stCfg("adopted", 9), Target: 9, State: JobRunning, Origin: OriginAPI},
		{Session: "api", Config: stCfg("loaded", 2), Target: 5, State: JobFlapping, Origin: OriginAPI},
		{Session: "api", Config: stCfg("stopped", 2), Target: 2, State: JobStopped, Origin: OriginAPI},
		{Session: "default", Config: stCfg("removed", 1), Target: 3, State: JobRunning, Origin: OriginFile, APIChanged: true},
		{Session: "default", Config: stCfg("removed2", 1), Target: 1, State: JobRunning, Origin: OriginFile},
	}
	got := MergeState(fileJobs, saved)
	type row struct {
		name   string
		cmd    string
		target int
		start  bool
		origin string
	}
	want := []row{
		{"default.web", "/bin/sleep 200", 7, false, OriginFile},
		{"default.plain", "/bin/sleep 100", 2, true, OriginFile},
		{"default.fresh", "/bin/sleep 100", 3, false, OriginFile},
		{"default.edited", "/bin/sleep 100", 4, true, OriginFile},
		{"default.adopted", "/bin/sleep 100", 9, true, OriginFile},
		{"api.loaded", "/bin/sleep 100", 5, true, OriginAPI},
		{"api.stopped", "/bin/sleep 100", 2, false, OriginAPI},
	}
	if len(got) != len(want) {
		var names []string
		for _, g := range got {
			names = append(names, g.FullName())
		}
		t.Fatalf("got %v, want %d jobs", names, len(want))
	}
	for i, w := range want {
		g := got[i]
		r := row{g.FullName(), g.Config.Cmd, g.Target, g.Start, g.Origin}
		if r != w {
			t.Errorf("job %d: got %+v, want %+v", i, r, w)
		}
	}
	if got[3].Config.NumProcesses != 4 {
		t.Errorf("edited: numprocesses %d, want the file's 4", got[3].Config.NumProcesses)
	}
}

func TestStateFromSnapshot(t *testing.T) {
	web := stCfg("web", 2)
	fileJobs := []SessionJob{{Session: "default", Config: web}, {Session: "default", Config: stCfg("gone", 1)},
		{Session: "default", Config: stCfg("idle", 1)}}
	fileJobs[2].Config.Start = false
	logged := stCfg("logged", 1)
	logged.Logfile = "/tmp/l.log" // the manager normalises redirect_output for log files
	fileJobs = append(fileJobs, SessionJob{Session: "default", Config: logged})
	normLogged := logged.Clone()
	normalizeLogConfig(&normLogged)
	other := web.Clone()
	other.Env = map[string]string{"A": "1"}
	cases := []struct {
		name string
		snap JobSnapshot
		want bool
	}{
		{"same", JobSnapshot{Session: "default", Config: web, Target: 2, State: JobRunning}, false},
		{"flapping is still running", JobSnapshot{Session: "default", Config: web, Target: 2, State: JobFlapping}, false},
		{"scaled", JobSnapshot{Session: "default", Config: web, Target: 3, State: JobRunning}, true},
		{"stopped", JobSnapshot{Session: "default", Config: web, Target: 2, State: JobStopped}, true},
		{"updated", JobSnapshot{Session: "default", Config: other, Target: 2, State: JobRunning}, true},
		{"not started as the file says", JobSnapshot{Session: "default", Config: fileJobs[2].Config, Target: 1, State: JobNotStarted}, false},
		{"started though the file says not", JobSnapshot{Session: "default", Config: fileJobs[2].Config, Target: 1, State: JobRunning}, true},
		{"normalised log config", JobSnapshot{Session: "default", Config: normLogged, Target: 1, State: JobRunning}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := StateFromSnapshot([]JobSnapshot{c.snap}, fileJobs)
			var rec *StateJob
			for i := range st {
				if st[i].FullName() == "default."+c.snap.Config.Name {
					rec = &st[i]
				}
			}
			if rec == nil || rec.Origin != OriginFile || rec.APIChanged != c.want {
				t.Fatalf("got %+v, want api_changed %v", rec, c.want)
			}
			unloaded := 0
			for _, s := range st {
				if s.State == StateUnloaded {
					unloaded++
					if !s.APIChanged || s.Origin != OriginFile {
						t.Errorf("tombstone %+v", s)
					}
				}
			}
			if unloaded != len(fileJobs)-1 {
				t.Errorf("%d unloaded records, want %d", unloaded, len(fileJobs)-1)
			}
		})
	}
	st := StateFromSnapshot([]JobSnapshot{{Session: "x", Config: stCfg("api", 1), Target: 4, State: JobStopped}}, nil)
	if len(st) != 1 || st[0].Origin != OriginAPI || st[0].APIChanged || st[0].Target != 4 {
		t.Fatalf("api job: %+v", st)
	}
}

// stRead returns the jobs of the state file by full name.
func stRead(t *testing.T, path string) map[string]StateJob {
	t.Helper()
	jobs, err := stReadFile(path)
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	out := map[string]StateJob{}
	for _, j := range jobs {
		out[j.FullName()] = j
	}
	return out
}

func TestStateRecorderWithManager(t *testing.T) {
	dir := t.TempDir()
	sf, saved, err := OpenState(dir, stQuietLogger())
	if err != nil || len(saved) != 0 {
		t.Fatal(saved, err)
	}
	fileWeb := childConfig(t, "web", "sleep", nil)
	fileJobs := []SessionJob{{Session: "default", Config: fileWeb}}
	m := NewManager(Options{Logger: stQuietLogger()})
	defer m.Shutdown(context.Background())
	if err := m.Load("default", fileWeb, nil, true); err != nil {
		t.Fatal(err)
	}
	rec := NewStateRecorder(sf, func() []SessionJob { return fileJobs })
	if err := rec.Start(context.Background(), &Daemon{Manager: m}); err != nil {
		t.Fatal(err)
	}
	defer rec.Stop()
	// The initial save records the file job, unchanged.
	if j, ok := stRead(t, sf.Path())["default.web"]; !ok || j.APIChanged || j.Origin != OriginFile {
		t.Fatalf("initial state: %+v", j)
	}

	// API changes, each made durable by Sync before it is checked.
	api := childConfig(t, "api", "sleep", nil)
	if err := m.Load("s1", api, nil, true); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Scale("s1.api", ScaleOp{Value: 2}); err != nil {
		t.Fatal(err)
	}
	if err := rec.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	j := stRead(t, sf.Path())["s1.api"]
	if j.Origin != OriginAPI || j.Target != 3 || j.State != JobRunning {
		t.Fatalf("api job after scale: %+v", j)
	}
	if err := m.StopJob("default.web"); err != nil {
		t.Fatal(err)
	}
	rec.Sync(context.Background())
	if j := stRead(t, sf.Path())["default.web"]; !j.APIChanged || j.State != JobStopped {
		t.Fatalf("stopped file job: %+v", j)
	}
	if err := m.StartJob("default.web"); err != nil {
		t.Fatal(err)
	}
	rec.Sync(context.Background())
	if j := stRead(t, sf.Path())["default.web"]; j.APIChanged || j.State != JobRunning {
		t.Fatalf("file job back as the file says: %+v", j)
	}

	// Without Sync, the last change is written once the recorder is idle.
	if err := m.StopJob("s1.api"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "stop recorded", func() bool {
		return stRead(t, sf.Path())["s1.api"].State == JobStopped
	})

	// Restart: a new manager restores the merged state.
	if err := rec.Stop(); err != nil {
		t.Fatal(err)
	}
	m.Shutdown(context.Background())
	_, saved, err = OpenState(dir, stQuietLogger())
	if err != nil {
		t.Fatal(err)
	}
	restore := MergeState(fileJobs, saved)
	m2 := NewManager(Options{Logger: stQuietLogger()})
	defer m2.Shutdown(context.Background())
	for _, rj := range restore {
		if err := m2.Load(rj.Session, rj.Config, nil, false); err != nil {
			t.Fatal(err)
		}
		if rj.Target != rj.Config.NumProcesses {
			m2.Scale(rj.FullName(), ScaleOp{Set: true, Value: rj.Target})
		}
		if rj.Start {
			m2.StartJob(rj.FullName())
		}
	}
	snap := map[string]JobSnapshot{}
	for _, s := range m2.Snapshot() {
		snap[s.Session+"."+s.Config.Name] = s
	}
	if s := snap["s1.api"]; s.Target != 3 || stWantsRun(s.State) {
		t.Fatalf("restored api job: %+v", s)
	}
	if s := snap["default.web"]; s.Target != 1 || s.State != JobRunning {
		t.Fatalf("restored file job: %+v", s)
	}
	waitFor(t, 10*time.Second, "web process", func() bool {
		p, _ := m2.Pids("default.web")
		return len(p) == 1
	})
	if p, _ := m2.Pids("s1.api"); len(p) != 0 {
		t.Fatalf("stopped job has processes %v", p)
	}

	// Unloading a file job through the API is remembered.
	rec2 := NewStateRecorder(sf, func() []SessionJob { return fileJobs })
	if err := rec2.StartManager(m2); err != nil {
		t.Fatal(err)
	}
	defer rec2.Stop()
	if err := m2.Unload("default.web"); err != nil {
		t.Fatal(err)
	}
	if err := rec2.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if j := stRead(t, sf.Path())["default.web"]; j.State != StateUnloaded {
		t.Fatalf("unloaded file job: %+v", j)
	}
	_, saved, _ = OpenState(dir, stQuietLogger())
	for _, rj := range MergeState(fileJobs, saved) {
		if rj.FullName() == "default.web" {
			t.Fatal("a file job unloaded through the API came back")
		}
	}
}

func TestStateRecorderStopIgnoresShutdown(t *testing.T) {
	dir := t.TempDir()
	sf, _, err := OpenState(dir, stQuietLogger())
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(Options{Logger: stQuietLogger()})
	defer m.Shutdown(context.Background())
	if err := m.Load("default", childConfig(t, "a", "sleep", nil), nil, true); err != nil {
		t.Fatal(err)
	}
	rec := NewStateRecorder(sf, nil)
	if err := rec.StartManager(m); err != nil {
		t.Fatal(err)
	}
	// As the daemon does: apps stop first, then the manager.
	if err := rec.Stop(); err != nil {
		t.Fatal(err)
	}
	m.Shutdown(context.Background())
	if j := stRead(t, sf.Path())["default.a"]; j.State != JobRunning {
		t.Fatalf("after shutdown: %+v", j)
	}
	if err := rec.Sync(context.Background()); err == nil {
		t.Fatal("Sync after Stop succeeded")
	}
}

// A saved job that this version's checks refuse (a name or a limit an
// earlier version accepted) is left out, with an error naming it and a
// copy of the file; the other jobs are restored.
func TestStateRefusedJobKeepsTheOthers(t *testing.T) {
	dir := t.TempDir()
	sf, _, err := OpenState(dir, stQuietLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := sf.Save([]StateJob{
		{Session: "default", Config: stCfg("web", 1), Target: 1, State: JobRunning, Origin: OriginAPI},
		{Session: "default", Config: stCfg("bad", 1), Target: 1, State: JobRunning, Origin: OriginAPI},
		{Session: "other", Config: stCfg("w", 1), Target: 1, State: JobRunning, Origin: OriginAPI},
	}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(sf.Path())
	data = bytes.Replace(data, []byte(`"name": "bad"`), []byte(`"name": ".."`), 1)
	data = bytes.Replace(data, []byte(`"session": "other"`), []byte(`"session": "o:ther"`), 1)
	os.WriteFile(sf.Path(), data, 0o600)
	var logs bytes.Buffer
	_, jobs, err := OpenState(dir, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].FullName() != "default.web" {
		t.Fatalf("restored %+v, want default.web alone", jobs)
	}
	copies, _ := filepath.Glob(filepath.Join(dir, StateFileName+".unrestored-*"))
	if len(copies) != 1 {
		t.Fatalf("copies of the state file: %v", copies)
	}
	if kept, _ := os.ReadFile(copies[0]); !bytes.Equal(kept, data) {
		t.Fatal("the copy differs from the state file")
	}
	l := logs.String()
	for _, want := range []string{"default...", `\"..\" must not start or end with '.'`, `sessionid: \"o:ther\" must not contain ':'`, copies[0]} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
}

// A file job changed through the API keeps its saved version across a
// restart until the file changes that job: the state records the hash of
// the file's version, and a different hash at start makes the file win.
func TestMergeStateFileEditWins(t *testing.T) {
	fileV1 := SessionJob{Session: "default", Config: stCfg("web", 1)}
	gone := SessionJob{Session: "default", Config: stCfg("gone", 1)}
	// The API scaled web to 5 and unloaded gone; the recorder saw file v1.
	snap := []JobSnapshot{{Session: "default", Config: fileV1.Config, Target: 5, State: JobRunning}}
	saved := StateFromSnapshot(snap, []SessionJob{fileV1, gone})
	for _, s := range saved {
		if s.FileHash == "" || !s.APIChanged {
			t.Fatalf("record %+v: want api_changed and a file hash", s)
		}
	}
	// Round trip through the file keeps the hash.
	sf, _, err := OpenState(t.TempDir(), stQuietLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := sf.Save(saved); err != nil {
		t.Fatal(err)
	}
	if saved, err = stReadFile(sf.Path()); err != nil || saved[0].FileHash == "" {
		t.Fatalf("read back %+v %v", saved, err)
	}

	byName := func(rs []RestoreJob) map[string]RestoreJob {
		out := map[string]RestoreJob{}
		for _, r := range rs {
			out[r.FullName()] = r
		}
		return out
	}
	// The file unchanged: the API's changes stay.
	got := byName(MergeState([]SessionJob{fileV1, gone}, saved))
	if r, ok := got["default.web"]; !ok || r.Target != 5 {
		t.Errorf("unedited file: web %+v, want the API's target 5", r)
	}
	if _, ok := got["default.gone"]; ok {
		t.Error("unedited file: the job unloaded through the API came back")
	}
	// Each kind of edit of the job in the file makes the file win.
	edits := map[string]func(*JobConfig){
		"numprocesses": func(c *JobConfig) { c.NumProcesses = 2 },
		"cmd":          func(c *JobConfig) { c.Cmd = "/bin/sleep 300" },
		"env":          func(c *JobConfig) { c.Env = map[string]string{"A": "1"} },
		"start":        func(c *JobConfig) { c.Start = false },
		"graceful":     func(c *JobConfig) { c.GracefulTimeout = 31*time.Second + time.Millisecond },
	}
	for name, edit := range edits {
		web, gone2 := fileV1, gone
		web.Config, gone2.Config = fileV1.Config.Clone(), gone.Config.Clone()
		edit(&web.Config)
		edit(&gone2.Config)
		got := byName(MergeState([]SessionJob{web, gone2}, saved))
		want := web.Config.NumProcesses
		if r, ok := got["default.web"]; !ok || r.Target != want || r.Config.Cmd != web.Config.Cmd || r.Start != web.Config.Start {
			t.Errorf("%s edited: web %+v, want the file's version", name, r)
		}
		if _, ok := got["default.gone"]; !ok {
			t.Errorf("%s edited: the unloaded job the file changed did not come back", name)
		}
	}
	// A state of an earlier version (no hash): the saved version wins, as before.
	for i := range saved {
		saved[i].FileHash = ""
	}
	web := fileV1
	web.Config = fileV1.Config.Clone()
	web.Config.NumProcesses = 2
	if r := byName(MergeState([]SessionJob{web}, saved))["default.web"]; r.Target != 5 {
		t.Errorf("no hash: web %+v, want the saved target 5", r)
	}
}

// Until the recorder starts (gafferd starting its restored jobs), reads
// go through its middleware at once and a change waits for it: a change
// whose client gives up meanwhile gets 503 without running; once the
// recorder runs, a waiting change proceeds and is answered after its
// save.
func TestStateMiddlewareHoldsChangesUntilStart(t *testing.T) {
	sf, _, err := OpenState(t.TempDir(), stQuietLogger())
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(Options{Logger: stQuietLogger()})
	defer m.Shutdown(context.Background())
	rec := NewStateRecorder(sf, nil)
	defer rec.Stop()
	var ran atomic.Int32
	h := rec.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Add(1)
		w.WriteHeader(200)
	}))
	serve := func(ctx context.Context, method string) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, "/jobs", nil).WithContext(ctx))
		return w.Code
	}
	if c := serve(context.Background(), "GET"); c != 200 || ran.Load() != 1 {
		t.Fatalf("GET before start: %d, handler ran %d times", c, ran.Load())
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if c := serve(gone, "POST"); c != 503 || ran.Load() != 1 {
		t.Fatalf("POST before start, client gone: %d, handler ran %d times; want 503 and no run", c, ran.Load())
	}
	done := make(chan int, 1)
	go func() { done <- serve(context.Background(), "POST") }()
	if err := rec.StartManager(m); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-done:
		if c != 200 || ran.Load() != 2 {
			t.Fatalf("POST after start: %d, handler ran %d times", c, ran.Load())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a change held before the start did not proceed after it")
	}
}
