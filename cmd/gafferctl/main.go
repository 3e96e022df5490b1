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
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

type ctl struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	cl     *gaffer.Client
	mkCl   func() (*gaffer.Client, error)
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
	fs.SetOutput(stderr)
	fs.Usage = func() { globalUsage(stderr) }
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
			return 0
		}
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
		fmt.Fprintf(stderr, "gafferctl: unknown command %q (run 'gafferctl help')\n", rest[0])
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP)
	defer stop()
	c := &ctl{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
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

func (c *ctl) runCommand(cmd *command, args []string) error {
	fs := flag.NewFlagSet("gafferctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() { commandUsage(c.stderr, cmd, fs) }
	runFn := cmd.setup(c, fs)
	if err := parseInterspersed(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &usageError{}
	}
	return runFn(fs.Args())
}

// parseInterspersed parses options anywhere among the arguments; "--"
// ends them.
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

func commandUsage(w io.Writer, cmd *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: gafferctl %s %s\n\n%s\n", cmd.name, cmd.usage, cmd.short)
	if cmd.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.long))
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

func (c *ctl) exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.msg != "" {
			fmt.Fprintf(c.stderr, "gafferctl: %s\n", ue.msg)
		}
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
				sub := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
				cmd.setup(c, sub)
				commandUsage(c.stdout, cmd, sub)
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
