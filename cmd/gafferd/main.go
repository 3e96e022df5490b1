// Command gafferd is the gaffer daemon: it supervises the jobs of its
// configuration file and serves the HTTP and websocket API.
//
//	gafferd -c gaffer.ini [-v|-vv] [--bind ADDR]... [--require-key] …
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/gaffer-go/gaffer"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gafferd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		config      = fs.String("c", os.Getenv("GAFFERD_CONFIG"), "configuration file (gaffer.ini) or directory holding gafferd.ini")
		pluginsDir  = fs.String("p", "", "plugin directory")
		daemon      = fs.Bool("daemon", false, "run in the background")
		pidfile     = fs.String("pidfile", "", "write the pid to this file")
		binds       multiFlag
		lookupds    multiFlag
		broadcast   = fs.String("broadcast-address", "", "origin announced to lookupd (http:// or https://)")
		certfile    = fs.String("certfile", "", "TLS certificate for the API")
		keyfile     = fs.String("keyfile", "", "TLS key for the API")
		lkCA        = fs.String("cacert", "", "CA certificates for lookupd connections")
		lkCert      = fs.String("client-certfile", "", "client certificate for lookupd connections")
		lkKey       = fs.String("client-keyfile", "", "client key for lookupd connections")
		_           = fs.Int("backlog", 128, "listen backlog (the kernel's somaxconn applies)")
		errorLog    = fs.String("error-log", "", "log file (- for stderr)")
		logLevel    = fs.String("log-level", "", "critical, error, warning, info or debug")
		logFormat   = fs.String("log-format", "", "text or json")
		requireKey  = fs.Bool("require-key", false, "require an API key on every route")
		dataDir     = fs.String("data-dir", "", "where keys, users and state are kept (default: next to the config)")
		createAdmin = fs.Bool("create-admin-user", false, "create an admin user and key, then exit")
		username    = fs.String("username", "", "user name for --create-admin-user")
		password    = fs.String("password", "", "password for --create-admin-user")
		listAdmins  = fs.Bool("list-admins", false, "print the admin users and their keys, then exit")
		v1          = fs.Bool("v", false, "print lifecycle events on stdout")
		v2          = fs.Bool("vv", false, "print every event and all process output on stdout")
		version     = fs.Bool("version", false, "print the version and exit")
	)
	fs.Var(&binds, "bind", "listen address host:port or unix:/path (repeatable)")
	fs.Var(&lookupds, "lookupd-address", "lookupd URL (repeatable)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gafferd [-c gaffer.ini] [-v|-vv] [--bind ADDR]... [options]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gafferd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *version {
		fmt.Fprintf(stdout, "gafferd %s\n", gaffer.Version)
		return 0
	}
	if *daemon && os.Getenv("GAFFERD_DAEMONIZED") == "" {
		return daemonize(stderr)
	}

	d, err := gaffer.NewDaemon(gaffer.DaemonOptions{ConfigPath: *config})
	if err != nil {
		fmt.Fprintf(stderr, "gafferd: %v\n", err)
		return 1
	}
	cfg := d.Config()
	level := firstNonEmpty(*logLevel, cfg.LogLevel, "info")
	format := firstNonEmpty(*logFormat, cfg.LogFormat, "text")
	logPath := firstNonEmpty(*errorLog, cfg.ErrorLog)
	logOut := stderr
	if logPath != "" && logPath != "-" {
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			fmt.Fprintf(stderr, "gafferd: error log: %v\n", err)
			return 1
		}
		defer f.Close()
		logOut = f
	}
	logger, err := newLogger(logOut, level, format)
	if err != nil {
		fmt.Fprintf(stderr, "gafferd: %v\n", err)
		return 2
	}
	slog.SetDefault(logger)

	verbose := 0
	if *v1 {
		verbose = 1
	}
	if *v2 {
		verbose = 2
	}
	opts := gaffer.DaemonOptions{
		ConfigPath: *config, Binds: binds, RequireKey: *requireKey, DataDir: *dataDir,
		PluginsDir: *pluginsDir, LookupdAddrs: lookupds, Broadcast: *broadcast,
		CertFile: *certfile, KeyFile: *keyfile, Verbose: verbose, Console: stdout, Logger: logger,
		LookupdCertFile: *lkCert, LookupdKeyFile: *lkKey, LookupdCAFile: *lkCA,
	}
	d, err = gaffer.NewDaemon(opts)
	if err != nil {
		fmt.Fprintf(stderr, "gafferd: %v\n", err)
		return 1
	}

	if *createAdmin || *listAdmins {
		return adminCommand(d, *createAdmin, *username, *password, stdout, stderr)
	}

	pf := firstNonEmpty(*pidfile, cfg.Pidfile)
	if pf != "" {
		if err := gaffer.WritePidfile(pf); err != nil {
			fmt.Fprintf(stderr, "gafferd: %v\n", err)
			return 1
		}
		defer gaffer.RemovePidfile(pf)
	}
	if err := d.Run(context.Background(), nil); err != nil {
		fmt.Fprintf(stderr, "gafferd: %v\n", err)
		return 1
	}
	return 0
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "info", "":
		lv = slog.LevelInfo
	case "warning", "warn":
		lv = slog.LevelWarn
	case "error", "critical":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("unknown log level %q (use critical, error, warning, info or debug)", level)
	}
	hopts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, fmt.Errorf("unknown log format %q (use text or json)", format)
}

// adminCommand runs --create-admin-user or --list-admins.
func adminCommand(d *gaffer.Daemon, create bool, user, pass string, stdout, stderr io.Writer) int {
	store, err := gaffer.OpenAuthStore(d.DataDir())
	if err != nil {
		fmt.Fprintf(stderr, "gafferd: %v\n", err)
		return 1
	}
	if !create {
		for _, u := range store.Admins() {
			fmt.Fprintf(stdout, "%s - %s\n", u.Username, u.Key)
		}
		return 0
	}
	in := bufio.NewReader(os.Stdin)
	if user == "" {
		fmt.Fprint(stdout, "Username: ")
		line, _ := in.ReadString('\n')
		user = strings.ToLower(strings.TrimSpace(line))
	}
	if user == "" {
		fmt.Fprintln(stderr, "gafferd: empty username")
		return 1
	}
	if pass == "" {
		fmt.Fprint(stdout, "Password: ")
		line, _ := in.ReadString('\n')
		pass = strings.TrimRight(line, "\r\n")
		fmt.Fprint(stdout, "Confirm password: ")
		again, _ := in.ReadString('\n')
		if strings.TrimRight(again, "\r\n") != pass {
			fmt.Fprintln(stderr, "gafferd: the passwords differ")
			return 1
		}
	}
	if pass == "" {
		fmt.Fprintln(stderr, "gafferd: empty password")
		return 1
	}
	_, key, err := store.CreateAdminUser(user, pass)
	if err != nil {
		fmt.Fprintf(stderr, "gafferd: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "User '%s' created.\nAPI Key: %s\n", user, key.Key)
	return 0
}

// daemonize starts gafferd again in the background, in a new session,
// with stdio on /dev/null, and returns at once.
func daemonize(stderr io.Writer) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "gafferd: %v\n", err)
		return 1
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(stderr, "gafferd: %v\n", err)
		return 1
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), "GAFFERD_DAEMONIZED=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if wd, err := os.Getwd(); err == nil {
		cmd.Dir = wd
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "gafferd: cannot daemonize: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "gafferd started in the background (pid %d)\n", cmd.Process.Pid)
	return 0
}
