package gaffer

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// lkView is what a lookupd knows: job → origin → pids.
type lkView map[string]map[string][]int

func lkViewOf(lk *Lookupd) lkView {
	v := lkView{}
	for _, j := range lk.Jobs() {
		v[j.Name] = map[string][]int{}
		for _, s := range j.Sources {
			v[j.Name][s.NodeInfo.Origin] = s.Pids
		}
	}
	return v
}

// lkTestNode is one gafferd of the loopback test: its manager and the
// origin it announces.
type lkTestNode struct {
	m      *Manager
	origin string
	reg    *LookupdRegistrar
}

// lkExpected is the truth, read from the managers.
func lkExpected(nodes []*lkTestNode) lkView {
	v := lkView{}
	for _, n := range nodes {
		jobs, _ := n.m.Jobs("")
		for _, j := range jobs {
			if v[j] == nil {
				v[j] = map[string][]int{}
			}
			v[j][n.origin] = []int{}
		}
		all, _ := n.m.Pids("")
		for _, pid := range all {
			if p, ok := n.m.Process(pid); ok && v[p.Job] != nil {
				v[p.Job][n.origin] = append(v[p.Job][n.origin], pid)
			}
		}
		for _, origins := range v {
			slices.Sort(origins[n.origin])
		}
	}
	return v
}

// lkConverge waits until lk's view equals the managers' state.
func lkConverge(t *testing.T, what string, lk *Lookupd, nodes []*lkTestNode) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, want := lkViewOf(lk), lkExpected(nodes)
		if reflect.DeepEqual(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the lookupd did not converge\n got %v\nwant %v", what, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lkServeOn serves lk on addr ("127.0.0.1:0" for any port).
func lkServeOn(t *testing.T, lk *Lookupd, addr string) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(lk)
	ts.Listener.Close()
	ts.Listener = l
	ts.Start()
	t.Cleanup(func() { ts.Close(); lk.Close() })
	return ts
}

func TestLookupdRegistrarLoopback(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	interval := 200 * time.Millisecond
	lkOpts := LookupdOptions{PingInterval: interval, Logger: quiet}
	lkA, lkB := NewLookupd(lkOpts), NewLookupd(lkOpts)
	tsA, tsB := lkServeOn(t, lkA, "127.0.0.1:0"), lkServeOn(t, lkB, "127.0.0.1:0")
	// A duplicate address is ignored (and does not stop the others).
	addrs := []string{tsA.URL, tsB.URL, tsA.URL + "/"}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var nodes []*lkTestNode

	// Node 0 is a Daemon hosting the registrar as an App: its origin is
	// derived from its listener, and its jobs arrive after the connection
	// (the event path).
	reg0 := NewLookupdRegistrar(addrs, "", "node0", nil, "", quiet)
	reg0.PingInterval = interval
	d, err := NewDaemon(DaemonOptions{Binds: []string{"127.0.0.1:0"}, Logger: quiet, Apps: []App{reg0}})
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-runDone:
		t.Fatalf("daemon: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon did not start")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-runDone:
		case <-time.After(30 * time.Second):
			t.Error("the daemon did not stop")
		}
	})
	host, _ := os.Hostname()
	if !lkResolvesToLoopback(host) {
		host = "127.0.0.1" // lkDefaultOrigin announces the loopback address then
	}
	port := d.Addrs()[0].(*net.TCPAddr).Port
	nodes = append(nodes, &lkTestNode{m: d.Manager, origin: "http://" + net.JoinHostPort(host, strconv.Itoa(port)), reg: reg0})
	for _, j := range []string{"job0", "common"} {
		if err := d.Manager.Load("default", childConfig(t, j, "sleep", nil), nil, true); err != nil {
			t.Fatal(err)
		}
	}

	// Nodes 1 and 2 are bare managers whose jobs exist before the
	// registrar starts (the snapshot path).
	for i := 1; i <= 2; i++ {
		m := NewManager(Options{Logger: quiet})
		t.Cleanup(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer scancel()
			m.Shutdown(sctx)
		})
		cfg := childConfig(t, fmt.Sprintf("job%d", i), "sleep", nil)
		cfg.NumProcesses = i
		if err := m.Load("default", cfg, nil, true); err != nil {
			t.Fatal(err)
		}
		if err := m.Load("default", childConfig(t, "common", "sleep", nil), nil, true); err != nil {
			t.Fatal(err)
		}
		origin := fmt.Sprintf("http://node%d.test:5000", i)
		reg := NewLookupdRegistrar(addrs, origin, fmt.Sprintf("node%d", i), nil, "", quiet)
		reg.PingInterval = interval
		if err := reg.StartManager(ctx, m); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Stop() })
		nodes = append(nodes, &lkTestNode{m: m, origin: origin, reg: reg})
	}

	lkConverge(t, "lookupd A", lkA, nodes)
	lkConverge(t, "lookupd B", lkB, nodes)
	if got := lkA.FindJob("default.common"); len(got) != 3 {
		t.Fatalf("default.common: %+v", got)
	}
	if n := lkA.Nodes(); len(n) != 3 || n[0].Name == "" {
		t.Fatalf("nodes: %+v", n)
	}

	// Kill lookupd A: discovery goes on through B.
	tsA.Close()
	lkA.Close()
	if _, err := nodes[1].m.Scale("default.job1", ScaleOp{Value: 1}); err != nil {
		t.Fatal(err)
	}
	lkConverge(t, "lookupd B with A down", lkB, nodes)

	// Restart A on the same address: every node re-announces everything.
	lkA2 := NewLookupd(lkOpts)
	lkServeOn(t, lkA2, tsA.Listener.Addr().String())
	lkConverge(t, "restarted lookupd A", lkA2, nodes)

	// A process started on a node shows up with its pid.
	pid, err := nodes[2].m.Commit("default.job2", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, lk := range []*Lookupd{lkA2, lkB} {
		waitFor(t, 10*time.Second, "the committed pid in findJob", func() bool {
			for _, s := range lk.FindJob("default.job2") {
				if s.NodeInfo.Origin == nodes[2].origin && slices.Contains(s.Pids, pid) {
					return true
				}
			}
			return false
		})
	}
	lkConverge(t, "after commit", lkB, nodes)

	// Unload, stop a process: mirrored.
	if err := nodes[0].m.Unload("default.common"); err != nil {
		t.Fatal(err)
	}
	pids, _ := nodes[2].m.Pids("default.job2")
	if err := nodes[2].m.StopProcess(pids[0]); err != nil {
		t.Fatal(err)
	}
	lkConverge(t, "after unload", lkA2, nodes)
	lkConverge(t, "after unload", lkB, nodes)

	// A node that stops leaves both registries.
	nodes[2].reg.Stop()
	nodes = nodes[:2]
	lkConverge(t, "after node 2 stopped", lkA2, nodes)
	lkConverge(t, "after node 2 stopped", lkB, nodes)
	for _, n := range lkB.Nodes() {
		if n.Name == "node2" {
			t.Fatalf("node2 still listed: %+v", lkB.Nodes())
		}
	}
}

func TestLookupdRegistrarKey(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	lk := NewLookupd(LookupdOptions{Logger: quiet, RequireKey: func(k string) bool { return k == "node-key" }})
	ts := lkServeOn(t, lk, "127.0.0.1:0")
	m := NewManager(Options{Logger: quiet})
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	if err := m.Load("default", NewJobConfig("idle", "sleep 3600"), nil, false); err != nil {
		t.Fatal(err)
	}
	var badLog, noneLog authLogBuffer
	bad := NewLookupdRegistrar([]string{ts.URL}, "http://bad:1", "bad", nil, "wrong-k3y-9f", slog.New(slog.NewTextHandler(&badLog, nil)))
	none := NewLookupdRegistrar([]string{ts.URL}, "http://none:1", "none", nil, "", slog.New(slog.NewTextHandler(&noneLog, nil)))
	good := NewLookupdRegistrar([]string{ts.URL}, "http://good:1", "good", nil, "node-key", quiet)
	for _, r := range []*LookupdRegistrar{bad, none, good} {
		if err := r.StartManager(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Stop() })
	}
	waitFor(t, 10*time.Second, "the node with the right key", func() bool { return len(lk.FindJob("default.idle")) == 1 })
	// The refused nodes say so, at error level, with the lookupd's reason.
	for _, tt := range []struct {
		logs   *authLogBuffer
		reason string
	}{{&badLog, "node_key_refused"}, {&noneLog, "node_key_required"}} {
		waitFor(t, 10*time.Second, "the refusal in the node's log", func() bool {
			out := tt.logs.String()
			return strings.Contains(out, "level=ERROR") && strings.Contains(out, "refused this node's key") && strings.Contains(out, tt.reason)
		})
	}
	if strings.Contains(badLog.String(), "wrong-k3y-9f") {
		t.Fatal("the node key appears in the node's log")
	}
	if n := lk.Nodes(); len(n) != 1 || n[0].Name != "good" {
		t.Fatalf("nodes: %+v", n)
	}
}

func TestLookupdRegistrarBadConfig(t *testing.T) {
	m := NewManager(Options{})
	defer m.Shutdown(context.Background())
	for _, tt := range []struct {
		addrs  []string
		origin string
		want   string
	}{
		{[]string{"ftp://h"}, "http://n:1", `"ftp://h": expected an http:// or https:// URL`},
		{[]string{"http://h"}, "n:1", "must start with http:// or https://"},
		{[]string{"http://h"}, "", "no origin"},
	} {
		r := NewLookupdRegistrar(tt.addrs, tt.origin, "n", nil, "", nil)
		err := r.StartManager(context.Background(), m)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v %q: %v, want %q", tt.addrs, tt.origin, err, tt.want)
		}
		r.Stop()
	}
}

func TestDaemonLookupdApp(t *testing.T) {
	for _, tt := range []struct {
		opts     DaemonOptions
		cfg      Config
		wantNil  bool
		wantErr  string
		wantAddr []string
		origin   string
	}{
		{wantNil: true},
		{cfg: Config{LookupdAddresses: []string{"http://f:1"}, BroadcastAddress: "http://me:5000"}, wantAddr: []string{"http://f:1"}, origin: "http://me:5000"},
		{opts: DaemonOptions{LookupdAddrs: []string{"http://cli:1"}, Broadcast: "https://cli:5000"},
			cfg: Config{LookupdAddresses: []string{"http://f:1"}, BroadcastAddress: "http://me:5000"}, wantAddr: []string{"http://cli:1"}, origin: "https://cli:5000"},
		{opts: DaemonOptions{LookupdAddrs: []string{"10.0.0.1:5010"}}, wantErr: "expected an http:// or https:// URL"},
		{opts: DaemonOptions{LookupdAddrs: []string{"http://l:1"}, Broadcast: "10.0.0.1:5000"}, wantErr: "must start with http://"},
	} {
		d := &Daemon{opts: tt.opts, cfg: &tt.cfg, log: slog.Default()}
		app, err := d.lkApp()
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%+v: %v, want %q", tt.opts, err, tt.wantErr)
			}
		case tt.wantNil:
			if app != nil || err != nil {
				t.Errorf("no lookupd: %v %v", app, err)
			}
		default:
			r, ok := app.(*LookupdRegistrar)
			if err != nil || !ok || !reflect.DeepEqual(r.addrs, tt.wantAddr) || r.origin != tt.origin {
				t.Errorf("%+v: %+v %v", tt.opts, app, err)
			}
		}
	}
}

func TestLookupdRegistrarAdoptsPingInterval(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	interval := 200 * time.Millisecond
	lk := NewLookupd(LookupdOptions{Logger: quiet, PingInterval: interval})
	ts := lkServeOn(t, lk, "127.0.0.1:0")
	events, cancel := lk.Subscribe()
	defer cancel()
	m := NewManager(Options{Logger: quiet})
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	// The registrar's own interval (15 s) is far longer than the lookupd's
	// timeout (600 ms): it must ping at the lookupd's pace to stay listed.
	r := NewLookupdRegistrar([]string{ts.URL}, "http://n:1", "n", nil, "", quiet)
	if err := r.StartManager(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	waitFor(t, 10*time.Second, "the node", func() bool { return len(lk.Nodes()) == 1 })
	end := time.After(10 * interval)
	for {
		select {
		case ev := <-events:
			if ev.Event == "remove_node" {
				t.Fatalf("the node was dropped: it did not adopt the lookupd's ping interval")
			}
		case <-end:
			return
		}
	}
}

// TLS end to end: ListenLookupd with a client CA, a registrar on wss://
// with LookupdClientTLS; a node without a client certificate stays out.
func TestLookupdTLS(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "lookupd", false)
	ccert, ckey := writeCert(t, dir, "node", true)
	l, err := ListenLookupd("127.0.0.1:0", cert, key, ccert)
	if err != nil {
		t.Fatal(err)
	}
	lk := NewLookupd(LookupdOptions{Logger: quiet})
	srv := &http.Server{Handler: lk, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close(); lk.Close() })
	addr := "https://" + l.Addr().String()

	m := NewManager(Options{Logger: quiet})
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	if err := m.Load("default", NewJobConfig("idle", "sleep 3600"), nil, false); err != nil {
		t.Fatal(err)
	}
	withCert, err := LookupdClientTLS(ccert, ckey, cert)
	if err != nil {
		t.Fatal(err)
	}
	noCert, err := LookupdClientTLS("", "", cert)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*LookupdRegistrar{
		NewLookupdRegistrar([]string{addr}, "http://nocert:1", "nocert", noCert, "", quiet),
		NewLookupdRegistrar([]string{addr}, "https://good:1", "good", withCert, "", quiet),
	} {
		if err := r.StartManager(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Stop() })
	}
	waitFor(t, 10*time.Second, "the node over wss", func() bool { return len(lk.FindJob("default.idle")) == 1 })
	if n := lk.Nodes(); len(n) != 1 || n[0].Name != "good" {
		t.Fatalf("nodes: %+v", n)
	}
	if _, err := LookupdClientTLS(ccert, "", ""); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("cert without key: %v", err)
	}
	if _, err := ListenLookupd("127.0.0.1:0", cert, "", ""); err == nil {
		t.Fatal("TLS without a key file was accepted")
	}
}

// TestLookupdRegistrarPanicRecovered: a panic while forwarding an event
// is logged with its stack and ends that connection only; the registrar
// reconnects, announces everything again, and the lookupd ends up with
// the node's real state.
func TestLookupdRegistrarPanicRecovered(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	lk := NewLookupd(LookupdOptions{Logger: quiet})
	ts := lkServeOn(t, lk, "127.0.0.1:0")
	m := NewManager(Options{Logger: quiet})
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	if err := m.Load("default", NewJobConfig("a", "sleep 3600"), nil, false); err != nil {
		t.Fatal(err)
	}
	var logs authLogBuffer
	reg := NewLookupdRegistrar([]string{ts.URL}, "http://n:1", "n", nil, "", slog.New(slog.NewTextHandler(&logs, nil)))
	var panicked atomic.Bool
	reg.lkForward = func(c *lkConn, ev Event) error {
		if ev.Name == "spawn" && panicked.CompareAndSwap(false, true) {
			panic("boom in the forwarder")
		}
		return reg.mirror(c, ev)
	}
	if err := reg.StartManager(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Stop() })
	node := []*lkTestNode{{m: m, origin: "http://n:1"}}
	lkConverge(t, "before the panic", lk, node)
	if err := m.StartJob("default.a"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the panic", panicked.Load)
	lkConverge(t, "after the panic", lk, node)
	if v := lkViewOf(lk); len(v["default.a"]["http://n:1"]) != 1 {
		t.Fatalf("the spawned pid is not registered: %v", v)
	}
	out := logs.String()
	for _, want := range []string{"panicked; recovered", "boom in the forwarder", "goroutine "} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}
