package gaffer

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The child modes of the containment tests (see TestMain).
func runContainChild(mode string) {
	switch mode {
	case "escapetree":
		// COUNT descendants, each in a session of its own (out of the
		// process group) and, with CLEAR_ENV, without the markers of its
		// environment: only a cgroup finds those. Their pids go to
		// PIDFILE, one a line.
		n, _ := strconv.Atoi(os.Getenv("COUNT"))
		self, _ := os.Executable()
		env := childEnv("escapee")
		if os.Getenv("CLEAR_ENV") != "" {
			env = []string{"GAFFER_TEST_CHILD=escapee", "IGNORE_TERM=" + os.Getenv("IGNORE_TERM")}
		}
		var pids []string
		for i := 0; i < n; i++ {
			pid, err := syscall.ForkExec(self, []string{self}, &syscall.ProcAttr{Env: env,
				Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{Setsid: true}})
			if err == nil {
				pids = append(pids, strconv.Itoa(pid))
			}
		}
		os.WriteFile(os.Getenv("PIDFILE")+".tmp", []byte(strings.Join(pids, "\n")), 0o644)
		os.Rename(os.Getenv("PIDFILE")+".tmp", os.Getenv("PIDFILE"))
		select {}
	case "escapee":
		if os.Getenv("IGNORE_TERM") != "" {
			signal.Ignore(syscall.SIGTERM)
		}
		select {}
	case "httpfd":
		serveListenFDs()
	case "settings":
		// What the exec shim set, one "key=value" a line, then sleep.
		var lim unix.Rlimit
		for _, r := range []struct {
			name string
			res  int
		}{{"nofile", unix.RLIMIT_NOFILE}, {"nproc", unix.RLIMIT_NPROC}, {"core", unix.RLIMIT_CORE},
			{"memlock", unix.RLIMIT_MEMLOCK}, {"as", unix.RLIMIT_AS}} {
			unix.Getrlimit(r.res, &lim)
			fmt.Printf("%s=%d:%d\n", r.name, lim.Cur, lim.Max)
		}
		nice, _ := unix.Getpriority(unix.PRIO_PROCESS, 0)
		fmt.Printf("nice=%d\n", 20-nice)
		mask := unix.Umask(0)
		fmt.Printf("umask=%04o\n", mask)
		oom, _ := os.ReadFile("/proc/self/oom_score_adj")
		fmt.Printf("oom_score_adj=%s\n", strings.TrimSpace(string(oom)))
		fmt.Printf("uid=%d gid=%d\n", os.Getuid(), os.Getgid())
		for _, k := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", shimEnv} {
			v, ok := os.LookupEnv(k)
			fmt.Printf("%s=%s set=%v\n", k, v, ok)
		}
		fmt.Printf("pid=%d\n", os.Getpid())
		fmt.Println("end")
		select {}
	case "memhog":
		if os.Getenv("WAIT_STDIN") != "" {
			bufio.NewReader(os.Stdin).ReadString('\n') // the test holds the process first
		}
		n, _ := strconv.Atoi(os.Getenv("MEM"))
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i)
		}
		fmt.Println("allocated")
		for {
			time.Sleep(time.Hour)
			_ = b[0]
		}
	}
}

// serveListenFDs serves HTTP on the sockets of sd_listen_fds(3): it
// checks LISTEN_PID, answers each request with its pid and, on SIGTERM,
// stops accepting, answers what it accepted, and exits. (Not with
// http.Server.Shutdown: it drops a request read after it began, one the
// server had accepted already.)
func serveListenFDs() {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM) // before the first accept
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) || n < 1 {
		fmt.Fprintf(os.Stderr, "LISTEN_PID=%q, pid %d, LISTEN_FDS=%d\n", os.Getenv("LISTEN_PID"), os.Getpid(), n)
		os.Exit(2)
	}
	pid := strconv.Itoa(os.Getpid())
	var conns atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(pid))
	}), ConnState: func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			conns.Add(-1)
		}
	}}
	var serving sync.WaitGroup
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.FileListener(os.NewFile(uintptr(3+i), "listen"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ls = append(ls, l)
		serving.Add(1)
		go func() {
			defer serving.Done()
			srv.Serve(l)
		}()
	}
	fmt.Println("serving")
	<-term
	for _, l := range ls {
		l.Close()
	}
	serving.Wait() // nothing is accepted any more
	srv.SetKeepAlivesEnabled(false)
	deadline := time.Now().Add(10 * time.Second)
	for conns.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	os.Exit(0)
}
