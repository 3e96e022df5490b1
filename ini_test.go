package gaffer

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// iniDump renders a parsed file as "[section] key=value" lines for
// comparisons.
func iniDump(f *INIFile) []string {
	var out []string
	for _, s := range f.Sections {
		out = append(out, "["+s.Name+"]")
		for _, k := range s.Keys {
			out = append(out, k.Raw+"="+k.Value)
		}
	}
	return out
}

func TestParseINI(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"comments and blanks", "; c\n# c\n\n[a]\n  ; indented comment\nk = v\n", []string{"[a]", "k=v"}},
		{"both delimiters", "[a]\nk1 = v1\nk2: v2\nk3=v3=x\nk4:v4:y\n", []string{"[a]", "k1=v1", "k2=v2", "k3=v3=x", "k4=v4:y"}},
		{"empty value", "[a]\nk =\n", []string{"[a]", "k="}},
		{"inline comment", "[a]\nk = v ; comment\nurl = http://h/x;y\n", []string{"[a]", "k=v", "url=http://h/x;y"}},
		{"hash is not inline", "[a]\nk = v # not a comment\n", []string{"[a]", "k=v # not a comment"}},
		{"header inline comment", "[a] ; c\nk = v\n", []string{"[a]", "k=v"}},
		{"continuation", "[a]\nk = one\n  two\n\n  three\nj = x\n", []string{"[a]", "k=one\ntwo\nthree", "j=x"}},
		{"continuation of empty value", "[a]\nk =\n  a.ini\n  b.ini\n", []string{"[a]", "k=a.ini\nb.ini"}},
		{"indented keys", "[a]\n  k = 1\n  j = 2\n", []string{"[a]", "k=1", "j=2"}},
		{"env key keeps case", "[p]\nenv:PATH = /bin\nenv:Mixed: x\nEnv:lower=1\n", []string{"[p]", "env:PATH=/bin", "env:Mixed=x", "Env:lower=1"}},
		{"percent", "[a]\nk = 100%%\nraw = 5% off\n", []string{"[a]", "k=100%", "raw=5% off"}},
		{"interpolation", "[a]\nhome = /srv\nlog = %(HOME)s/log\n", []string{"[a]", "home=/srv", "log=/srv/log"}},
		{"crlf and bom", "\xef\xbb\xbf[a]\r\nk = v\r\n", []string{"[a]", "k=v"}},
		{"no final newline", "[a]\nk = v", []string{"[a]", "k=v"}},
		{"section name spaces", "[ process:web ]\n", []string{"[process:web]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseINI("t.ini", []byte(tt.in))
			if err != nil {
				t.Fatalf("ParseINI: %v", err)
			}
			if got := iniDump(f); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseINIKeysAndLines(t *testing.T) {
	f, err := ParseINI("t.ini", []byte("; head\n[Sec]\nMyKey = 1\n\nother = 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Section("Sec")
	if s == nil || s.Line != 2 {
		t.Fatalf("section: %+v", s)
	}
	k, ok := s.Get("MYKEY")
	if !ok || k.Name != "mykey" || k.Raw != "MyKey" || k.Line != 3 || k.Value != "1" {
		t.Errorf("MyKey: %+v %v", k, ok)
	}
	if k, _ := s.Get("other"); k.Line != 5 {
		t.Errorf("other at line %d, want 5", k.Line)
	}
	if _, ok := s.Get("missing"); ok {
		t.Error("Get(missing) found something")
	}
	if f.Section("sec") != nil {
		t.Error("section names are case-sensitive")
	}
}

func TestParseINIErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"key outside section", "k = v\n", "t.ini:1: key \"k\" is outside of any [section]"},
		{"no delimiter", "[a]\njunk\n", "t.ini:2: expected \"key = value\""},
		{"empty key", "[a]\n = v\n", "t.ini:2: empty key"},
		{"duplicate key", "[a]\nk = 1\nK = 2\n", "t.ini:3: key \"K\" repeated in section [a] (first at line 2)"},
		{"duplicate section", "[a]\n[b]\n[a]\n", "t.ini:3: section [a] repeated (first at line 1)"},
		{"unclosed header", "[a\n", "t.ini:1: section header \"[a\" has no closing ']'"},
		{"empty header", "[ ]\n", "t.ini:1: empty section name"},
		{"bracket in header", "[a]b]\n", "t.ini:1: section name \"a]b\" contains a bracket"},
		{"nul byte", "[a]\nk = a\x00b\n", "t.ini:2: NUL byte"},
		{"unknown reference", "[a]\nk = %(nope)s\n", "t.ini:2 (section [a]): k: %(nope)s: no key \"nope\""},
		{"unclosed reference", "[a]\nk = %(x\n", "t.ini:2 (section [a]): k: \"%(x\": '%(' must be closed"},
		{"reference loop", "[a]\nx = %(y)s\ny = %(x)s\n", "t.ini:2 (section [a]): x: %(name)s references nest deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseINI("t.ini", []byte(tt.in))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %q, want prefix %q", err, tt.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("%T is not a *ConfigError", err)
			}
			if e := AsError(err); e.Code != CodeInvalidConfig || e.Errno != 400 || e.Reason != err.Error() {
				t.Errorf("AsError = %+v", e)
			}
		})
	}
}

func TestParseINIInterpolationBounded(t *testing.T) {
	// Each level doubles the value: the size cap must stop it.
	var b strings.Builder
	b.WriteString("[a]\nk0 = " + strings.Repeat("x", 4096) + "\n")
	for i := 1; i < 10; i++ {
		b.WriteString("k" + string(rune('0'+i)) + " = %(k" + string(rune('0'+i-1)) + ")s%(k" + string(rune('0'+i-1)) + ")s\n")
	}
	if _, err := ParseINI("t.ini", []byte(b.String())); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("err = %v, want a size error", err)
	}
}

// FuzzParseINI checks that no input makes the parser panic, that errors
// carry the file name and a line, and that what it accepts is consistent.
// The seed corpus is in testdata/fuzz/FuzzParseINI (the example configs
// among others).
func FuzzParseINI(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("examples", "gaffer.ini")); err == nil {
		f.Add(data)
	}
	f.Add([]byte("[a]\nk = v\n  cont\nenv:X = %%\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ini, err := ParseINI("f.ini", data)
		lines := strings.Count(string(data), "\n") + 1
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.File != "f.ini" || ce.Line < 1 || ce.Line > lines {
				t.Fatalf("bad error %#v for %q", err, data)
			}
			if !strings.HasPrefix(err.Error(), "f.ini:") {
				t.Fatalf("error %q does not start with the file name", err)
			}
			return
		}
		names := map[string]bool{}
		for _, s := range ini.Sections {
			if names[s.Name] || s.Name == "" || s.Line < 1 || s.Line > lines {
				t.Fatalf("bad section %+v", s)
			}
			names[s.Name] = true
			keys := map[string]bool{}
			for _, k := range s.Keys {
				if keys[k.Name] || k.Name != strings.ToLower(k.Raw) || k.Name == "" || k.Line < s.Line || k.Line > lines {
					t.Fatalf("bad key %+v in [%s]", k, s.Name)
				}
				keys[k.Name] = true
			}
		}
	})
}
