package main

// Multi-node tests: two gaffer_lookupd and three gafferd, as real
// processes. TestClusterLoopback runs them all on 127.0.0.1 (every
// platform, CI included); TestClusterNetns gives each one its own network
// namespace and address in 10.77.0.0/24, linked through a bridge in a
// "switch" namespace, so that a node's link can really be cut.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/testenv"
)

// clusterPing is the lookupds' ping interval: a node silent for three of
// them is dropped.
const clusterPing = 500 * time.Millisecond

type clusterHost struct {
	name   string
	ns     string // network namespace, "" on loopback
	addr   string // host:port the other hosts reach it at
	sock   string // unix socket the test reaches it through
	client *http.Client
	bin    string
	args   []string
	proc   *child
}

func (h *clusterHost) origin() string { return "http://" + h.addr }

func (h *clusterHost) start(t *testing.T) {
	t.Helper()
	h.proc = startChild(t, h.name, h.ns, h.bin, h.args...)
	eventually(t, 15*time.Second, h.name+" answers /ping", func() error {
		select {
		case <-h.proc.Done:
			t.Fatalf("%s exited with %d:\n%s", h.name, h.proc.Code(), h.proc.Output())
		default:
		}
		return call(h.client, "GET", "/ping", "", nil)
	})
}

type cluster struct {
	t        *testing.T
	lookupds []*clusterHost
	nodes    []*clusterHost
	cut      map[*clusterHost]bool
	commits  map[*clusterHost]map[string][]int // node → job → pids started by commit
}

// view is what a lookupd knows: job → origin → sorted pids.
type view map[string]map[string][]int

func (c *cluster) lookupdView(lk *clusterHost) (view, error) {
	var body struct {
		Jobs []struct {
			Name    string `json:"name"`
			Sources []struct {
				Pids     []int `json:"pids"`
				NodeInfo struct {
					Origin string `json:"origin"`
				} `json:"node_info"`
			} `json:"sources"`
		} `json:"jobs"`
	}
	if err := call(lk.client, "GET", "/jobs", "", &body); err != nil {
		return nil, err
	}
	v := view{}
	for _, j := range body.Jobs {
		v[j.Name] = map[string][]int{}
		for _, s := range j.Sources {
			pids := slices.Clone(s.Pids)
			slices.Sort(pids)
			v[j.Name][s.NodeInfo.Origin] = pids
		}
	}
	return v, nil
}

// truth asks every node that is not cut off for its jobs and pids.
func (c *cluster) truth() (view, error) {
	v := view{}
	for i, n := range c.nodes {
		if c.cut[n] {
			continue
		}
		for _, job := range []string{fmt.Sprintf("web%d", i), "common"} {
			var body struct {
				Pids []int `json:"pids"`
			}
			if err := call(n.client, "GET", "/jobs/default/"+job+"/pids", "", &body); err != nil {
				return nil, err
			}
			// The job's pids include its commits (issue 14); a commit is
			// counted once either way.
			pids := append(slices.Clone(body.Pids), c.commits[n]["default."+job]...)
			slices.Sort(pids)
			pids = slices.Compact(pids)
			full := "default." + job
			if v[full] == nil {
				v[full] = map[string][]int{}
			}
			v[full][n.origin()] = pids
		}
	}
	return v, nil
}

// converged checks that lk's registry equals the nodes' state.
func (c *cluster) converged(lk *clusterHost) func() error {
	return func() error {
		want, err := c.truth()
		if err != nil {
			return err
		}
		got, err := c.lookupdView(lk)
		if err != nil {
			return err
		}
		if len(got) == 0 && len(want) > 0 {
			return fmt.Errorf("no node registered with %s (is the lookupd registrar wired into gafferd's Daemon.Run?); the nodes run %v", lk.name, want)
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("%s knows\n  %v\nthe nodes run\n  %v", lk.name, got, want)
		}
		return nil
	}
}

// clusterKey is the lookupds' node key.
const clusterKey = "cluster-node-key-7d41"

// fakeNodeRefused plays a program that reaches lk and tries to register
// a node without the key, then with a wrong one: each IDENTIFY is refused
// with a clear reason, and lk lists only the real nodes.
func (c *cluster) fakeNodeRefused(lk *clusterHost) {
	t := c.t
	t.Helper()
	for _, tt := range []struct {
		key    string
		reason string
	}{{"", "node_key_required"}, {"not-the-key", "node_key_refused"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ws, _, err := gaffer.WSDial(ctx, "ws+unix://"+lk.sock+":/ws", nil, nil)
		cancel()
		if err != nil {
			t.Fatalf("fake node: dial %s: %v", lk.name, err)
		}
		msg := map[string]any{"type": "IDENTIFY", "msgid": "1", "name": "fakenode", "origin": "http://fake.invalid:5000", "version": "0.1"}
		if tt.key != "" {
			msg["key"] = tt.key
		}
		ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := ws.WriteJSON(msg); err != nil {
			t.Fatal(err)
		}
		_, data, err := ws.ReadMessage()
		ws.CloseNow()
		if err != nil || !strings.Contains(string(data), tt.reason) {
			t.Fatalf("fake node with key %q at %s: reply %s (%v), want %s", tt.key, lk.name, data, err, tt.reason)
		}
	}
	var body struct {
		Nodes []struct {
			Origin string `json:"origin"`
		} `json:"nodes"`
	}
	if err := call(lk.client, "GET", "/nodes", "", &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Nodes) != len(c.nodes) {
		t.Fatalf("%s lists %+v, want the %d real nodes only", lk.name, body.Nodes, len(c.nodes))
	}
	for _, n := range body.Nodes {
		if strings.Contains(n.Origin, "fake") {
			t.Fatalf("%s lists the fake node: %+v", lk.name, body.Nodes)
		}
	}
	eventually(t, 5*time.Second, lk.name+" logs the refusals", func() error {
		out := lk.proc.Output()
		if !strings.Contains(out, "no node key") || !strings.Contains(out, "wrong node key") {
			return errors.New("not logged yet")
		}
		return nil
	})
}

// commit starts a one-off process of a job on node n and returns its pid.
func (c *cluster) commit(n *clusterHost, job string) int {
	c.t.Helper()
	var body struct {
		Pid int `json:"pid"`
	}
	if err := call(n.client, "POST", "/jobs/default/"+job+"/commit", "{}", &body); err != nil {
		c.t.Fatal(err)
	}
	if c.commits[n] == nil {
		c.commits[n] = map[string][]int{}
	}
	c.commits[n]["default."+job] = append(c.commits[n]["default."+job], body.Pid)
	return body.Pid
}

// newCluster prepares two lookupds and three nodes; addr(i) gives the
// address of host i (0, 1: lookupds; 2, 3, 4: nodes) and ns(i) its
// namespace.
func newCluster(t *testing.T, addr func(i int) string, ns func(i int) string) *cluster {
	gafferd, lookupd := binaries(t)
	dir := t.TempDir()
	c := &cluster{t: t, cut: map[*clusterHost]bool{}, commits: map[*clusterHost]map[string][]int{}}
	// The lookupds take only nodes holding the node key: one from the
	// command line, one from a file.
	keyFile := filepath.Join(dir, "node.key")
	if err := os.WriteFile(keyFile, []byte("# the cluster's node key\n"+clusterKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		h := &clusterHost{name: fmt.Sprintf("lookupd%d", i), ns: ns(i), addr: addr(i), bin: lookupd,
			sock: filepath.Join(dir, fmt.Sprintf("lk%d.sock", i))}
		h.client = unixClient(h.sock)
		h.args = []string{"--bind", h.addr, "--bind", "unix:" + h.sock, "--ping-interval", clusterPing.String(), "-v"}
		if i == 0 {
			h.args = append(h.args, "--node-key", clusterKey)
		} else {
			h.args = append(h.args, "--node-key-file", keyFile)
		}
		c.lookupds = append(c.lookupds, h)
	}
	if err := os.WriteFile(filepath.Join(dir, "gafferd.key"), []byte(clusterKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		h := &clusterHost{name: fmt.Sprintf("gafferd%d", i), ns: ns(2 + i), addr: addr(2 + i), bin: gafferd,
			sock: filepath.Join(dir, fmt.Sprintf("n%d.sock", i))}
		h.client = unixClient(h.sock)
		ndir := filepath.Join(dir, fmt.Sprintf("node%d", i))
		if err := os.Mkdir(ndir, 0o700); err != nil {
			t.Fatal(err)
		}
		key := "lookupd_key = " + clusterKey
		if i == 1 {
			key = "lookupd_key_file = ../gafferd.key"
		}
		ini := fmt.Sprintf("[gaffer]\nrequire_key = false\n%s\n\n[process:web%d]\ncmd = sleep\nargs = 3600\nnumprocesses = %d\n\n"+
			"[process:common]\ncmd = sleep\nargs = 3600\n", key, i, i+1)
		if err := os.WriteFile(filepath.Join(ndir, "gaffer.ini"), []byte(ini), 0o600); err != nil {
			t.Fatal(err)
		}
		h.args = []string{"-c", filepath.Join(ndir, "gaffer.ini"), "--bind", h.addr, "--bind", "unix:" + h.sock,
			"--broadcast-address", h.origin(), "--log-level", "debug"}
		for _, lk := range c.lookupds {
			h.args = append(h.args, "--lookupd-address", lk.origin())
		}
		c.nodes = append(c.nodes, h)
	}
	return c
}

// run plays the scenario; cut and restore cut a node off the network and
// bring it back.
func (c *cluster) run(cut, restore func(n *clusterHost)) {
	t := c.t
	for _, h := range append(slices.Clone(c.lookupds), c.nodes...) {
		h.start(t)
	}
	lk0, lk1 := c.lookupds[0], c.lookupds[1]

	// Every node's jobs are found through either lookupd.
	for _, lk := range c.lookupds {
		eventually(t, 20*time.Second, "every node registered with "+lk.name, c.converged(lk))
	}
	// A program without the key is refused by both and never listed.
	for _, lk := range c.lookupds {
		c.fakeNodeRefused(lk)
	}

	// Killing one lookupd leaves discovery working through the other.
	if code := lk0.proc.Stop(t); code != 0 {
		t.Fatalf("lookupd0 exited with %d on SIGTERM, want 0", code)
	}
	c.commit(c.nodes[0], "web0")
	eventually(t, 10*time.Second, "lookupd1 follows with lookupd0 down", c.converged(lk1))

	// Restarting it brings back the full registry within seconds.
	began := time.Now()
	lk0.start(t)
	eventually(t, 15*time.Second, "the restarted lookupd0 has the full registry", c.converged(lk0))
	t.Logf("the restarted lookupd converged in %s", time.Since(began).Round(time.Millisecond))

	// A process started on a node shows up in findJob with its pid.
	n1 := c.nodes[1]
	pid := c.commit(n1, "web1")
	for _, lk := range c.lookupds {
		eventually(t, 10*time.Second, fmt.Sprintf("pid %d in %s's findJob", pid, lk.name), func() error {
			var body struct {
				Sources []struct {
					Pids     []int `json:"pids"`
					NodeInfo struct {
						Origin string `json:"origin"`
					} `json:"node_info"`
				} `json:"sources"`
			}
			if err := call(lk.client, "GET", "/findJob?name=default.web1", "", &body); err != nil {
				return err
			}
			for _, s := range body.Sources {
				if s.NodeInfo.Origin == n1.origin() && slices.Contains(s.Pids, pid) {
					return nil
				}
			}
			return fmt.Errorf("sources %+v", body.Sources)
		})
	}

	// Cutting a node's link removes it after the ping timeout…
	n2 := c.nodes[2]
	cut(n2)
	c.cut[n2] = true
	for _, lk := range c.lookupds {
		eventually(t, 3*clusterPing+10*time.Second, n2.name+" dropped by "+lk.name, func() error {
			var body struct {
				Nodes []struct {
					Origin string `json:"origin"`
				} `json:"nodes"`
			}
			if err := call(lk.client, "GET", "/nodes", "", &body); err != nil {
				return err
			}
			for _, n := range body.Nodes {
				if n.Origin == n2.origin() {
					return errors.New("still listed")
				}
			}
			if len(body.Nodes) != 2 {
				return fmt.Errorf("nodes %+v, want the 2 others", body.Nodes)
			}
			return c.converged(lk)()
		})
	}
	// …and it comes back on its own once the link is restored.
	restore(n2)
	delete(c.cut, n2)
	for _, lk := range c.lookupds {
		eventually(t, 30*time.Second, n2.name+" back in "+lk.name, c.converged(lk))
	}
}

var freePort = testenv.FreePort

// TestClusterLoopback: every program on 127.0.0.1; a node is "cut off" by
// freezing it (SIGSTOP), so that it stops pinging.
func TestClusterLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs 5 programs")
	}
	ports := make([]int, 5)
	for i := range ports {
		ports[i] = freePort(t)
	}
	c := newCluster(t, func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }, func(int) string { return "" })
	c.run(
		func(n *clusterHost) { syscall.Kill(n.proc.Cmd.Process.Pid, syscall.SIGSTOP) },
		func(n *clusterHost) { syscall.Kill(n.proc.Cmd.Process.Pid, syscall.SIGCONT) },
	)
}

// TestClusterNetns: every program in its own network namespace with its
// own address; cutting a node's link sets its switch port down.
func TestClusterNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs 5 programs")
	}
	if runtime.GOOS != "linux" {
		t.Skip("network namespaces are Linux only")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2's ip command is not installed; the network namespace test needs it")
	}
	prefix := fmt.Sprintf("gflk%d", os.Getpid())
	sw := prefix + "-sw"
	roles := []string{"lk0", "lk1", "n0", "n1", "n2"}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "add", sw).CombinedOutput(); err != nil {
		msg := string(out)
		if os.Geteuid() != 0 || strings.Contains(msg, "Operation not permitted") || strings.Contains(msg, "Permission denied") {
			t.Skipf("no privilege to create network namespaces (run as root or with CAP_SYS_ADMIN and CAP_NET_ADMIN): ip netns add: %v: %s", err, strings.TrimSpace(msg))
		}
		t.Fatalf("ip netns add %s: %v\n%s", sw, err, out)
	}
	// Registered first, so it runs after the programs are stopped.
	created := []string{sw}
	t.Cleanup(func() {
		for _, ns := range created {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v %s", ns, err, out)
			}
		}
	})
	ip("-n", sw, "link", "add", "br0", "type", "bridge")
	ip("-n", sw, "link", "set", "br0", "up")
	addrs := make([]string, len(roles))
	for i, role := range roles {
		ns := prefix + "-" + role
		ip("netns", "add", ns)
		created = append(created, ns)
		host := 10 + i
		addrs[i] = fmt.Sprintf("10.77.0.%d", host)
		port := "p-" + role
		ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", sw)
		ip("-n", sw, "link", "set", port, "master", "br0")
		ip("-n", sw, "link", "set", port, "up")
		ip("-n", ns, "addr", "add", addrs[i]+"/24", "dev", "eth0")
		ip("-n", ns, "link", "set", "eth0", "up")
		ip("-n", ns, "link", "set", "lo", "up")
	}
	c := newCluster(t,
		func(i int) string {
			if i < 2 {
				return addrs[i] + ":5010"
			}
			return addrs[i] + ":5000"
		},
		func(i int) string { return prefix + "-" + roles[i] })
	portOf := func(n *clusterHost) string { return "p-" + strings.TrimPrefix(n.ns, prefix+"-") }
	c.run(
		func(n *clusterHost) { ip("-n", sw, "link", "set", portOf(n), "down") },
		func(n *clusterHost) { ip("-n", sw, "link", "set", portOf(n), "up") },
	)
}
