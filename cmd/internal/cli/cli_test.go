package cli

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/gaffer-go/gaffer"
)

// testProgram is a program "prog" with a global --endpoint and one
// command "echo [-n] <words>...", whose run is recorded in got.
func testProgram(got *[]string, endpoint *string) (*Program, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	echo := &Command{Name: "echo", Usage: "[-n] <word>...", Short: "print the words",
		Setup: func(fs *flag.FlagSet) func([]string) error {
			n := fs.Bool("n", false, "no newline")
			return func(args []string) error {
				switch {
				case len(args) == 0:
					return Usagef("echo needs a word")
				case args[0] == "fail":
					return &gaffer.Error{Code: "forbidden", Errno: 403}
				case args[0] == "exit":
					return &ExitError{Code: 7}
				}
				*got = append(append(*got, args...), "n="+map[bool]string{true: "1", false: "0"}[*n], "endpoint="+*endpoint)
				return nil
			}
		}}
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	fs.StringVar(endpoint, "endpoint", "", "the endpoint")
	p := &Program{
		Name:       "prog",
		Messages:   Messages{Unauthorized: "give a key", Forbidden: "not enough rights"},
		GlobalHint: "usage: prog <command>",
		Details:    "prog %s -h",
		Globals:    fs,
		Usage:      func(w io.Writer) { io.WriteString(w, "prog help\n") },
		Find: func(name string) *Command {
			if name == "echo" {
				return echo
			}
			return nil
		},
		Stdout: &stdout, Stderr: &stderr,
	}
	return p, &stdout, &stderr
}

func TestRunGlobalsAfterTheCommandAndExitStatuses(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		code   int
		got    string
		stderr string
	}{
		{[]string{"echo", "a", "--endpoint", "x", "b", "-n"}, 0, "a b n=1 endpoint=x", ""},
		{[]string{"--endpoint=y", "echo", "a"}, 0, "a n=0 endpoint=y", ""},
		{[]string{"echo"}, 2, "", "prog echo: echo needs a word\nusage: prog echo [-n] <word>... (prog echo -h for details)\n"},
		{[]string{"echo", "--bogus"}, 2, "", "prog echo: flag provided but not defined: -bogus\nusage: prog echo [-n] <word>... (prog echo -h for details)\n"},
		{[]string{"nope"}, 2, "", "prog: unknown command \"nope\"\nusage: prog <command>\n"},
		{[]string{"--bogus"}, 2, "", "prog: flag provided but not defined: -bogus\nusage: prog <command>\n"},
		{nil, 2, "", "prog help\n"},
		{[]string{"-h"}, 0, "", "prog help\n"},
		{[]string{"echo", "fail"}, 1, "", "prog: forbidden: not enough rights\n"},
		{[]string{"echo", "exit"}, 7, "", ""},
	} {
		var got []string
		var endpoint string
		p, _, stderr := testProgram(&got, &endpoint)
		if code := p.Run(tt.args); code != tt.code || strings.Join(got, " ") != tt.got || stderr.String() != tt.stderr {
			t.Errorf("%q: exit %d, ran %q, stderr %q; want %d, %q, %q", tt.args, code, got, stderr.String(), tt.code, tt.got, tt.stderr)
		}
	}
}

func TestCommandHelp(t *testing.T) {
	var got []string
	var endpoint string
	p, stdout, _ := testProgram(&got, &endpoint)
	p.HelpFooter = "footer\n"
	if err := p.Help([]string{"echo"}); err != nil {
		t.Fatal(err)
	}
	want := "usage: prog echo [-n] <word>...\n\nprint the words\n\nOptions:\n  -n\tno newline\nfooter\n"
	if stdout.String() != want {
		t.Fatalf("help echo:\n%q\nwant\n%q", stdout.String(), want)
	}
	var ue *UsageError
	if err := p.Help([]string{"nope"}); !errors.As(err, &ue) || ue.Msg != `unknown command "nope"` {
		t.Fatalf("help nope: %v", err)
	}
}

func TestErrorText(t *testing.T) {
	m := Messages{Unauthorized: "give a key", Forbidden: "not enough rights"}
	for _, tt := range []struct {
		err  error
		m    Messages
		want string
	}{
		{&gaffer.Error{Code: "unauthorized", Errno: 401, Reason: "x"}, m, "give a key"},
		{&gaffer.Error{Code: "forbidden", Errno: 403, Reason: "the key may not"}, m, "forbidden: the key may not"},
		{&gaffer.Error{Code: "forbidden", Errno: 403, Reason: "forbidden"}, m, "forbidden: not enough rights"},
		{&gaffer.Error{Code: "forbidden", Errno: 403, Reason: "forbidden"}, Messages{}, "forbidden: forbidden"},
		{&gaffer.Error{Code: "not_found", Errno: 404}, m, "not_found"},
		{errors.New("two\nlines"), m, "two; lines"},
	} {
		if got := tt.m.ErrorText(tt.err); got != tt.want {
			t.Errorf("%v: %q, want %q", tt.err, got, tt.want)
		}
	}
}
