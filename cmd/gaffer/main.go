// Command gaffer runs a Procfile application in the foreground (like
// foreman), exports it, and drives a gafferd over its HTTP API.
//
//	gaffer [global options] <command> [options] [args]
//	gaffer start [-c web=2,worker=1] [<type>]
//	gaffer load [<app>|<file.json>] | ps [<app>] | scale [<app>] web=3 | logs | unload [<app>|<job>...] ...
//
// Run "gaffer help" for the list of commands and "gaffer <command> -h" for
// the options of one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/flagargs"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// usageError is a command line mistake: exit status 2, with the message
// and a one-line usage hint (the command's, when cmd is set).
type usageError struct {
	msg string
	cmd *command
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitError ends the program with a status and no message (gaffer run
// passes on its command's status).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// globals are the options given before the command.
type globals struct {
	procfile             string
	root                 string
	envFiles             multiFlag
	endpoint             string
	apiKey               string
	certfile             string
	keyfile              string
	cacert               string
	apiKeyFor            multiFlag // ORIGIN=KEY, for ps --all-nodes (allnodes.go)
	procfileSet, rootSet bool
	verbose, veryVerbose bool // -v, --vv: for start
}

// cli is the state of one run of the program.
type cli struct {
	g      globals
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	ctx    context.Context
	client *gaffer.Client
	// globals is the parsed global flag set: its flags are accepted
	// after the command too.
	globals *flag.FlagSet
}

// globalHint is the one line printed after a mistake in the global
// options or the command name.
const globalHint = "usage: gaffer [options] <command> [<args>...] (gaffer help lists the options and commands)"

// noteGlobalSet records the global flags that were given.
func (c *cli) noteGlobalSet(f *flag.Flag) {
	switch f.Name {
	case "f", "procfile":
		c.g.procfileSet = true
	case "d", "directory", "root":
		c.g.rootSet = true
	}
}

// command is one subcommand.
type command struct {
	name    string
	aliases []string
	// usage is the synopsis after the command name, one form per line:
	// the gaffer documentation's form first when it has one.
	usage string
	short string
	long  string
	// setup declares the options on fs and returns the function that
	// runs the command with the positional arguments.
	setup  func(c *cli, fs *flag.FlagSet) func(args []string) error
	hidden bool
	// rawArgs: options only before the first argument (the rest is a
	// command line of its own).
	rawArgs bool
}

var commands []*command

func findCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
		for _, a := range c.aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}

func globalUsage(w io.Writer) {
	fmt.Fprint(w, `usage: gaffer [--version] [-f procfile] [-d root] [-e envfile|k=v]... [-v|--vv]
              [--endpoint address] [--api-key KEY] [--certfile F --keyfile F] [--cacert F]
              <command> [<args>...]

Global options (they may also follow the command):
  -h, --help                 show this help message and exit
  --version                  show the version and exit
  -f, --procfile FILE        the Procfile (default ./Procfile)
  -d, --directory DIR        the application root (default: the Procfile's directory;
                             also --root)
  -e, --env FILE|KEY=VALUE   a .env file, after <root>/.env, or one variable (repeatable)
  --endpoint ADDRESS         gafferd: http://host:port, https://..., host:port or unix:/path
                             (also -g, --gafferd-http-address; default $GAFFERD_ADDRESS,
                             else `+gaffer.DefaultEndpoint+`)
  --api-key KEY              API key (default $GAFFER_API_KEY, else the key saved by login)
  --api-key-for ORIGIN=KEY   the key of one node, for ps --all-nodes (repeatable; --api-key
                             is never sent to the nodes a lookupd lists)
  --certfile, --keyfile F    TLS client certificate and key
  --cacert F                 CA certificates that sign gafferd's certificate
  -v, --vv                   verbose output of start (--vv: every lifecycle event too)

Commands:
`)
	list := append([]*command(nil), commands...)
	sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
	for _, c := range list {
		if c.hidden {
			continue
		}
		name := c.name
		if len(c.aliases) > 0 {
			name += " (" + strings.Join(c.aliases, ", ") + ")"
		}
		fmt.Fprintf(w, "    %-26s %s\n", name, c.short)
	}
	fmt.Fprint(w, "\nRun 'gaffer help <command>' or 'gaffer <command> -h' for details.\n")
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("gaffer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // -h and mistakes are handled after Parse
	g := &c.g
	for _, n := range []string{"f", "procfile"} {
		fs.StringVar(&g.procfile, n, "", "the Procfile")
	}
	for _, n := range []string{"d", "directory", "root"} {
		fs.StringVar(&g.root, n, "", "the application root")
	}
	for _, n := range []string{"e", "env"} {
		fs.Var(&g.envFiles, n, "a .env file (repeatable)")
	}
	for _, n := range []string{"g", "endpoint", "gafferd-http-address", "connect"} {
		fs.StringVar(&g.endpoint, n, "", "gafferd address")
	}
	fs.StringVar(&g.apiKey, "api-key", "", "API key")
	fs.Var(&g.apiKeyFor, "api-key-for", "ORIGIN=KEY: the API key of one node, for ps --all-nodes (repeatable)")
	fs.StringVar(&g.certfile, "certfile", "", "TLS client certificate")
	fs.StringVar(&g.keyfile, "keyfile", "", "TLS client key")
	fs.StringVar(&g.cacert, "cacert", "", "TLS CA certificates")
	fs.BoolVar(&g.verbose, "v", false, "verbose output")
	fs.BoolVar(&g.veryVerbose, "vv", false, "very verbose output")
	version := fs.Bool("version", false, "print the version")
	fs.SetOutput(io.Discard) // errors are printed with a one-line hint
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			globalUsage(stderr)
			return 0
		}
		fmt.Fprintf(stderr, "gaffer: %v\n%s\n", err, globalHint)
		return 2
	}
	c.globals = fs
	fs.Visit(c.noteGlobalSet)
	if *version {
		fmt.Fprintf(stdout, "gaffer version %s\n", gaffer.Version)
		return 0
	}
	rest := fs.Args()
	if len(rest) == 0 {
		globalUsage(stderr)
		return 2
	}
	name := rest[0]
	cmd := findCommand(name)
	if cmd == nil {
		fmt.Fprintf(stderr, "gaffer: unknown command %q\n%s\n", name, globalHint)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c.ctx = ctx
	err := c.runCommand(cmd, rest[1:])
	if c.client != nil {
		c.client.Close()
	}
	return c.exitCode(err)
}

// runCommand parses the command's options, and the global options that
// follow the command, and runs it.
func (c *cli) runCommand(cmd *command, args []string) error {
	fs := flag.NewFlagSet("gaffer "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed by exitCode, with a hint
	fs.Usage = func() {}
	runFn := cmd.setup(c, fs)
	own := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { own[f.Name] = true })
	if c.globals != nil {
		c.globals.VisitAll(func(f *flag.Flag) {
			if !own[f.Name] && f.Name != "version" {
				fs.Var(f.Value, f.Name, f.Usage)
			}
		})
	}
	parse := flagargs.Parse
	if cmd.rawArgs {
		parse = func(fs *flag.FlagSet, args []string) error { return fs.Parse(args) }
	}
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.commandUsage(c.stderr, cmd)
			return nil
		}
		return &usageError{msg: err.Error(), cmd: cmd}
	}
	fs.Visit(func(f *flag.Flag) {
		if !own[f.Name] {
			c.noteGlobalSet(f)
		}
	})
	err := runFn(fs.Args())
	var ue *usageError
	if errors.As(err, &ue) && ue.cmd == nil {
		ue.cmd = cmd
	}
	return err
}

// usageLines are the forms of a command's synopsis.
func (cmd *command) usageLines() []string {
	return strings.Split(cmd.usage, "\n")
}

// commandUsage prints the help of a command: its synopsis (every form),
// descriptions and options.
func (c *cli) commandUsage(w io.Writer, cmd *command) {
	for i, u := range cmd.usageLines() {
		lead := "usage:"
		if i > 0 {
			lead = "      "
		}
		fmt.Fprintf(w, "%s gaffer %s %s\n", lead, cmd.name, u)
	}
	fmt.Fprintf(w, "\n%s\n", cmd.short)
	if cmd.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.long))
	}
	if len(cmd.aliases) > 0 {
		fmt.Fprintf(w, "\nAliases: %s\n", strings.Join(cmd.aliases, ", "))
	}
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	cmd.setup(c, fs)
	has := false
	fs.VisitAll(func(*flag.Flag) { has = true })
	if has {
		fmt.Fprint(w, "\nOptions:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	fmt.Fprint(w, "\nThe global options (gaffer help) are accepted after the command too.\n")
}

// exitCode prints err (one line) and returns the exit status.
func (c *cli) exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.cmd == nil {
			fmt.Fprintf(c.stderr, "gaffer: %s\n%s\n", ue.msg, globalHint)
			return 2
		}
		fmt.Fprintf(c.stderr, "gaffer %s: %s\nusage: gaffer %s %s (gaffer %s -h for details)\n",
			ue.cmd.name, ue.msg, ue.cmd.name, ue.cmd.usageLines()[0], ue.cmd.name)
		return 2
	}
	if errors.Is(err, context.Canceled) {
		return 1
	}
	fmt.Fprintf(c.stderr, "gaffer: %s\n", errorText(err))
	return 1
}

// errorText is the one-line text of an error.
func errorText(err error) string {
	var e *gaffer.Error
	var ue *gaffer.UnreachableError
	switch {
	case errors.As(err, &ue):
		return ue.Error()
	case errors.As(err, &e):
		switch e.Errno {
		case 401:
			return "unauthorized access: an API key is needed (--api-key, $GAFFER_API_KEY or gaffer login)"
		case 403:
			if e.Reason != "" && e.Reason != e.Code {
				return "forbidden: " + e.Reason
			}
			return "forbidden: the API key's permissions are not enough"
		}
		if e.Reason != "" {
			return e.Reason
		}
		return e.Code
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// apiClient returns the client of gafferd, made on first use from the
// options, the environment and the user config.
func (c *cli) apiClient() (*gaffer.Client, error) {
	if c.client != nil {
		return c.client, nil
	}
	ep := firstNonEmpty(c.g.endpoint, os.Getenv("GAFFERD_ADDRESS"), gaffer.DefaultEndpoint)
	node := loadUserConfig().node(ep)
	opts := gaffer.ClientOptions{
		APIKey:   firstNonEmpty(c.g.apiKey, os.Getenv("GAFFER_API_KEY"), node["key"]),
		CertFile: firstNonEmpty(c.g.certfile, node["certfile"]),
		KeyFile:  firstNonEmpty(c.g.keyfile, node["keyfile"]),
		CACert:   firstNonEmpty(c.g.cacert, node["cacert"]),
	}
	cl, err := gaffer.NewClient(ep, opts)
	if err != nil {
		return nil, err
	}
	c.client = cl
	return cl, nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func init() {
	commands = append(commands, &command{
		name: "help", usage: "[<command>]", short: "show the commands, or the help of one",
		setup: func(c *cli, fs *flag.FlagSet) func([]string) error {
			return func(args []string) error {
				if len(args) == 0 {
					globalUsage(c.stdout)
					return nil
				}
				cmd := findCommand(args[0])
				if cmd == nil {
					return usagef("unknown command %q", args[0])
				}
				c.commandUsage(c.stdout, cmd)
				return nil
			}
		},
	})
}
