package gaffer

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the child process of the tests: when
// GAFFER_TEST_CHILD is set, TestMain runs that behaviour instead of the
// tests, so no shell script is needed.
func TestMain(m *testing.M) {
	if mode := os.Getenv("GAFFER_TEST_CHILD"); mode != "" {
		runTestChild(mode, os.Args[1:])
		os.Exit(0)
	}
	SetSubreaper()
	os.Exit(m.Run())
}

func runTestChild(mode string, args []string) {
	switch mode {
	case "sleep":
		select {}
	case "exit":
		code, _ := strconv.Atoi(os.Getenv("EXIT_CODE"))
		os.Exit(code)
	case "echo":
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			fmt.Println(sc.Text())
		}
	case "lines":
		n, _ := strconv.Atoi(os.Getenv("LINES"))
		w := bufio.NewWriterSize(os.Stdout, 64<<10)
		pad := ""
		if width, _ := strconv.Atoi(os.Getenv("WIDTH")); width > 14 {
			pad = strings.Repeat("x", width-14)
		}
		for i := 1; i <= n; i++ {
			fmt.Fprintf(w, "%08d line%s\n", i, pad)
		}
		w.Flush()
		if os.Getenv("THEN_SLEEP") != "" {
			select {}
		}
	case "printenv":
		for _, k := range args {
			fmt.Printf("%s=%s\n", k, os.Getenv(k))
		}
		select {}
	case "ignoreterm":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		select {}
	case "doublefork":
		// Start an intermediate that starts a grandchild in its own
		// session and exits, so the grandchild is re-parented.
		self, _ := os.Executable()
		env := childEnv("intermediate")
		pid, err := syscall.ForkExec(self, []string{self}, &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2}})
		if err == nil {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}
		select {}
	case "intermediate":
		self, _ := os.Executable()
		env := childEnv("sleep")
		pid, err := syscall.ForkExec(self, []string{self}, &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{Setsid: true}})
		if err == nil {
			os.WriteFile(os.Getenv("PIDFILE"), []byte(strconv.Itoa(pid)), 0o644)
		}
		os.Exit(0)
	case "crash":
		time.Sleep(50 * time.Millisecond)
		os.Exit(3)
	case "escapetree", "escapee", "httpfd", "settings", "memhog":
		runContainChild(mode) // contain_child_test.go
	case "notifyready", "listen", "stamp", "exitafter", "notifyother", "printready", "httpready":
		runLifecycleChild(mode) // lifecycle_child_test.go
	}
}

// childEnv returns this process's environment with GAFFER_TEST_CHILD
// replaced by mode.
func childEnv(mode string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GAFFER_TEST_CHILD=") {
			env = append(env, kv)
		}
	}
	return append(env, "GAFFER_TEST_CHILD="+mode)
}

// childConfig returns a job config running the test binary in mode.
func childConfig(t testing.TB, name, mode string, env map[string]string) JobConfig {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := NewJobConfig(name, shellQuote(self))
	cfg.Env = map[string]string{"GAFFER_TEST_CHILD": mode}
	for k, v := range env {
		cfg.Env[k] = v
	}
	cfg.GracefulTimeout = 5 * time.Second
	return cfg
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func alive(osPid int) bool {
	if syscall.Kill(osPid, 0) != nil {
		return false
	}
	st := readStats(osPid)
	if !st.ok {
		return false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(osPid) + "/stat")
	if err != nil {
		return false
	}
	// A zombie is not alive.
	for i := len(data) - 1; i >= 0; i-- {
		if data[i] == ')' {
			return i+2 < len(data) && data[i+2] != 'Z'
		}
	}
	return true
}

// zombies lists this process's children that are zombies.
func zombies() []int {
	var out []int
	for _, pid := range ownChildren() {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		for i := len(data) - 1; i >= 0; i-- {
			if data[i] == ')' {
				if i+2 < len(data) && data[i+2] == 'Z' {
					out = append(out, pid)
				}
				break
			}
		}
	}
	return out
}
