package gaffer

import (
	"context"
	"encoding/json"
	"os/user"
	"reflect"
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

// statsGoldenProc is a sampled process with an unsampled child.
func statsGoldenProc() ProcStats {
	child := ProcStats{OSPid: 4243}
	return ProcStats{Pid: 3, OSPid: 4242, Sampled: true, RSSBytes: 13 << 20, VMSBytes: 1<<30 + 12345, CPUPercent: 12.5, MemPercent: 0.3,
		CPUSeconds: 75.256, Username: "alice", Nice: -5, Cmdline: "/bin/sh -c a&b <x>", NumThreads: 2, NumFDs: 7, NumChildren: 1,
		Children: []ProcStats{child}}
}

// The Go stats types carry numbers; their JSON is, byte for byte, what
// gafferd sent when the Go types held the formatted strings (the
// expected texts were produced by the code before the change).
func TestStatsJSONGolden(t *testing.T) {
	st := statsGoldenProc()
	const proc = `{"mem_info1":"13M","mem_info2":"1G","cpu":12.5,"mem":0.3,"ctime":"1:15.26","pid":3,"os_pid":4242,"username":"alice","nice":-5,"cmdline":"/bin/sh -c a\u0026b \u003cx\u003e","children":[{"mem_info1":"N/A","mem_info2":"N/A","cpu":"N/A","mem":"N/A","ctime":"N/A","os_pid":4243,"username":"N/A","nice":"N/A","cmdline":"N/A","children":[],"rss_bytes":0,"vms_bytes":0,"cpu_percent":0,"cpu_seconds":0,"num_threads":0,"num_fds":0,"num_children":0}],"rss_bytes":13631488,"vms_bytes":1073754169,"cpu_percent":12.5,"cpu_seconds":75.256,"num_threads":2,"num_fds":7,"num_children":1}`
	cases := []struct {
		name string
		v    any
		want string
	}{
		{"ProcStats", st, proc},
		{"JobStats", JobStats{Name: "default.x", Stats: []ProcStats{st}, Sampled: 1, Mem: 0.3, MaxMem: 0.3, MinMem: 0.3, CPU: 12.5, MaxCPU: 12.5, MinCPU: 12.5},
			`{"name":"default.x","stats":[` + proc + `],"mem":0.3,"max_mem":0.3,"min_mem":0.3,"cpu":12.5,"max_cpu":12.5,"min_cpu":12.5}`},
		{"JobStats without sample", JobStats{Name: "default.x"},
			`{"name":"default.x","stats":[],"mem":"N/A","max_mem":"N/A","min_mem":"N/A","cpu":"N/A","max_cpu":"N/A","min_cpu":"N/A"}`},
		{"STATS event", chStatData{procStatsWire: st.wire(), Event: "stat", Topic: "STATS:3", Name: "default.x"},
			strings.TrimSuffix(proc, "}") + `,"event":"stat","topic":"STATS:3","name":"default.x"}`},
		{"0.4 stats", lgProcStats(st), `{"children":[{"children":[],"cmdline":"N/A","cpu":"N/A","cpu_percent":0,"cpu_seconds":0,"ctime":"N/A","mem":"N/A","mem_info1":"N/A","mem_info2":"N/A","nice":"N/A","num_children":0,"num_fds":0,"num_threads":0,"os_pid":4243,"pid":4243,"rss_bytes":0,"username":"N/A","vms_bytes":0}],"cmdline":"/bin/sh -c a\u0026b \u003cx\u003e","cpu":12.5,"cpu_percent":12.5,"cpu_seconds":75.256,"ctime":"1:15.26","id":3,"mem":0.3,"mem_info1":"13M","mem_info2":"1G","nice":-5,"num_children":1,"num_fds":7,"num_threads":2,"os_pid":4242,"pid":4242,"rss_bytes":13631488,"username":"alice","vms_bytes":1073754169}`},
	}
	for _, c := range cases {
		got, err := json.Marshal(c.v)
		if err != nil || string(got) != c.want {
			t.Errorf("%s: JSON\n%s (%v)\nwant\n%s", c.name, got, err, c.want)
		}
	}

	// What the Go client decodes is what the server had.
	var back ProcStats
	if err := json.Unmarshal([]byte(proc), &back); err != nil {
		t.Fatal(err)
	}
	want := st
	want.Children = []ProcStats{{OSPid: 4243, Children: []ProcStats{}}}
	if !reflect.DeepEqual(back, want) {
		t.Errorf("decoded %+v\nwant    %+v", back, want)
	}
	var js JobStats
	if err := json.Unmarshal([]byte(cases[1].want), &js); err != nil || js.Sampled != 1 || js.CPU != 12.5 || js.MinMem != 0.3 || len(js.Stats) != 1 {
		t.Errorf("decoded job stats %+v (%v)", js, err)
	}
	if err := json.Unmarshal([]byte(cases[2].want), &js); err != nil || js.Sampled != 0 || js.CPU != 0 {
		t.Errorf("decoded job stats without sample %+v (%v)", js, err)
	}
	// Unknown memory size (macOS): mem is "N/A", the rest is known.
	st.MemPercent = -1
	got, _ := json.Marshal(st)
	if !strings.Contains(string(got), `"cpu":12.5,"mem":"N/A","ctime":"1:15.26"`) {
		t.Errorf("unknown memory size: %s", got)
	}
}

// What the Go client decodes from any stats JSON encodes to a message that
// decodes back to the same thing (and decoding never panics).
func FuzzProcStatsJSON(f *testing.F) {
	f.Add(`{"mem_info1":"N/A","cpu":"N/A","mem":"N/A","nice":"N/A","children":[]}`)
	f.Add(`{"mem_info1":"12M","cpu":1.5,"mem":-3,"nice":5,"username":"N/A","rss_bytes":12582912,"children":[{"os_pid":3}]}`)
	f.Fuzz(func(t *testing.T, data string) {
		var st ProcStats
		if json.Unmarshal([]byte(data), &st) != nil {
			return
		}
		b1, err := json.Marshal(st)
		if err != nil {
			t.Fatalf("marshal %+v: %v", st, err)
		}
		var st2 ProcStats
		if err := json.Unmarshal(b1, &st2); err != nil {
			t.Fatalf("unmarshal %s: %v", b1, err)
		}
		if b2, _ := json.Marshal(st2); string(b1) != string(b2) {
			t.Fatalf("not stable:\n%s\n%s", b1, b2)
		}
	})
}
