package gaffer

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDotenv(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
		keys []string
	}{
		{"empty", "", map[string]string{}, nil},
		{"comments and blanks", "# a comment\n\n  # indented=comment\n\t\n", map[string]string{}, nil},
		{"simple", "A=1\nB=two words\n", map[string]string{"A": "1", "B": "two words"}, []string{"A", "B"}},
		{"order of first appearance", "B=1\nA=2\nB=3\n", map[string]string{"A": "2", "B": "3"}, []string{"B", "A"}},
		{"export prefix", "export A=1\nexport\tB=2\nexport  C = 3\n", map[string]string{"A": "1", "B": "2", "C": "3"}, []string{"A", "B", "C"}},
		{"key named export", "export=1\n", map[string]string{"export": "1"}, []string{"export"}},
		{"export KEY alone", "A=1\nexport A\nexport B\n", map[string]string{"A": "1"}, []string{"A"}},
		{"blanks around key and value", "  A  =  x y  \n\tB\t=\tz\t\n", map[string]string{"A": "x y", "B": "z"}, []string{"A", "B"}},
		{"key chars", "_a.b_C9=1\n", map[string]string{"_a.b_C9": "1"}, []string{"_a.b_C9"}},
		{"empty values", "A=\nB=   \nC=''\nD=\"\"\nE= # c\n", map[string]string{"A": "", "B": "", "C": "", "D": "", "E": ""}, []string{"A", "B", "C", "D", "E"}},
		{"split at first equals", "A=b=c==\n", map[string]string{"A": "b=c=="}, []string{"A"}},
		{"inline comment", "A=x # comment\nB=x\t# c\nC=x#not\nD=#not\n", map[string]string{"A": "x", "B": "x", "C": "x#not", "D": "#not"}, []string{"A", "B", "C", "D"}},
		{"single quotes literal", `A='a \n $HOME "q" # not'` + "\n", map[string]string{"A": `a \n $HOME "q" # not`}, []string{"A"}},
		{"single quotes keep blanks", "A='  x  '\n", map[string]string{"A": "  x  "}, []string{"A"}},
		{"double quote escapes", `A="a\nb\tc\rd\"e\\f\$g"` + "\n", map[string]string{"A": "a\nb\tc\rd\"e\\f$g"}, []string{"A"}},
		{"double quote unknown escape kept", `A="C:\temp\x \q"` + "\n", map[string]string{"A": "C:\temp\\x \\q"}, []string{"A"}},
		{"double quotes keep # and blanks", `A=" x # y "` + "\n", map[string]string{"A": " x # y "}, []string{"A"}},
		{"comment after quotes", "A=\"x\" # c\nB='y'\t#c\nC=\"z\"   \n", map[string]string{"A": "x", "B": "y", "C": "z"}, []string{"A", "B", "C"}},
		{"no expansion", "A=$HOME\nB=\"${HOME}/x\"\n", map[string]string{"A": "$HOME", "B": "${HOME}/x"}, []string{"A", "B"}},
		{"quotes inside unquoted value kept", `A=a"b'c` + "\n", map[string]string{"A": `a"b'c`}, []string{"A"}},
		{"multi-line double", "A=\"line1\nline2\\n\"\nB=after\n", map[string]string{"A": "line1\nline2\n", "B": "after"}, []string{"A", "B"}},
		{"multi-line single", "A='-----BEGIN\nx\n-----END'\nB=2\n", map[string]string{"A": "-----BEGIN\nx\n-----END", "B": "2"}, []string{"A", "B"}},
		{"CRLF", "A=1\r\nB=\"x\r\ny\"\r\n", map[string]string{"A": "1", "B": "x\ny"}, []string{"A", "B"}},
		{"BOM", "\ufeffA=1\n", map[string]string{"A": "1"}, []string{"A"}},
		{"no final newline", "A=1", map[string]string{"A": "1"}, []string{"A"}},
		{"quoted no final newline", `A="1"`, map[string]string{"A": "1"}, []string{"A"}},
		{"escaped quote at end", `A="a\\"` + "\n", map[string]string{"A": `a\`}, []string{"A"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, keys, err := ParseDotenv(".env", strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if !reflect.DeepEqual(env, tt.want) {
				t.Errorf("env = %q, want %q", env, tt.want)
			}
			if !reflect.DeepEqual(keys, tt.keys) {
				t.Errorf("keys = %q, want %q", keys, tt.keys)
			}
		})
	}
}

func TestParseDotenvErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"no equals", "A=1\njunk\n", ".env:2: expected KEY=VALUE"},
		{"export without key", "export\n", ".env:1: expected KEY=VALUE"},
		{"export bad key alone", "export 1A\n", ".env:1: expected KEY=VALUE"},
		{"empty key", "=1\n", `.env:1: invalid variable name ""`},
		{"digit first", "1A=1\n", `.env:1: invalid variable name "1A"`},
		{"dot first", ".A=1\n", `.env:1: invalid variable name ".A"`},
		{"dash", "A-B=1\n", `.env:1: invalid variable name "A-B"`},
		{"space in key", "A B=1\n", `.env:1: invalid variable name "A B"`},
		{"unterminated double", "A=1\nB=\"abc\nC=2\n", ".env:2: B: unterminated double quote"},
		{"unterminated single", "B='abc", ".env:1: B: unterminated single quote"},
		{"text after quote", "A=\"x\"y\n", `.env:1: A: unexpected "y" after the closing quote`},
		{"text after multi-line quote", "A=\"x\ny\" z\n", `.env:2: A: unexpected "z" after the closing quote`},
		{"line count after multi-line", "A='x\ny\nz'\nbad\n", ".env:4: expected KEY=VALUE"},
		{"NUL", "A=a\x00b\n", ".env:1: A: the value contains a NUL byte"},
		{"NUL quoted", "A=\"a\x00b\"\n", ".env:1: A: the value contains a NUL byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseDotenv(".env", strings.NewReader(tt.in))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want prefix %q", err, tt.want)
			}
			var pe *ProcfileError
			if !errors.As(err, &pe) {
				t.Errorf("not a *ProcfileError: %#v", err)
			}
			if e := AsError(err); e.Code != CodeInvalidConfig || e.Errno != 400 {
				t.Errorf("AsError = %#v", e)
			}
		})
	}
}

func TestParseDotenvTooLarge(t *testing.T) {
	_, _, err := ParseDotenv("big", strings.NewReader(strings.Repeat("#", envMaxBytes+1)))
	if err == nil || !strings.Contains(err.Error(), "big:1: file larger than") {
		t.Fatalf("err = %v", err)
	}
	_, _, err = ParseDotenv("r", pfFailReader{})
	if err == nil || !strings.Contains(err.Error(), "r: boom") {
		t.Fatalf("read error: %v", err)
	}
}

func envWrite(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadDotenv(t *testing.T) {
	dir := t.TempDir()
	a := envWrite(t, dir, "a.env", "A=1\nB=2\n")
	b := envWrite(t, dir, "b.env", "C=3\nA=override\n")
	env, keys, err := LoadDotenv(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(env, map[string]string{"A": "override", "B": "2", "C": "3"}) || !reflect.DeepEqual(keys, []string{"A", "B", "C"}) {
		t.Errorf("env = %v, keys = %v", env, keys)
	}
	env, keys, err = LoadDotenv()
	if err != nil || len(env) != 0 || len(keys) != 0 {
		t.Errorf("no files: %v %v %v", env, keys, err)
	}
	if _, _, err := LoadDotenv(a, filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	bad := envWrite(t, dir, "bad.env", "A=1\n\nnope\n")
	if _, _, err := LoadDotenv(a, bad); err == nil || err.Error() != bad+":3: expected KEY=VALUE" {
		t.Errorf("bad file: %v", err)
	}
}

func TestLoadAppEnv(t *testing.T) {
	root := t.TempDir()
	extra := envWrite(t, t.TempDir(), "extra.env", "B=extra\nC=3\n")

	// No .env in root: skipped.
	env, keys, err := LoadAppEnv(root)
	if err != nil || len(env) != 0 || len(keys) != 0 {
		t.Fatalf("no .env: %v %v %v", env, keys, err)
	}
	env, _, err = LoadAppEnv(root, extra)
	if err != nil || env["B"] != "extra" {
		t.Fatalf("extra only: %v %v", env, err)
	}

	// root/.env first, then the extra files override.
	envWrite(t, root, ".env", "A=1\nB=root\n")
	env, keys, err = LoadAppEnv(root, extra)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(env, map[string]string{"A": "1", "B": "extra", "C": "3"}) || !reflect.DeepEqual(keys, []string{"A", "B", "C"}) {
		t.Errorf("env = %v, keys = %v", env, keys)
	}

	// An explicit file must exist.
	if _, _, err := LoadAppEnv(root, filepath.Join(root, "missing.env")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing -e file: %v", err)
	}
	// A broken default file is an error, not skipped.
	envWrite(t, root, ".env", "broken\n")
	if _, _, err := LoadAppEnv(root); err == nil || !strings.HasSuffix(err.Error(), ".env:1: expected KEY=VALUE") {
		t.Errorf("broken .env: %v", err)
	}
	// A directory named .env is an error too.
	root2 := t.TempDir()
	os.Mkdir(filepath.Join(root2, ".env"), 0o755)
	if _, _, err := LoadAppEnv(root2); err == nil {
		t.Errorf(".env directory: no error")
	}
}

// envFormat writes env as a .env file with double-quoted values.
func envFormat(env map[string]string, keys []string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`, "\r", `\r`)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + `="` + r.Replace(env[k]) + "\"\n")
	}
	return b.String()
}

func FuzzParseDotenv(f *testing.F) {
	for _, s := range []string{
		"A=1\nB=two words # c\n",
		"# comment\nexport KEY='literal $X'\n",
		"A=\"multi\nline\\n\\t\\\"q\\\"\"\n",
		"A=\"x\" junk\n",
		"1A=1\n",
		"A='unterminated\n",
		"A=1\r\nB=2\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		env, keys, err := ParseDotenv(".env", strings.NewReader(in))
		if err != nil {
			var pe *ProcfileError
			if !errors.As(err, &pe) || pe.Line < 1 || !strings.HasPrefix(err.Error(), ".env:") {
				t.Fatalf("error without file and line: %v", err)
			}
			if n := strings.Count(in, "\n") + 1; pe.Line > n {
				t.Fatalf("error line %d past the end (%d lines): %v", pe.Line, n, err)
			}
			return
		}
		if len(keys) != len(env) {
			t.Fatalf("%d keys for %d variables", len(keys), len(env))
		}
		for _, k := range keys {
			v, ok := env[k]
			if !envIsKey(k) || !ok || strings.IndexByte(v, 0) >= 0 {
				t.Fatalf("bad variable %q=%q", k, v)
			}
		}
		// Writing the variables back gives the same variables.
		out := envFormat(env, keys)
		env2, keys2, err := ParseDotenv(".env", strings.NewReader(out))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		if !reflect.DeepEqual(env2, env) || !reflect.DeepEqual(keys2, keys) {
			t.Fatalf("re-parse: %q %q, want %q %q", env2, keys2, env, keys)
		}
	})
}
