package main

import (
	"context"
	"encoding/json"
	"os/user"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer"
)

// gaffer ps --json carries the documented stats message of each process:
// username, nice, cmdline and the children as a list of stat objects.
func TestPsJSONShowsDocumentedStats(t *testing.T) {
	addr, cl := startGafferd(t)
	ctx := context.Background()
	cfg := gaffer.NewJobConfig("kids", "/bin/sh")
	cfg.Args = []string{"-c", "sleep 300 & wait"}
	if err := cl.Load(ctx, "app", cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the job's child", func() bool {
		st, err := cl.JobStats(ctx, "app.kids")
		return err == nil && len(st.Stats) == 1 && len(st.Stats[0].Children) == 1 && st.Stats[0].Children[0].Cmdline == "sleep 300"
	})
	r := gafferIn(t, t.TempDir(), "", "-g", addr, "ps", "--app", "app", "--json")
	want(t, r, 0)
	var out []struct {
		Stats struct {
			Stats []map[string]any `json:"stats"`
		} `json:"stats"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil || len(out) != 1 || len(out[0].Stats.Stats) != 1 {
		t.Fatalf("ps --json: %v\n%s", err, r.Stdout)
	}
	me, _ := user.Current()
	st := out[0].Stats.Stats[0]
	kids, _ := st["children"].([]any)
	if st["username"] != me.Username || st["cmdline"] != "/bin/sh -c sleep 300 & wait" || st["nice"] == nil || len(kids) != 1 || st["num_children"] != float64(1) {
		t.Fatalf("ps --json stats: %v", st)
	}
	if kid := kids[0].(map[string]any); kid["cmdline"] != "sleep 300" || kid["username"] != me.Username || kid["os_pid"] == nil {
		t.Fatalf("ps --json child: %v", kid)
	}
}
