package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procsInCgroup lists the live processes whose cgroup2 path holds part
// and whose command line is cmdline (words joined by spaces).
func procsInCgroup(part, cmdline string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !processAlive(pid) {
			continue
		}
		cg, _ := os.ReadFile("/proc/" + e.Name() + "/cgroup")
		cl, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.Contains(string(cg), part) && strings.TrimRight(strings.ReplaceAll(string(cl), "\x00", " "), " ") == cmdline {
			out = append(out, pid)
		}
	}
	return out
}

// A grandchild that left its group and cleared its environment carries
// no marker: after a kill -9 of gafferd only its cgroup says where it
// comes from, and the next gafferd ends it by that cgroup and removes the
// previous instance's cgroups.
const cgroupEscapeConfig = baseConfig + `
[process:hider]
cmd = sh -c '(env -i setsid sleep 304 &); exec sleep 305'
graceful_timeout = 2

[process:shimmed]
cmd = sleep 306
limit_nofile = 512

[process:dropped]
cmd = sleep 307
limit_nofile = 256
uid = 65534
gid = 65534
`

func TestKill9LeftoversFoundByCgroup(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, cgroupEscapeConfig)
	var welcome map[string]any
	d.getJSON("/", &welcome)
	cont, _ := welcome["containment"].(string)
	root, ok := strings.CutPrefix(cont, "cgroup2:")
	if !ok {
		d.stop()
		t.Skipf("no cgroup2 containment on this machine (GET / says %q)", cont)
	}
	name := filepath.Base(root) // gaffer-<instance>
	var hidden []int
	d.waitFor(10*time.Second, "the hidden grandchild", func() bool {
		hidden = procsInCgroup("/"+name+"/", "sleep 304")
		return len(hidden) == 1
	})
	t.Cleanup(func() {
		for _, pid := range procsInCgroup("/"+name+"/", "sleep 304") {
			killPid(pid)
		}
	})
	env, _ := os.ReadFile("/proc/" + strconv.Itoa(hidden[0]) + "/environ")
	if strings.Contains(string(env), "GAFFER_INSTANCE=") {
		t.Fatalf("the grandchild carries the markers: %q", env)
	}
	d.waitFor(10*time.Second, "the children started through the exec shim", func() bool {
		return len(procsInCgroup("/"+name+"/", "sleep 306")) == 1 && len(procsInCgroup("/"+name+"/", "sleep 307")) == 1
	})
	d.kill9()
	// The parent-death signal outlives the shim's exec, and the shim
	// arms it again after it changed user.
	waitUntil(t, 10*time.Second, "the children to die with gafferd", func() bool {
		return len(procsInCgroup("/"+name+"/", "sleep 305")) == 0 && len(procsInCgroup("/"+name+"/", "sleep 306")) == 0 &&
			len(procsInCgroup("/"+name+"/", "sleep 307")) == 0
	})
	if !processAlive(hidden[0]) {
		t.Fatal("the hidden grandchild died with gafferd: the test needs it to survive")
	}
	d2 := runDaemon(t, dir)
	if processAlive(hidden[0]) {
		t.Fatalf("the hidden grandchild %d survived the restart", hidden[0])
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("the killed gafferd's cgroup %s is still there: %v", root, err)
	}
	if out := d2.output(); !strings.Contains(out, `found_by="cgroup `+root) {
		t.Errorf("the log does not say the leftover was found by its cgroup:\n%s", out)
	}
	d2.stop()
}

func killPid(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}

// removeInstanceCgroups removes the empty cgroups the instances left in
// this process's cgroup2 cgroup (detached processes killed by a test after
// their gafferd stopped), waiting a little for their processes to end.
func removeInstanceCgroups(insts ...string) {
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	pc, _ := os.ReadFile("/proc/self/cgroup")
	var base string
	for _, line := range strings.Split(string(pc), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			for _, m := range strings.Split(string(mi), "\n") {
				f := strings.Fields(m)
				if len(f) > 9 && f[len(f)-3] == "cgroup2" && strings.HasPrefix(p, f[3]) {
					base = filepath.Join(f[4], strings.TrimPrefix(p, f[3]))
				}
			}
		}
	}
	if base == "" {
		return
	}
	for _, inst := range insts {
		root := filepath.Join(base, "gaffer-"+inst)
		deadline := time.Now().Add(5 * time.Second)
		for {
			var dirs []string
			filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
				if err == nil && e.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			for i := len(dirs) - 1; i >= 0; i-- {
				os.Remove(dirs[i])
			}
			if _, err := os.Stat(root); os.IsNotExist(err) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
