package gaffer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestDiffJobs(t *testing.T) {
	job := func(session, name, cmd string) SessionJob {
		return SessionJob{Session: session, Config: NewJobConfig(name, cmd)}
	}
	started := job("default", "same", "x")
	started.Config.Start = false // start is an action, not compared
	old := []SessionJob{job("default", "gone", "x"), job("default", "same", "x"), job("s", "edit", "a"), job("default", "gone2", "x")}
	new := []SessionJob{job("s", "edit", "b"), job("default", "new", "x"), started}
	d := DiffJobs(old, new)
	want := ReloadDiff{
		Added: []string{"default.new"}, Removed: []string{"default.gone", "default.gone2"},
		Changed: []string{"s.edit"}, Unchanged: []string{"default.same"},
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("DiffJobs = %+v, want %+v", d, want)
	}

	b, err := json.Marshal(DiffJobs(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"added":[],"removed":[],"changed":[],"unchanged":[]}` {
		t.Errorf("empty diff JSON = %s", b)
	}
	if b, _ := json.Marshal(ReloadDiff{}); string(b) != `{"added":[],"removed":[],"changed":[],"unchanged":[]}` {
		t.Errorf("zero diff JSON = %s", b)
	}
}

func TestDiffJobsAfterReload(t *testing.T) {
	t.Setenv("GAFFER_PLUGIN_DIR", "")
	dir := cfgWrite(t, map[string]string{"gaffer.ini": "[process:a]\ncmd = a\n[process:b]\ncmd = b\n"})
	path := filepath.Join(dir, "gaffer.ini")
	before, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("[process:a]\ncmd = a\n[process:b]\ncmd = b\nnumprocesses = 2\n[process:c]\ncmd = c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	after, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	d := DiffJobs(before.Jobs, after.Jobs)
	if !reflect.DeepEqual(d.Unchanged, []string{"default.a"}) || !reflect.DeepEqual(d.Changed, []string{"default.b"}) ||
		!reflect.DeepEqual(d.Added, []string{"default.c"}) || len(d.Removed) != 0 {
		t.Errorf("diff = %+v", d)
	}
}
