package flagargs

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		args       []string
		v          bool
		c, posArgs string
	}{
		{[]string{"a", "-v", "b", "-c", "x"}, true, "x", "a b"},
		{[]string{"-c=y", "a"}, false, "y", "a"},
		{[]string{"a", "--", "-v", "-c"}, false, "", "a -v -c"},
		{[]string{"-", "-v"}, true, "", "-"},
		{[]string{"--c", "z", "--", "--"}, false, "z", "--"},
		{nil, false, "", ""},
	}
	for _, tc := range cases {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		v := fs.Bool("v", false, "")
		c := fs.String("c", "", "")
		if err := Parse(fs, tc.args); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if *v != tc.v || *c != tc.c || strings.Join(fs.Args(), " ") != tc.posArgs {
			t.Errorf("%q: v=%v c=%q args=%q", tc.args, *v, *c, fs.Args())
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := Parse(fs, []string{"a", "-nosuch"}); err == nil {
		t.Fatal("an unknown flag after a positional was accepted")
	}
}
