// Command gafferctl is the admin tool of the gaffer 0.4 documentation:
// it manages the process templates (jobs) of a gafferd and watches its
// events.
//
//	gafferctl [--connect=URL] [--api-key=KEY] <command> [options] [args]
//	gafferctl processes | add_process NAME CMD | load_process FILE|- |
//	          start NAME | stop NAME | add NAME N | status NAME | watch [PATTERN] ...
//
// A 0.4 name "web" is the job "default.web"; "app:web" is "app.web".
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/cli"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func usagef(format string, args ...any) error { return cli.Usagef(format, args...) }

// messages are gafferctl's wording of the access errors.
var messages = cli.Messages{Unauthorized: "unauthorized: an API key is needed (--api-key or $GAFFER_API_KEY)"}

func errorText(err error) string { return messages.ErrorText(err) }

type ctl struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	remote cli.Remote
	prog   *cli.Program
}

type command struct {
	name  string
	usage string
	short string
	long  string
	setup func(c *ctl, fs *flag.FlagSet) func(args []string) error
}

var commands []*command

func findCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// runner is cmd as the shared runner sees it, set up for c.
func (cmd *command) runner(c *ctl) *cli.Command {
	return &cli.Command{Name: cmd.name, Usage: cmd.usage, Short: cmd.short, Long: cmd.long,
		Setup: func(fs *flag.FlagSet) func([]string) error { return cmd.setup(c, fs) }}
}

func globalUsage(w io.Writer) {
	fmt.Fprint(w, `usage: gafferctl [--version] [--connect=<endpoint>] [--api-key=<key>]
                 [--certfile=<file> --keyfile=<file>] [--cacert=<file>]
                 [--help]
                 <command> [<args>]

The endpoint is http://host:port, https://host:port, host:port or unix:/path
(default $GAFFERD_ADDRESS, else `+gaffer.DefaultEndpoint+`); the key defaults to $GAFFER_API_KEY.

Commands:
`)
	list := append([]*command(nil), commands...)
	sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
	for _, c := range list {
		fmt.Fprintf(w, "\t%-14s\t%s\n", c.name, c.short)
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &ctl{stdin: stdin, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("gafferctl", flag.ContinueOnError)
	c.remote.Flags(fs, "connect", "endpoint", "g")
	var version bool
	fs.BoolVar(&version, "version", false, "print the version")
	fs.BoolVar(&version, "v", false, "print the version")
	c.prog = &cli.Program{
		Name:         "gafferctl",
		Messages:     messages,
		GlobalHint:   "usage: gafferctl [options] <command> [<args>] (gafferctl help lists the options and commands)",
		Details:      "gafferctl help %s",
		Globals:      fs,
		NotAfter:     []string{"version", "v"},
		Version:      &version,
		PrintVersion: printVersion,
		Usage:        globalUsage,
		Find: func(name string) *cli.Command {
			if cmd := findCommand(strings.ToLower(name)); cmd != nil {
				return cmd.runner(c)
			}
			return nil
		},
		Signals: []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP},
		Begin:   func(ctx context.Context) { c.ctx = ctx },
		End:     c.remote.Close,
		Stdout:  stdout,
		Stderr:  stderr,
	}
	return c.prog.Run(args)
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "gaffer (version %s)\nAvailable in the public domain.\n\n", gaffer.Version)
}

func (c *ctl) client() (*gaffer.Client, error) { return c.remote.Client() }

// repr prints a value as gafferctl 0.4 did (Python's repr, in its Python 3
// form): "ok" for success, numbers as they are, lists as ['a', 'b'].
func repr(v any) string {
	switch x := v.(type) {
	case []string:
		q := make([]string, len(x))
		for i, s := range x {
			q[i] = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
		}
		return "[" + strings.Join(q, ", ") + "]"
	case []int:
		q := make([]string, len(x))
		for i, n := range x {
			q[i] = strconv.Itoa(n)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// output prints a result: JSON with --json, else repr.
func (c *ctl) output(asJSON bool, v any) error {
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	_, err := fmt.Fprintln(c.stdout, repr(v))
	return err
}

func init() {
	commands = append(commands,
		&command{name: "help", usage: "[<command>]", short: "Get help on a command", setup: func(c *ctl, fs *flag.FlagSet) func([]string) error {
			return c.prog.Help
		}},
		&command{name: "version", usage: "", short: "Show the version", setup: func(c *ctl, fs *flag.FlagSet) func([]string) error {
			return func(args []string) error {
				printVersion(c.stdout)
				return nil
			}
		}},
	)
}
