// Command gafferd is the gaffer daemon: it supervises the jobs of its
// configuration file and serves the HTTP and websocket API.
//
//	gafferd [-c] gaffer.ini [-v|-vv] [--bind ADDR]... [--require-key] …
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
	"runtime"
	"strings"
	"syscall"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/flagargs"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// The main goroutine stays on the main thread, where it serves the
// spawner: an upgrade in place (SIGUSR2) execs from the thread that is
// every child's parent, and that must be the main thread (see
// gaffer.RunWithSpawner).
func init() { runtime.LockOSThread() }

func main() {
	gaffer.RunWithSpawner(func() int { return run(os.Args[1:], os.Stdout, os.Stderr) })
}

// usageText is the synopsis of the gaffer documentation's "gafferd -h",
// then the options it lists, then the others.
const usageText = `usage: gafferd [-h] [-c CONFIG_FILE] [-p PLUGINS_DIR] [-v] [-vv] [--daemon]
               [--pidfile PIDFILE] [--bind BIND] [--certfile CERTFILE]
               [--keyfile KEYFILE] [--backlog BACKLOG]
               [config]

Run the gaffer daemon: supervise the jobs of the configuration and serve
the HTTP and websocket API.

positional arguments:
  config                configuration file (gaffer.ini), or a directory
                        holding gafferd.ini; the same as -c

optional arguments:
  -h, --help            show this help message and exit
  -c CONFIG_FILE, --config CONFIG_FILE
                        configuration file, or directory (default $GAFFERD_CONFIG)
  -p PLUGINS_DIR, --plugins-dir PLUGINS_DIR
                        plugin directory (also --plugin-dir)
  -v                    verbose mode: lifecycle events on stdout
  -vv                   like verbose mode but output stream too
  --daemon              start gafferd in the background
  --pidfile PIDFILE     write the pid to this file
  --bind BIND           listen address host:port or unix:/path (repeatable)
  --certfile CERTFILE   SSL certificate file for the default binding
  --keyfile KEYFILE     SSL key file for the default binding
  --backlog BACKLOG     listen backlog (the kernel's somaxconn applies)

other options:
`

// documentedFlags are the flags usageText already describes.
var documentedFlags = map[string]bool{"c": true, "config": true, "p": true, "plugins-dir": true, "plugin-dir": true,
	"v": true, "vv": true, "daemon": true, "pidfile": true, "bind": true, "certfile": true, "keyfile": true, "backlog": true}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, usageText)
	fs.VisitAll(func(f *flag.Flag) {
		if documentedFlags[f.Name] {
			return
		}
		arg, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if arg != "" {
			line += " " + arg
		}
		if len(line) < 23 {
			line += strings.Repeat(" ", 24-len(line))
		} else {
			line += "\n" + strings.Repeat(" ", 24)
		}
		fmt.Fprintf(w, "%s%s\n", line, usage)
	})
}

// usageHint is the one line printed after a command line mistake.
const usageHint = "usage: gafferd [-h] [-c CONFIG_FILE] [-p PLUGINS_DIR] [-v] [-vv] [options] [config] (gafferd -h lists the options)"

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gafferd", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the errors are printed below, with usageHint
	var (
		config      string
		pluginsDir  string
		daemon      = fs.Bool("daemon", false, "run in the background")
		pidfile     = fs.String("pidfile", "", "write the pid to this file")
		binds       multiFlag
		lookupds    multiFlag
		broadcast   = fs.String("broadcast-address", "", "origin `URL` announced to lookupd (http:// or https://)")
		certfile    = fs.String("certfile", "", "TLS certificate for the API")
		keyfile     = fs.String("keyfile", "", "TLS key for the API")
		lkCA        = fs.String("cacert", "", "`FILE` of CA certificates for lookupd connections")
		lkCert      = fs.String("client-certfile", "", "client certificate `FILE` for lookupd connections")
		lkKey       = fs.String("client-keyfile", "", "client key `FILE` for lookupd connections")
		_           = fs.Int("backlog", 128, "listen backlog (the kernel's somaxconn applies)")
		errorLog    = fs.String("error-log", "", "log `FILE` (- for stderr)")
		logLevel    = fs.String("log-level", "", "log `LEVEL`: critical, error, warning, info or debug")
		logFormat   = fs.String("log-format", "", "log `FORMAT`: text, json or journal (default journal when stderr is systemd's journal stream, else text)")
		requireKey  = fs.Bool("require-key", false, "require an API key on every route")
		dataDir     = fs.String("data-dir", "", "`DIR` where keys, users and state are kept (default: next to the config)")
		createAdmin = fs.Bool("create-admin-user", false, "create an admin user and key, then exit")
		username    = fs.String("username", "", "`USER` name for --create-admin-user")
		password    = fs.String("password", "", "`PASSWORD` for --create-admin-user")
		listAdmins  = fs.Bool("list-admins", false, "print the admin users and their keys, then exit")
		v1          = fs.Bool("v", false, "print lifecycle events on stdout")
		v2          = fs.Bool("vv", false, "print every event and all process output on stdout")
		version     = fs.Bool("version", false, "print the version and exit")
		upCheck     = fs.Bool("upgrade-check", false, "check that this binary can take over a running gafferd (read the configuration, print the handoff protocol) and exit")
	)
	for _, n := range []string{"c", "config"} {
		fs.StringVar(&config, n, "", "configuration file or directory")
	}
	for _, n := range []string{"p", "plugins-dir", "plugin-dir"} {
		fs.StringVar(&pluginsDir, n, "", "plugin directory")
	}
	fs.Var(&binds, "bind", "listen address host:port or unix:/path (repeatable)")
	fs.Var(&lookupds, "lookupd-address", "lookupd `URL` (repeatable)")
	fs.Usage = func() {}
	if err := flagargs.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stderr, fs)
			return 0
		}
		fmt.Fprintf(stderr, "gafferd: %v\n%s\n", err, usageHint)
		return 2
	}
	switch {
	case fs.NArg() > 1:
		fmt.Fprintf(stderr, "gafferd: unexpected argument %q (one configuration at most)\n%s\n", fs.Arg(1), usageHint)
		return 2
	case fs.NArg() == 1 && config != "" && config != fs.Arg(0):
		fmt.Fprintf(stderr, "gafferd: two configurations: -c %q and %q (give one)\n%s\n", config, fs.Arg(0), usageHint)
		return 2
	case fs.NArg() == 1:
		config = fs.Arg(0)
	case config == "":
		config = os.Getenv("GAFFERD_CONFIG")
	}
	if *version {
		fmt.Fprintf(stdout, "gafferd %s\n", gaffer.Version)
		return 0
	}
	if *upCheck {
		if err := gaffer.UpgradeCheck(config, stdout); err != nil {
			fmt.Fprintf(stderr, "gafferd: %v\n", err)
			return 1
		}
		return 0
	}
	if *daemon && os.Getenv("GAFFERD_DAEMONIZED") == "" {
		return daemonize(stderr)
	}

	// A first read for the log settings; its warnings wait for the logger.
	d, err := gaffer.NewDaemon(gaffer.DaemonOptions{ConfigPath: config, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintf(stderr, "gafferd: %v\n", err)
		return 1
	}
	cfg := d.Config()
	level := firstNonEmpty(*logLevel, cfg.LogLevel, "info")
	format := *logFormat
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
	if format == "" {
		format = firstNonEmpty(cfg.LogFormat, "text")
		if format == "text" && onJournal(logOut) {
			format = "journal"
		}
	}
	logger, err := newLogger(logOut, level, format)
	if err != nil {
		fmt.Fprintf(stderr, "gafferd: %v\n", err)
		return 2
	}
	slog.SetDefault(logger)
	fatal := "gafferd: " // under the journal, the last words are errors
	if format == "journal" {
		fatal = journalPriority(slog.LevelError) + fatal
	}

	verbose := 0
	if *v1 {
		verbose = 1
	}
	if *v2 {
		verbose = 2
	}
	opts := gaffer.DaemonOptions{
		ConfigPath: config, Binds: binds, RequireKey: *requireKey, DataDir: *dataDir,
		PluginsDir: pluginsDir, LookupdAddrs: lookupds, Broadcast: *broadcast,
		CertFile: *certfile, KeyFile: *keyfile, Verbose: verbose, Console: stdout, Logger: logger,
		LookupdCertFile: *lkCert, LookupdKeyFile: *lkKey, LookupdCAFile: *lkCA,
	}
	d, err = gaffer.NewDaemon(opts)
	if err != nil {
		fmt.Fprintf(stderr, "%s%v\n", fatal, err)
		return 1
	}

	if *createAdmin || *listAdmins {
		return adminCommand(d, *createAdmin, *username, *password, stdout, stderr)
	}

	pf := firstNonEmpty(*pidfile, cfg.Pidfile)
	if pf != "" {
		if err := gaffer.WritePidfile(pf); err != nil {
			fmt.Fprintf(stderr, "%s%v\n", fatal, err)
			return 1
		}
		defer gaffer.RemovePidfile(pf)
	}
	if err := d.Run(context.Background(), nil); err != nil {
		fmt.Fprintf(stderr, "%s%v\n", fatal, err)
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
	case "journal":
		return slog.New(newJournalHandler(w, hopts)), nil
	}
	return nil, fmt.Errorf("unknown log format %q (use text, json or journal)", format)
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
