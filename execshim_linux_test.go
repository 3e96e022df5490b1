package gaffer

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// settingsOf runs a job of the "settings" child with cfg's settings and
// returns what the child printed.
func settingsOf(t *testing.T, m *Manager, name string, set func(c *JobConfig)) (string, *Process) {
	t.Helper()
	cfg := childConfig(t, name, "settings", nil)
	cfg.RedirectOutput = []string{"out"}
	set(&cfg)
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	procs, _ := m.JobProcesses("default." + name)
	return readUntil(t, procs[0], "out", "end\n"), procs[0]
}

// The shim sets the resource limits, nice, umask and oom_score_adj in the
// child before it execs the command, and leaves no trace in its
// environment.
func TestExecShimSettings(t *testing.T) {
	m := newTestManager(t)
	five, adj := 5, 300
	out, _ := settingsOf(t, m, "set", func(c *JobConfig) {
		c.LimitNofile, c.LimitCore, c.LimitAS = "1024:2048", "0", "infinity"
		c.LimitNproc, c.LimitMemlock = "4000", "64K"
		c.Nice, c.Umask, c.OOMScoreAdj = &five, "0027", &adj
	})
	for _, want := range []string{"core=0:0", "as=18446744073709551615:18446744073709551615",
		"nproc=4000:4000", "memlock=65536:65536", "nice=5", "umask=0027", "oom_score_adj=300", shimEnv + "= set=false",
		"LISTEN_FDS= set=false"} {
		if !containsLine(out, want) {
			t.Errorf("the child's settings lack %q:\n%s", want, out)
		}
	}
	// The child above is a Go program, which raises its own soft
	// RLIMIT_NOFILE: a shell says what it got.
	sh := childConfig(t, "sh", "sleep", nil)
	sh.Shell, sh.Cmd = true, "echo nofile=$(ulimit -Sn):$(ulimit -Hn); echo end; exec sleep 100"
	sh.RedirectOutput, sh.LimitNofile = []string{"out"}, "1024:2048"
	if err := m.Load("default", sh, nil, true); err != nil {
		t.Fatal(err)
	}
	procs, _ := m.JobProcesses("default.sh")
	if out := readUntil(t, procs[0], "out", "end\n"); !containsLine(out, "nofile=1024:2048") {
		t.Errorf("the shell's limits: %q", out)
	}
	// Without any of these settings there is no shim: the child has
	// gafferd's own limits (the Go runtime's raised soft NOFILE undone).
	plain, p := settingsOf(t, m, "plain", func(c *JobConfig) {})
	if cmd := procCmdline(p.OSPid); len(cmd) == 0 || cmd[0] == shimArg0 {
		t.Errorf("command line %q", cmd)
	}
	var own string
	for _, l := range strings.Split(plain, "\n") {
		if strings.HasPrefix(l, "nice=") {
			own = l
		}
	}
	if own != "nice=0" {
		t.Errorf("a job without nice runs with %s", own)
	}
}

// A setting the kernel refuses is a spawn error that says which, as a
// failed exec is.
func TestExecShimErrors(t *testing.T) {
	m := newTestManager(t)
	cfg := childConfig(t, "bad", "sleep", nil)
	cfg.LimitNofile = strconv.Itoa(1 << 30) // above fs.nr_open
	err := m.Load("default", cfg, nil, true)
	if err == nil || !strings.Contains(err.Error(), "limit_nofile 1073741824: operation not permitted") {
		t.Errorf("load: %v", err)
	}
	cfg = childConfig(t, "missing", "sleep", nil)
	cfg.Cmd = "/bin/sh -c true"
	cfg.Nice = new(int)
	cfg.Cwd = t.TempDir()
	os.Chmod(cfg.Cwd, 0o700)
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Errorf("a shim'd /bin/sh: %v", err)
	}
}

// As root, with uid and gid, the shim applies the settings first (a
// negative nice, which only a privileged process may set) and then drops
// to the job's user; gafferd stays the parent.
func TestExecShimDropsPrivilegesLast(t *testing.T) {
	data, _ := os.ReadFile("/proc/self/status")
	var eff uint64
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			eff, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if os.Getuid() != 0 || eff&(1<<unix.CAP_SYS_NICE) == 0 || eff&(1<<unix.CAP_SETUID) == 0 {
		t.Skip("needs root with CAP_SYS_NICE and CAP_SETUID")
	}
	m := newTestManager(t)
	cfg := childConfig(t, "user", "sleep", nil)
	minus := -5
	cfg.Shell, cfg.Cmd = true, "echo uid=$(id -u) gid=$(id -g) nice=$(nice); echo end; exec sleep 100"
	cfg.RedirectOutput, cfg.UID, cfg.GID, cfg.Nice = []string{"out"}, "65534", "65534", &minus
	cfg.Cwd = "/"
	if err := m.Load("default", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	procs, _ := m.JobProcesses("default.user")
	p := procs[0]
	if out := readUntil(t, p, "out", "end\n"); !containsLine(out, "uid=65534 gid=65534 nice=-5") {
		t.Errorf("the child says %q", out)
	}
	if st, ok := readProcStat(p.OSPid); !ok || st.ppid != os.Getpid() {
		t.Errorf("the child's parent is %d, want gafferd (%d)", st.ppid, os.Getpid())
	}
}
