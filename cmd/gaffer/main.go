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
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"syscall"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/cli"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func usagef(format string, args ...any) error { return cli.Usagef(format, args...) }

// messages are gaffer's wording of the access errors.
var messages = cli.Messages{
	Unauthorized: "unauthorized access: an API key is needed (--api-key, $GAFFER_API_KEY or gaffer login)",
	Forbidden:    "the API key's permissions are not enough",
}

// errorText is the one-line text of an error.
func errorText(err error) string { return messages.ErrorText(err) }

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// globals are the options given before the command (or after it).
type globals struct {
	procfile             string
	root                 string
	envFiles             multiFlag
	remote               cli.Remote
	apiKeyFor            multiFlag // ORIGIN=KEY, for ps --all-nodes (allnodes.go)
	procfileSet, rootSet bool
	verbose, veryVerbose bool // -v, --vv: for start
}

// state is the state of one run of the program.
type state struct {
	g      globals
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	ctx    context.Context
	prog   *cli.Program
}

// noteGlobalSet records the global flags that were given.
func (c *state) noteGlobalSet(f *flag.Flag) {
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
	setup  func(c *state, fs *flag.FlagSet) func(args []string) error
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

// runner is cmd as the shared runner sees it, set up for c.
func (cmd *command) runner(c *state) *cli.Command {
	return &cli.Command{Name: cmd.name, Aliases: cmd.aliases, Usage: cmd.usage, Short: cmd.short, Long: cmd.long,
		RawArgs: cmd.rawArgs, Setup: func(fs *flag.FlagSet) func([]string) error { return cmd.setup(c, fs) }}
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
	c := &state{stdin: stdin, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("gaffer", flag.ContinueOnError)
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
	g.remote.Flags(fs, "g", "endpoint", "gafferd-http-address", "connect")
	g.remote.Saved = func(ep string) map[string]string { return loadUserConfig().node(ep) }
	fs.Var(&g.apiKeyFor, "api-key-for", "ORIGIN=KEY: the API key of one node, for ps --all-nodes (repeatable)")
	fs.BoolVar(&g.verbose, "v", false, "verbose output")
	fs.BoolVar(&g.veryVerbose, "vv", false, "very verbose output")
	c.prog = &cli.Program{
		Name:         "gaffer",
		Messages:     messages,
		GlobalHint:   "usage: gaffer [options] <command> [<args>...] (gaffer help lists the options and commands)",
		Details:      "gaffer %s -h",
		HelpFooter:   "\nThe global options (gaffer help) are accepted after the command too.\n",
		Globals:      fs,
		NotAfter:     []string{"version"},
		OnGlobal:     c.noteGlobalSet,
		Version:      fs.Bool("version", false, "print the version"),
		PrintVersion: func(w io.Writer) { fmt.Fprintf(w, "gaffer version %s\n", gaffer.Version) },
		Usage:        globalUsage,
		Find: func(name string) *cli.Command {
			if cmd := findCommand(name); cmd != nil {
				return cmd.runner(c)
			}
			return nil
		},
		Signals: []os.Signal{os.Interrupt, syscall.SIGTERM},
		Begin:   func(ctx context.Context) { c.ctx = ctx },
		End:     g.remote.Close,
		Stdout:  stdout,
		Stderr:  stderr,
	}
	return c.prog.Run(args)
}

// apiClient returns the client of gafferd, made on first use from the
// options, the environment and the user config.
func (c *state) apiClient() (*gaffer.Client, error) { return c.g.remote.Client() }

func init() {
	commands = append(commands, &command{
		name: "help", usage: "[<command>]", short: "show the commands, or the help of one",
		setup: func(c *state, fs *flag.FlagSet) func([]string) error { return c.prog.Help },
	})
}
