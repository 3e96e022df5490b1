package gaffer

import (
	"reflect"
	"testing"
)

func TestSplitCommandLine(t *testing.T) {
	cases := map[string][]string{
		`a b  c`:                {"a", "b", "c"},
		`python -u "my app.py"`: {"python", "-u", "my app.py"},
		`echo 'a  b' "c\"d"`:    {"echo", "a  b", `c"d`},
		`a\ b c`:                {"a b", "c"},
		`x 'lit $HOME'`:         {"x", "lit $$HOME"},
		`x "$HOME"`:             {"x", "$HOME"},
		`x \$HOME`:              {"x", "$$HOME"},
		``:                      nil,
		`""`:                    {""},
	}
	for in, want := range cases {
		got, err := SplitCommandLine(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("SplitCommandLine(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`'open`, `"open`, `trailing\`} {
		if _, err := SplitCommandLine(bad); err == nil {
			t.Errorf("SplitCommandLine(%q) accepted", bad)
		}
	}
}

func TestExpandVars(t *testing.T) {
	env := map[string]string{"PORT": "80", "HOME": "/h"}
	look := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cases := map[string]string{
		"$PORT":         "80",
		"${PORT}x":      "80x",
		"$$PORT":        "$PORT",
		"a$HOME/b":      "a/h/b",
		"cost $5":       "cost $5",
		"end$":          "end$",
		"--port=$PORT!": "--port=80!",
	}
	for in, want := range cases {
		got, err := ExpandVars(in, look)
		if err != nil || got != want {
			t.Errorf("ExpandVars(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"$NOPE", "${NOPE}", "${PORT", "${1x}"} {
		if _, err := ExpandVars(bad, look); err == nil {
			t.Errorf("ExpandVars(%q) accepted", bad)
		}
	}
}

func FuzzSplitCommandLine(f *testing.F) {
	for _, s := range []string{`a b`, `"a b" 'c'`, `a\ b`, `$X ${Y} $$`, `'`, `"\"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitCommandLine(s)
		if err != nil {
			return
		}
		// Quoting the words back gives the same words (modulo the $$
		// doubling of literal dollars, which shellQuote keeps literal).
		var line string
		for i, w := range words {
			if i > 0 {
				line += " "
			}
			line += shellQuote(w)
		}
		again, err := SplitCommandLine(line)
		if err != nil {
			t.Fatalf("requote of %q failed: %v", s, err)
		}
		if len(again) != len(words) {
			t.Fatalf("%q -> %q -> %q", s, words, again)
		}
	})
}

func FuzzExpandVars(f *testing.F) {
	for _, s := range []string{"$A", "${A}", "$$", "$", "${", "a$B-c", "${A}${B}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := ExpandVars(s, func(k string) (string, bool) { return "v", k == "A" })
		if err == nil && len(out) > len(s)*2+2 {
			t.Fatalf("expansion of %q grew too much: %q", s, out)
		}
	})
}
