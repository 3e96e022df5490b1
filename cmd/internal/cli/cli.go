// Package cli is what the gaffer and gafferctl commands share: the run of
// a program (global options, then a subcommand whose options, and the
// global ones, may come among its arguments), the help of a subcommand,
// the exit statuses with their one-line messages, and the client of
// gafferd made from the options and the environment (remote.go).
//
// Exit statuses: 0 for success, 1 for an error (one line on stderr), 2 for
// a command line mistake (the message and a one-line usage hint), or the
// status an ExitError carries.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/flagargs"
)

// Command is one subcommand, as the runner sees it.
type Command struct {
	Name    string
	Aliases []string
	// Usage is the synopsis after the name, one form per line.
	Usage string
	Short string
	Long  string
	// RawArgs: options only before the first argument (the rest is a
	// command line of its own).
	RawArgs bool
	// Setup declares the options on fs and returns the function that
	// runs the command with the positional arguments.
	Setup func(fs *flag.FlagSet) func(args []string) error
}

// UsageLines are the forms of the command's synopsis.
func (cmd *Command) UsageLines() []string { return strings.Split(cmd.Usage, "\n") }

// synopsis is one form of the synopsis after the program's name.
func (cmd *Command) synopsis(u string) string { return strings.TrimSpace(cmd.Name + " " + u) }

// UsageError is a command line mistake: exit status 2, with the message
// and a one-line usage hint (the command's, when Cmd is set).
type UsageError struct {
	Msg string
	Cmd *Command
}

func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a UsageError; the runner names the command that made it.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// ExitError ends the program with Code and no message (gaffer run passes
// on its command's status).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Messages are the texts of the errors whose wording is the program's.
type Messages struct {
	Unauthorized string // a 401: how to give a key
	// Forbidden is said for a 403 without a reason of its own; when
	// empty, the reason is always printed.
	Forbidden string
}

// ErrorText is the one-line text of an error.
func (m Messages) ErrorText(err error) string {
	var e *gaffer.Error
	var ue *gaffer.UnreachableError
	switch {
	case errors.As(err, &ue):
		return ue.Error()
	case errors.As(err, &e):
		switch e.Errno {
		case 401:
			return m.Unauthorized
		case 403:
			if m.Forbidden != "" && (e.Reason == "" || e.Reason == e.Code) {
				return "forbidden: " + m.Forbidden
			}
			return "forbidden: " + e.Reason
		}
		if e.Reason != "" {
			return e.Reason
		}
		return e.Code
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// Program is one run of a command line program.
type Program struct {
	Name string // "gaffer", "gafferctl"
	Messages
	// GlobalHint is the line printed after a mistake in the global
	// options or the command name.
	GlobalHint string
	// Details is how to reach a command's help, with %s for its name:
	// "gaffer %s -h".
	Details string
	// HelpFooter ends the help of every command ("" for none).
	HelpFooter string
	// Globals holds the global options. Run parses it; its flags are
	// accepted after the command too, except those in NotAfter.
	Globals  *flag.FlagSet
	NotAfter []string
	// OnGlobal, when set, is called for each global flag given, before or
	// after the command.
	OnGlobal func(*flag.Flag)
	// Version, when set and true after the parse, makes Run call
	// PrintVersion instead of a command.
	Version      *bool
	PrintVersion func(w io.Writer)
	// Usage prints the program's help; Find finds a command by the name
	// given (nil for none).
	Usage func(w io.Writer)
	Find  func(name string) *Command
	// Signals cancel the context given to Begin.
	Signals []os.Signal
	// Begin, when set, is called before the command runs, End after.
	Begin func(ctx context.Context)
	End   func()

	Stdout, Stderr io.Writer
}

// Run parses the global options in args, runs the command named after
// them with its arguments and returns the exit status.
func (p *Program) Run(args []string) int {
	fs := p.Globals
	fs.SetOutput(io.Discard) // -h and mistakes are handled after Parse
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			p.Usage(p.Stderr)
			return 0
		}
		return p.ExitCode(&UsageError{Msg: err.Error()})
	}
	if p.OnGlobal != nil {
		fs.Visit(p.OnGlobal)
	}
	if p.Version != nil && *p.Version {
		p.PrintVersion(p.Stdout)
		return 0
	}
	rest := fs.Args()
	if len(rest) == 0 {
		p.Usage(p.Stderr)
		return 2
	}
	cmd := p.Find(rest[0])
	if cmd == nil {
		return p.ExitCode(Usagef("unknown command %q", rest[0]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), p.Signals...)
	defer stop()
	if p.Begin != nil {
		p.Begin(ctx)
	}
	err := p.RunCommand(cmd, rest[1:])
	if p.End != nil {
		p.End()
	}
	return p.ExitCode(err)
}

// RunCommand parses the command's options, and the global options that
// follow the command, and runs it. A UsageError it returns names cmd.
func (p *Program) RunCommand(cmd *Command, args []string) error {
	fs := flag.NewFlagSet(p.Name+" "+cmd.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed by ExitCode, with a hint
	fs.Usage = func() {}
	runFn := cmd.Setup(fs)
	own := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { own[f.Name] = true })
	if p.Globals != nil {
		p.Globals.VisitAll(func(f *flag.Flag) {
			if !own[f.Name] && !slices.Contains(p.NotAfter, f.Name) {
				fs.Var(f.Value, f.Name, f.Usage)
			}
		})
	}
	parse := flagargs.Parse
	if cmd.RawArgs {
		parse = func(fs *flag.FlagSet, args []string) error { return fs.Parse(args) }
	}
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			p.CommandUsage(p.Stderr, cmd)
			return nil
		}
		return &UsageError{Msg: err.Error(), Cmd: cmd}
	}
	if p.OnGlobal != nil {
		fs.Visit(func(f *flag.Flag) {
			if !own[f.Name] {
				p.OnGlobal(f)
			}
		})
	}
	err := runFn(fs.Args())
	var ue *UsageError
	if errors.As(err, &ue) && ue.Cmd == nil {
		ue.Cmd = cmd
	}
	return err
}

// Help is the help command: the program's help, or with a command's name
// the help of that command, on stdout.
func (p *Program) Help(args []string) error {
	if len(args) == 0 {
		p.Usage(p.Stdout)
		return nil
	}
	cmd := p.Find(args[0])
	if cmd == nil {
		return Usagef("unknown command %q", args[0])
	}
	p.CommandUsage(p.Stdout, cmd)
	return nil
}

// CommandUsage prints the help of a command: its synopsis (every form),
// descriptions, aliases and options.
func (p *Program) CommandUsage(w io.Writer, cmd *Command) {
	for i, u := range cmd.UsageLines() {
		lead := "usage:"
		if i > 0 {
			lead = "      "
		}
		fmt.Fprintf(w, "%s %s %s\n", lead, p.Name, cmd.synopsis(u))
	}
	fmt.Fprintf(w, "\n%s\n", cmd.Short)
	if cmd.Long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.Long))
	}
	if len(cmd.Aliases) > 0 {
		fmt.Fprintf(w, "\nAliases: %s\n", strings.Join(cmd.Aliases, ", "))
	}
	fs := flag.NewFlagSet(cmd.Name, flag.ContinueOnError)
	cmd.Setup(fs)
	has := false
	fs.VisitAll(func(*flag.Flag) { has = true })
	if has {
		fmt.Fprint(w, "\nOptions:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	fmt.Fprint(w, p.HelpFooter)
}

// ExitCode prints err (one line, or two for a usage error) and returns
// the exit status.
func (p *Program) ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		if ue.Cmd == nil {
			fmt.Fprintf(p.Stderr, "%s: %s\n%s\n", p.Name, ue.Msg, p.GlobalHint)
			return 2
		}
		fmt.Fprintf(p.Stderr, "%s %s: %s\nusage: %s %s (%s for details)\n", p.Name, ue.Cmd.Name, ue.Msg,
			p.Name, ue.Cmd.synopsis(ue.Cmd.UsageLines()[0]), fmt.Sprintf(p.Details, ue.Cmd.Name))
		return 2
	}
	if errors.Is(err, context.Canceled) {
		return 1
	}
	fmt.Fprintf(p.Stderr, "%s: %s\n", p.Name, p.ErrorText(err))
	return 1
}
