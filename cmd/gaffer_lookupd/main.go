// Command gaffer_lookupd is the gaffer discovery server: gafferd nodes
// register their jobs and processes with it over a websocket, and clients
// find which nodes run a job (reference §11).
//
//	gaffer_lookupd [--bind 127.0.0.1:5010|unix:/path]... [--certfile F --keyfile F]
//	               [--pidfile F] [--daemon] [-v] [--ping-interval 15s]
//	               [--node-key KEY | --node-key-file F]
package main

import (
	"bufio"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gaffer-go/gaffer"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gaffer_lookupd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		certfile  = fs.String("certfile", "", "TLS certificate (PEM); needs --keyfile")
		keyfile   = fs.String("keyfile", "", "TLS key (PEM)")
		cacert    = fs.String("cacert", "", "CA (PEM) that client certificates must be signed by (turns on client certificate checks)")
		pidfile   = fs.String("pidfile", "", "write the pid to this file")
		daemon    = fs.Bool("daemon", false, "run in the background")
		_         = fs.Int("backlog", 128, "listen backlog (the kernel's somaxconn applies)")
		ping      = fs.Duration("ping-interval", gaffer.DefaultLookupdPingInterval, "interval nodes PING at; a node silent for 3 intervals is dropped")
		logFormat = fs.String("log-format", "text", "text or json")
		verbose   = fs.Bool("v", false, "debug logging (every connection and protocol error)")
		version   = fs.Bool("version", false, "print the version and exit")
		cors      multiFlag
		binds     multiFlag
		nodeKeys  multiFlag
		keyFiles  multiFlag
	)
	fs.Var(&nodeKeys, "node-key", "node key: only nodes that send it (gafferd's [gaffer] lookupd_key) are registered (repeatable, to rotate keys)")
	fs.Var(&keyFiles, "node-key-file", "file of node keys, one a line (# comments); same as --node-key, kept out of the process list (repeatable)")
	fs.Var(&keyFiles, "keys-file", "same as --node-key-file")
	fs.Var(&binds, "bind", "listen address host:port, [v6]:port, host (port 5010) or unix:/path (repeatable; default "+gaffer.DefaultLookupdBind+")")
	fs.Var(&cors, "cors-origin", "origin allowed to read the API from a browser (repeatable; * for any)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gaffer_lookupd [--bind ADDR] [--node-key KEY | --node-key-file F] [--certfile F --keyfile F] [--pidfile F] [--daemon] [-v] [options]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gaffer_lookupd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *version {
		fmt.Fprintf(stdout, "gaffer_lookupd %s\n", gaffer.Version)
		return 0
	}
	if *ping <= 0 {
		fmt.Fprintf(stderr, "gaffer_lookupd: --ping-interval must be positive, got %s\n", *ping)
		return 2
	}
	if *logFormat != "text" && *logFormat != "json" {
		fmt.Fprintf(stderr, "gaffer_lookupd: --log-format: expected text or json, got %q\n", *logFormat)
		return 2
	}
	for _, f := range []struct{ flag, path string }{{"certfile", *certfile}, {"keyfile", *keyfile}, {"cacert", *cacert}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			fmt.Fprintf(stderr, "gaffer_lookupd: --%s: %v\n", f.flag, err)
			return 1
		}
	}
	if (*certfile == "") != (*keyfile == "") || (*cacert != "" && *certfile == "") {
		fmt.Fprintln(stderr, "gaffer_lookupd: TLS needs both --certfile and --keyfile (and --cacert needs them)")
		return 2
	}
	var keys []string
	for _, k := range nodeKeys {
		key, ok := gaffer.ParseAPIKeyHeader(k)
		if !ok {
			fmt.Fprintln(stderr, "gaffer_lookupd: --node-key: not a valid key (1 to 256 bytes, no spaces or control characters)")
			return 2
		}
		keys = append(keys, key)
	}
	for _, f := range keyFiles {
		more, err := readKeys(f)
		if err != nil {
			fmt.Fprintf(stderr, "gaffer_lookupd: --node-key-file: %v\n", err)
			return 1
		}
		keys = append(keys, more...)
	}
	var requireKey func(string) bool
	if len(keys) > 0 {
		requireKey = func(k string) bool {
			ok := 0
			for _, want := range keys {
				ok |= subtle.ConstantTimeCompare([]byte(k), []byte(want))
			}
			return ok == 1
		}
	}
	if *daemon && os.Getenv("GAFFER_LOOKUPD_DAEMONIZED") == "" {
		return daemonize(stderr)
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	hopts := &slog.HandlerOptions{Level: level}
	var logger *slog.Logger
	if *logFormat == "json" {
		logger = slog.New(slog.NewJSONHandler(stderr, hopts))
	} else {
		logger = slog.New(slog.NewTextHandler(stderr, hopts))
	}

	if *pidfile != "" {
		if err := gaffer.WritePidfile(*pidfile); err != nil {
			fmt.Fprintf(stderr, "gaffer_lookupd: %v\n", err)
			return 1
		}
		defer gaffer.RemovePidfile(*pidfile)
	}
	// Stop signals are caught before listening, so that a signal sent as
	// soon as the address is logged is handled.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	signal.Ignore(syscall.SIGHUP)

	lk := gaffer.NewLookupd(gaffer.LookupdOptions{PingInterval: *ping, RequireKey: requireKey, CORSOrigins: cors, Logger: logger})
	// The event feed over SockJS (the raw websocket is /lookup/websocket).
	feed := gaffer.LookupdSockJS(lk)
	lk.Handle("/lookup", feed)
	lk.Handle("/lookup/", feed)
	if len(binds) == 0 {
		binds = multiFlag{gaffer.DefaultLookupdBind}
	}
	srv := &http.Server{Handler: lk, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	var listeners []net.Listener
	for _, b := range binds {
		// TLS applies to the TCP addresses; a unix socket is local.
		cert, key, ca := *certfile, *keyfile, *cacert
		if strings.HasPrefix(strings.TrimSpace(b), "unix:") {
			cert, key, ca = "", "", ""
		}
		l, err := gaffer.ListenLookupd(b, cert, key, ca)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			fmt.Fprintf(stderr, "gaffer_lookupd: %v\n", err)
			return 1
		}
		listeners = append(listeners, l)
	}
	if requireKey == nil {
		for _, l := range listeners {
			if ta, ok := l.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
				logger.Warn("no --node-key: any program that can reach this lookupd can register a node, and clients will list it", "address", l.Addr().String())
				break
			}
		}
	}
	errc := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { errc <- srv.Serve(l) }()
		logger.Info("gaffer_lookupd listening", "address", l.Addr().String(), "tls", *certfile != "" && l.Addr().Network() == "tcp",
			"ping_interval", ping.String(), "node_key", requireKey != nil)
	}

	code := 0
	select {
	case sig := <-sigs:
		logger.Info("gaffer_lookupd stopping", "signal", sig.String())
	case err := <-errc:
		logger.Error("gaffer_lookupd: serve failed", "err", err)
		code = 1
	}
	srv.Close()
	lk.Close()
	return code
}

// readKeys reads the accepted node keys: one a line, blank lines and
// lines starting with # skipped.
func readKeys(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, ok := gaffer.ParseAPIKeyHeader(s)
		if !ok {
			return nil, fmt.Errorf("%s:%d: not a valid API key (no spaces or control characters, at most 256 bytes)", path, line)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no key", path)
	}
	return keys, nil
}

// daemonize starts gaffer_lookupd again in the background, in a new
// session, with stdio on /dev/null, and returns at once.
func daemonize(stderr io.Writer) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "gaffer_lookupd: %v\n", err)
		return 1
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(stderr, "gaffer_lookupd: %v\n", err)
		return 1
	}
	defer null.Close()
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), "GAFFER_LOOKUPD_DAEMONIZED=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "gaffer_lookupd: cannot daemonize: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "gaffer_lookupd started in the background (pid %d)\n", cmd.Process.Pid)
	return 0
}
