package gaffer

import (
	"context"
	"encoding/json"
	"os/user"
	"strconv"
	"strings"
	"testing"
	"time"
)

// statsKidsJob is a shell with two children, one of them niced, and a
// secret in its arguments and environment.
func statsKidsJob() string {
	return `{"name": "kids", "cmd": "/bin/sh", "args": ["-c", "nice -n 5 sleep 300 & sleep 301 & wait", "sh", "--token=tok-leak-123"],
		"env": {"API_TOKEN": "tok-leak-123"}, "graceful_timeout": 5}`
}

// checkDocumentedStats checks one stats object of the kids job: every
// field of the documented stats message with its type, the numeric ones,
// and the two children with their own figures.
func checkDocumentedStats(t *testing.T, where string, st map[string]any, legacy bool) {
	t.Helper()
	me, _ := user.Current()
	for _, k := range []string{"mem_info1", "mem_info2", "cpu", "mem", "ctime", "pid", "username", "nice", "cmdline", "children",
		"rss_bytes", "vms_bytes", "cpu_percent", "cpu_seconds", "num_threads", "num_fds", "num_children"} {
		if _, ok := st[k]; !ok {
			t.Errorf("%s: no %s in %v", where, k, st)
		}
	}
	if st["username"] != me.Username {
		t.Errorf("%s: username %v, want %s", where, st["username"], me.Username)
	}
	if _, ok := st["nice"].(float64); !ok {
		t.Errorf("%s: nice %v is not a number", where, st["nice"])
	}
	cmdline, _ := st["cmdline"].(string)
	if !strings.HasPrefix(cmdline, "/bin/sh -c nice -n 5 sleep 300") || !strings.HasSuffix(cmdline, "--token=********") || strings.Contains(cmdline, "tok-leak") {
		t.Errorf("%s: cmdline %q, want the command line with the secret masked", where, cmdline)
	}
	kids, ok := st["children"].([]any)
	if !ok || len(kids) != 2 || st["num_children"] != float64(2) {
		t.Fatalf("%s: children %v (num_children %v), want a list of 2", where, st["children"], st["num_children"])
	}
	nices := map[string]float64{}
	for _, k := range kids {
		c := k.(map[string]any)
		osPid, _ := c["os_pid"].(float64)
		if osPid <= 0 {
			t.Errorf("%s: child without os_pid: %v", where, c)
		}
		if p, has := c["pid"]; legacy != has || (legacy && p != c["os_pid"]) {
			t.Errorf("%s: child pid %v (os_pid %v): want none, or the OS pid in the 0.4 form", where, p, osPid)
		}
		for _, f := range []string{"mem_info1", "cpu", "ctime", "username", "rss_bytes", "children", "num_children"} {
			if _, ok := c[f]; !ok {
				t.Errorf("%s: child without %s: %v", where, f, c)
			}
		}
		if c["rss_bytes"].(float64) <= 0 || c["username"] != me.Username {
			t.Errorf("%s: child figures %v", where, c)
		}
		cl, _ := c["cmdline"].(string)
		nices[cl], _ = c["nice"].(float64)
	}
	if nices["sleep 300"] != st["nice"].(float64)+5 || nices["sleep 301"] != st["nice"].(float64) {
		t.Errorf("%s: children by cmdline and nice %v, want sleep 300 niced by 5 and sleep 301", where, nices)
	}
}

// The documented stats message, on every route that serves it:
// GET /<pid>/stats, the job's stats, the 0.4 /stats routes, the STATS:
// topic of the control channel and the Go client.
func TestStatsDocumentedFields(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	a.json("POST", "/jobs/default", statsKidsJob(), 200)
	var pid int
	waitFor(t, 10*time.Second, "the shell and its two children", func() bool {
		pids, _ := a.m.Pids("default.kids")
		if len(pids) != 1 {
			return false
		}
		pid = pids[0]
		st, err := a.m.ProcessStats(pid)
		return err == nil && st.NumChildren == 2 && len(st.Children) == 2 && st.Children[0].Cmdline != "" && st.Children[1].Cmdline != "" &&
			!strings.HasPrefix(st.Children[0].Cmdline, "/bin/sh") && !strings.HasPrefix(st.Children[1].Cmdline, "/bin/sh") &&
			// nice(1) execs sleep: wait until it has.
			!strings.HasPrefix(st.Children[0].Cmdline, "nice ") && !strings.HasPrefix(st.Children[1].Cmdline, "nice ")
	})
	p := strconv.Itoa(pid)

	checkDocumentedStats(t, "GET /"+p+"/stats", a.json("GET", "/"+p+"/stats", "", 200)["stats"].(map[string]any), false)
	js := a.json("GET", "/jobs/default/kids/stats", "", 200)
	checkDocumentedStats(t, "GET /jobs/default/kids/stats", js["stats"].([]any)[0].(map[string]any), false)
	checkDocumentedStats(t, "GET /stats/kids/"+p, a.json("GET", "/stats/kids/"+p, "", 200), true)
	checkDocumentedStats(t, "GET /stats/kids", a.json("GET", "/stats/kids", "", 200)["stats"].([]any)[0].(map[string]any), true)

	c := chDial(t, "ws"+strings.TrimPrefix(a.srv.URL, "http"), nil)
	topic := "STATS:" + p
	c.sub(topic)
	checkDocumentedStats(t, topic, c.until("stat", chEventOf(topic, "stat"))["data"].(map[string]any), false)

	cl, err := NewClient(a.srv.URL, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	gjs, err := cl.JobStats(context.Background(), "default.kids")
	if err != nil || len(gjs.Stats) != 1 || len(gjs.Stats[0].Children) != 2 || gjs.Stats[0].Username == "" {
		t.Fatalf("client JobStats: %+v %v", gjs, err)
	}
	raw, _ := json.Marshal(gjs.Stats[0])
	var back map[string]any
	json.Unmarshal(raw, &back)
	checkDocumentedStats(t, "Client.JobStats", back, false)
}

func TestStatsMasker(t *testing.T) {
	mask := statsMasker(map[string]string{"DB_PASSWORD": "hunter2hunter2", "SECRET_KEY": "hunter2", "SHORT_TOKEN": "abc", "PATH": "/usr/bin"})
	got := mask("run --pw=hunter2hunter2 --k=hunter2 --t=abc /usr/bin")
	if want := "run --pw=******** --k=******** --t=abc /usr/bin"; got != want {
		t.Fatalf("masked %q, want %q", got, want)
	}
}
