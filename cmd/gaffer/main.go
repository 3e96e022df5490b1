// Command gaffer runs a Procfile application in the foreground (like
// foreman), exports it, and drives a gafferd over its HTTP API.
//
//	gaffer [global options] <command> [options] [args]
//	gaffer start [-c web=2,worker=1] [name]
//	gaffer load | ps | scale web=3 | logs | unload ...
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
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// usageError is a command line mistake: exit status 2.
type usageError struct{ msg string }

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
}

// cli is the state of one run of the program.
type cli struct {
	g      globals
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	ctx    context.Context
	client *gaffer.Client
}

// command is one subcommand.
type command struct {
	name    string
	aliases []string
	usage   string // synopsis after the command name
	short   string
	long    string
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
	fmt.Fprint(w, `usage: gaffer [--version] [-f procfile] [-d root] [-e envfile]...
              [-g address] [--api-key KEY] [--certfile F --keyfile F] [--cacert F]
              <command> [<args>...]

Global options:
  -f, --procfile FILE        the Procfile (default ./Procfile)
  -d, --root DIR             the application root (default: the Procfile's directory)
  -e, --env FILE             a .env file, after <root>/.env (repeatable)
  -g, --endpoint ADDRESS     gafferd: http://host:port, https://..., host:port or unix:/path
                             (also --gafferd-http-address; default $GAFFERD_ADDRESS or `+gaffer.DefaultEndpoint+`)
  --api-key KEY              API key (default $GAFFER_API_KEY, else the key saved by login)
  --api-key-for ORIGIN=KEY   the key of one node, for ps --all-nodes (repeatable; --api-key
                             is never sent to the nodes a lookupd lists)
  --certfile, --keyfile F    TLS client certificate and key
  --cacert F                 CA certificates that sign gafferd's certificate

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
	fs.Usage = func() { globalUsage(stderr) }
	g := &c.g
	for _, n := range []string{"f", "procfile"} {
		fs.StringVar(&g.procfile, n, "", "the Procfile")
	}
	for _, n := range []string{"d", "root"} {
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
	version := fs.Bool("version", false, "print the version")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "f", "procfile":
			g.procfileSet = true
		case "d", "root":
			g.rootSet = true
		}
	})
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
		fmt.Fprintf(stderr, "gaffer: unknown command %q (run 'gaffer help' for the list)\n", name)
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

// runCommand parses the command's options and runs it.
func (c *cli) runCommand(cmd *command, args []string) error {
	fs := flag.NewFlagSet("gaffer "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() { c.commandUsage(c.stderr, cmd, fs) }
	runFn := cmd.setup(c, fs)
	parse := parseInterspersed
	if cmd.rawArgs {
		parse = func(fs *flag.FlagSet, args []string) error { return fs.Parse(args) }
	}
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &usageError{} // flag has printed the message and the usage
	}
	return runFn(fs.Args())
}

// parseInterspersed parses options anywhere among the arguments ("ps
// --app x" and "ps:info 3 --app x" both work); "--" ends the options.
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		// flag stops at "--" (consumed) or at the first positional.
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

func (c *cli) commandUsage(w io.Writer, cmd *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: gaffer %s %s\n\n%s\n", cmd.name, cmd.usage, cmd.short)
	if cmd.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.long))
	}
	if len(cmd.aliases) > 0 {
		fmt.Fprintf(w, "\nAliases: %s\n", strings.Join(cmd.aliases, ", "))
	}
	has := false
	fs.VisitAll(func(*flag.Flag) { has = true })
	if has {
		fmt.Fprint(w, "\nOptions:\n")
		out := fs.Output()
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(out)
	}
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
		if ue.msg != "" {
			fmt.Fprintf(c.stderr, "gaffer: %s\n", ue.msg)
		}
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
				sub := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
				cmd.setup(c, sub)
				c.commandUsage(c.stdout, cmd, sub)
				return nil
			}
		},
	})
}
