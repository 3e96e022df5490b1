package gaffer

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The lifecycle tests' children (runTestChild dispatches here). Each
// records what it did, with the time, in $STAMPS: one line
// "<tag> <what> <unix nanoseconds>" (tag is $TAG, else $GAFFER_JOB).
//
//	notifyready  after $DELAY ms, READY=1 (and STATUS=$STATUS) unless
//	             $FAIL_FILE exists; then $PINGS WATCHDOG=1 every $PING ms
//	             (with WATCHDOG_USEC, it records whether WATCHDOG_PID is
//	             its own pid: watchdog-pid-ok)
//	listen       after $DELAY ms, listens on 127.0.0.1:$PORT
//	stamp        records its spawn and waits
//	exitafter    exits with $EXIT_CODE after $DELAY ms
//	notifyother  sends READY=1 to $TARGET, another process's socket
//	printready   after $DELAY ms, prints "server listening" on stdout
//	httpready    serves 127.0.0.1:$PORT at once: /ready answers 503 until
//	             $DELAY ms passed, then 200 (recorded once: "http-ok")
//
// Every mode records "spawn" first, "term" on SIGTERM (then exits after
// $TERM_DELAY ms), and "abort" on SIGABRT (then exits with status 134).
func runLifecycleChild(mode string) {
	stamp("spawn")
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGABRT)
	go func() {
		for s := range sigs {
			if s == syscall.SIGABRT {
				stamp("abort")
				os.Exit(134)
			}
			stamp("term")
			time.Sleep(envMillis("TERM_DELAY"))
			os.Exit(0)
		}
	}()
	if mode == "httpready" {
		serveHTTPReady()
	}
	time.Sleep(envMillis("DELAY"))
	switch mode {
	case "notifyready":
		if os.Getenv("WATCHDOG_USEC") != "" {
			if os.Getenv("WATCHDOG_PID") == strconv.Itoa(os.Getpid()) {
				stamp("watchdog-pid-ok") // sd_watchdog_enabled(3) takes it
			} else {
				stamp("watchdog-pid-wrong")
			}
		}
		if f := os.Getenv("FAIL_FILE"); f != "" {
			if _, err := os.Stat(f); err == nil {
				stamp("never-ready")
				select {}
			}
		}
		stamp("ready")
		msg := "READY=1"
		if s := os.Getenv("STATUS"); s != "" {
			msg += "\nSTATUS=" + s
		}
		childNotify(os.Getenv("NOTIFY_SOCKET"), msg)
		n, _ := strconv.Atoi(os.Getenv("PINGS"))
		for i := 0; i < n; i++ {
			time.Sleep(envMillis("PING"))
			childNotify(os.Getenv("NOTIFY_SOCKET"), "WATCHDOG=1")
			stamp("ping")
		}
		if n > 0 {
			stamp("pings-stopped")
		}
	case "listen":
		l, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
		if err != nil {
			stamp("listen-failed")
			os.Exit(1)
		}
		stamp("listening")
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	case "exitafter":
		code, _ := strconv.Atoi(os.Getenv("EXIT_CODE"))
		stamp("exit")
		os.Exit(code)
	case "notifyother":
		childNotify(os.Getenv("TARGET"), "READY=1\nSTATUS=spoofed")
		stamp("sent")
	case "printready":
		fmt.Println("booting")
		fmt.Println("server listening on :80")
		stamp("printed")
	}
	select {}
}

func serveHTTPReady() {
	l, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		stamp("listen-failed")
		os.Exit(1)
	}
	okAt := time.Now().Add(envMillis("DELAY"))
	var once sync.Once
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" || time.Now().Before(okAt) {
			w.WriteHeader(503)
			return
		}
		once.Do(func() { stamp("http-ok") })
		w.WriteHeader(200)
	}))
}

func envMillis(k string) time.Duration {
	n, _ := strconv.Atoi(os.Getenv(k))
	return time.Duration(n) * time.Millisecond
}

// stamp appends "<tag> <what> <ns>" to $STAMPS.
func stamp(what string) {
	path := os.Getenv("STAMPS")
	if path == "" {
		return
	}
	tag := os.Getenv("TAG")
	if tag == "" {
		tag = os.Getenv("GAFFER_JOB")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "%s %s %d %d\n", tag, what, time.Now().UnixNano(), os.Getpid())
	f.Close()
}

// childNotify is sd_notify(3): one datagram to the socket.
func childNotify(addr, msg string) {
	if addr == "" {
		return
	}
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		stamp("notify-dial-failed")
		return
	}
	c.Write([]byte(msg))
	c.Close()
}
