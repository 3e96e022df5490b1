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
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
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

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

type ctl struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	cl     *gaffer.Client
	mkCl   func() (*gaffer.Client, error)
	// globals is the parsed global flag set: 0.4 accepted the global
	// options after the command too.
	globals *flag.FlagSet
}

// globalHint is the one line printed after a mistake in the global
// options or the command name.
const globalHint = "usage: gafferctl [options] <command> [<args>] (gafferctl help lists the options and commands)"

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
	fs := flag.NewFlagSet("gafferctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // -h and mistakes are handled after Parse
	fs.Usage = func() {}
	var endpoint, apiKey, certfile, keyfile, cacert string
	for _, n := range []string{"connect", "endpoint", "g"} {
		fs.StringVar(&endpoint, n, "", "gafferd address")
	}
	fs.StringVar(&apiKey, "api-key", "", "API key")
	fs.StringVar(&certfile, "certfile", "", "TLS client certificate")
	fs.StringVar(&keyfile, "keyfile", "", "TLS client key")
	fs.StringVar(&cacert, "cacert", "", "CA certificates of gafferd")
	var version bool
	fs.BoolVar(&version, "version", false, "print the version")
	fs.BoolVar(&version, "v", false, "print the version")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			globalUsage(stderr)
			return 0
		}
		fmt.Fprintf(stderr, "gafferctl: %v\n%s\n", err, globalHint)
		return 2
	}
	if version {
		printVersion(stdout)
		return 0
	}
	rest := fs.Args()
	if len(rest) == 0 {
		globalUsage(stderr)
		return 2
	}
	cmd := findCommand(strings.ToLower(rest[0]))
	if cmd == nil {
		fmt.Fprintf(stderr, "gafferctl: unknown command %q\n%s\n", rest[0], globalHint)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP)
	defer stop()
	c := &ctl{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, globals: fs}
	c.mkCl = func() (*gaffer.Client, error) {
		ep := endpoint
		if ep == "" {
			ep = os.Getenv("GAFFERD_ADDRESS")
		}
		if apiKey == "" {
			apiKey = os.Getenv("GAFFER_API_KEY")
		}
		return gaffer.NewClient(ep, gaffer.ClientOptions{APIKey: apiKey, CertFile: certfile, KeyFile: keyfile, CACert: cacert})
	}
	err := c.runCommand(cmd, rest[1:])
	if c.cl != nil {
		c.cl.Close()
	}
	return c.exitCode(err)
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "gaffer (version %s)\nAvailable in the public domain.\n\n", gaffer.Version)
}

func (c *ctl) client() (*gaffer.Client, error) {
	if c.cl == nil {
		cl, err := c.mkCl()
		if err != nil {
			return nil, err
		}
		c.cl = cl
	}
	return c.cl, nil
}

// runCommand parses the command's options, and the global options that
// follow the command, anywhere among its arguments, and runs it.
func (c *ctl) runCommand(cmd *command, args []string) error {
	fs := flag.NewFlagSet("gafferctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed by exitCode, with a hint
	fs.Usage = func() {}
	runFn := cmd.setup(c, fs)
	if c.globals != nil {
		c.globals.VisitAll(func(f *flag.Flag) {
			if fs.Lookup(f.Name) == nil && f.Name != "version" && f.Name != "v" {
				fs.Var(f.Value, f.Name, f.Usage)
			}
		})
	}
	if err := flagargs.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandUsage(c.stderr, c, cmd)
			return nil
		}
		return &usageError{msg: err.Error(), cmd: cmd}
	}
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

func commandUsage(w io.Writer, c *ctl, cmd *command) {
	for i, u := range cmd.usageLines() {
		lead := "usage:"
		if i > 0 {
			lead = "      "
		}
		fmt.Fprintf(w, "%s gafferctl %s\n", lead, strings.TrimSpace(cmd.name+" "+u))
	}
	fmt.Fprintf(w, "\n%s\n", cmd.short)
	if cmd.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.long))
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
}

func (c *ctl) exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.cmd == nil {
			fmt.Fprintf(c.stderr, "gafferctl: %s\n%s\n", ue.msg, globalHint)
			return 2
		}
		fmt.Fprintf(c.stderr, "gafferctl %s: %s\nusage: gafferctl %s (gafferctl help %s for details)\n",
			ue.cmd.name, ue.msg, strings.TrimSpace(ue.cmd.name+" "+ue.cmd.usageLines()[0]), ue.cmd.name)
		return 2
	}
	if errors.Is(err, context.Canceled) {
		return 1
	}
	fmt.Fprintf(c.stderr, "gafferctl: %s\n", errorText(err))
	return 1
}

func errorText(err error) string {
	var e *gaffer.Error
	var ue *gaffer.UnreachableError
	switch {
	case errors.As(err, &ue):
		return ue.Error()
	case errors.As(err, &e):
		switch e.Errno {
		case 401:
			return "unauthorized: an API key is needed (--api-key or $GAFFER_API_KEY)"
		case 403:
			return "forbidden: " + e.Reason
		}
		if e.Reason != "" {
			return e.Reason
		}
		return e.Code
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

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
			return func(args []string) error {
				if len(args) == 0 {
					globalUsage(c.stdout)
					return nil
				}
				cmd := findCommand(strings.ToLower(args[0]))
				if cmd == nil {
					return usagef("unknown command %q", args[0])
				}
				commandUsage(c.stdout, c, cmd)
				return nil
			}
		}},
		&command{name: "version", usage: "", short: "Show the version", setup: func(c *ctl, fs *flag.FlagSet) func([]string) error {
			return func(args []string) error {
				printVersion(c.stdout)
				return nil
			}
		}},
	)
}
