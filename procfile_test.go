package gaffer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseProcfile(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []ProcfileEntry
	}{
		{"empty", "", nil},
		{"only comments and blanks", "# hello\n\n   \n\t# indented comment\n", nil},
		{"one", "web: ./dummy.sh\n", []ProcfileEntry{{"web", "./dummy.sh", 1}}},
		{"no trailing newline", "web: ./dummy.sh", []ProcfileEntry{{"web", "./dummy.sh", 1}}},
		{"no space after colon", "web:./dummy.sh -p 1\n", []ProcfileEntry{{"web", "./dummy.sh -p 1", 1}}},
		{"tabs and trailing blanks", "web:\t ./a b  \t\n", []ProcfileEntry{{"web", "./a b", 1}}},
		{"dash and underscore", "web-1: a\nmy_worker: b\n_x-y_: c\n", []ProcfileEntry{
			{"web-1", "a", 1}, {"my_worker", "b", 2}, {"_x-y_", "c", 3}}},
		{"order kept, line numbers", "# c\nworker: w\n\nweb: x\nclock: y\n", []ProcfileEntry{
			{"worker", "w", 2}, {"web", "x", 4}, {"clock", "y", 5}}},
		{"colon in command", "web: ./srv --bind 0.0.0.0:5000 http://x\n", []ProcfileEntry{
			{"web", "./srv --bind 0.0.0.0:5000 http://x", 1}}},
		{"quotes kept verbatim", `worker: sh -c 'echo "$PORT"; sleep 1'` + "\n", []ProcfileEntry{
			{"worker", `sh -c 'echo "$PORT"; sleep 1'`, 1}}},
		{"CRLF", "web: a\r\nworker: b c\r\n", []ProcfileEntry{{"web", "a", 1}, {"worker", "b c", 2}}},
		{"BOM", "\ufeffweb: a\n", []ProcfileEntry{{"web", "a", 1}}},
		{"leading blanks", "  web: a\n", []ProcfileEntry{{"web", "a", 1}}},
		{"hash inside command", "web: echo a#b\n", []ProcfileEntry{{"web", "echo a#b", 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pf, err := ParseProcfile("Procfile", strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if pf.Path != "Procfile" {
				t.Errorf("Path = %q", pf.Path)
			}
			if !reflect.DeepEqual(pf.Entries, tt.want) {
				t.Errorf("entries = %#v\nwant %#v", pf.Entries, tt.want)
			}
		})
	}
}

func TestParseProcfileErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"no colon", "web: a\nbogus line\n", "Procfile:2: expected \"<name>: <command>\""},
		{"bad name char", "web.1: a\n", `Procfile:1: invalid process name "web.1"`},
		{"space before colon", "web : a\n", `Procfile:1: invalid process name "web "`},
		{"empty name", ": a\n", `Procfile:1: invalid process name ""`},
		{"empty command", "\nweb:\n", `Procfile:2: process "web" has no command`},
		{"blank command", "web:   \t\n", `Procfile:1: process "web" has no command`},
		{"quotes only command", "web: ''\n", ""}, // a valid (empty) word: accepted, see below
		{"duplicate", "web: a\n# x\nworker: b\nweb: c\n", `Procfile:4: duplicate process name "web" (first defined at line 1)`},
		{"unterminated quote", "web: echo 'a\n", `Procfile:1: process "web": unterminated single quote`},
		{"unterminated double quote", "a: b\nweb: echo \"a\n", `Procfile:2: process "web": unterminated double quote`},
		{"trailing backslash", "web: echo a\\\n", `Procfile:1: process "web": trailing backslash`},
		{"long name", strings.Repeat("a", 129) + ": x\n", `Procfile:1: invalid process name "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"…: is 129 bytes long (a name is at most 128)`},
		{"leading dash", "-x: a\n", `Procfile:1: invalid process name "-x": must not start or end with '-'`},
		{"control character", "we\x01b: a\n", `Procfile:1: invalid process name "we\x01b": must not contain '\x01'`},
		{"long line", "a: b\n" + "web: " + strings.Repeat("x", pfMaxLine) + "\n", "Procfile:2: line longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseProcfile("Procfile", strings.NewReader(tt.in))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q, want prefix %q", err, tt.want)
			}
			var pe *ProcfileError
			if !errors.As(err, &pe) || pe.File != "Procfile" || pe.Line < 1 {
				t.Errorf("error %#v is not a *ProcfileError with file and line", err)
			}
			var ge *Error
			if !errors.As(err, &ge) || ge.Code != CodeInvalidConfig || ge.Errno != 400 || ge.Reason != err.Error() {
				t.Errorf("error does not unwrap to a 400 invalid_config *Error: %#v", ge)
			}
			if ae := AsError(err); ae.Code != CodeInvalidConfig {
				t.Errorf("AsError code = %q", ae.Code)
			}
		})
	}
}

type pfFailReader struct{}

func (pfFailReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestParseProcfileReadError(t *testing.T) {
	_, err := ParseProcfile("P", pfFailReader{})
	if err == nil || !strings.Contains(err.Error(), "P: boom") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadProcfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Procfile")
	if err := os.WriteFile(path, []byte("web: a\nworker: b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pf, err := LoadProcfile(path)
	if err != nil {
		t.Fatal(err)
	}
	if pf.Path != path || !reflect.DeepEqual(pf.Names(), []string{"web", "worker"}) {
		t.Fatalf("got %+v", pf)
	}
	if e, ok := pf.Lookup("worker"); !ok || e.Command != "b" || e.Line != 2 {
		t.Errorf("Lookup(worker) = %+v %v", e, ok)
	}
	if _, ok := pf.Lookup("nope"); ok {
		t.Errorf("Lookup(nope) found")
	}
	if _, err := LoadProcfile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
	bad := filepath.Join(dir, "Bad")
	os.WriteFile(bad, []byte("oops\n"), 0o644)
	if _, err := LoadProcfile(bad); err == nil || !strings.HasPrefix(err.Error(), bad+":1: ") {
		t.Errorf("bad file: err = %v", err)
	}
}

func TestExampleProcfileAndEnv(t *testing.T) {
	pf, err := LoadProcfile("examples/Procfile")
	if err != nil {
		t.Fatal(err)
	}
	if len(pf.Entries) < 2 {
		t.Fatalf("want at least 2 entries, got %+v", pf.Entries)
	}
	for _, e := range pf.Entries {
		if _, _, err := e.CmdArgs(); err != nil {
			t.Errorf("%s: %v", e.Name, err)
		}
	}
	env, keys, err := LoadAppEnv("examples")
	if err != nil {
		t.Fatal(err)
	}
	if env["GREETING"] != "hello world" || len(keys) != 1 {
		t.Errorf("examples/.env = %v %v", env, keys)
	}
}

func TestParseConcurrency(t *testing.T) {
	tests := []struct {
		specs []string
		want  map[string]int
	}{
		{nil, map[string]int{}},
		{[]string{"web=2,worker=1"}, map[string]int{"web": 2, "worker": 1}},
		{[]string{"web=2", "worker=3"}, map[string]int{"web": 2, "worker": 3}},
		{[]string{"web=2", "web=5"}, map[string]int{"web": 5}},
		{[]string{" web = 2 , my-worker_1=0 "}, map[string]int{"web": 2, "my-worker_1": 0}},
		{[]string{"all=3,web=1"}, map[string]int{"all": 3, "web": 1}},
		{[]string{"web=100000"}, map[string]int{"web": 100000}},
	}
	for _, tt := range tests {
		got, err := ParseConcurrency(tt.specs)
		if err != nil {
			t.Errorf("%q: %v", tt.specs, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q = %v, want %v", tt.specs, got, tt.want)
		}
	}
}

func TestParseConcurrencyErrors(t *testing.T) {
	tests := []struct {
		specs []string
		want  string
	}{
		{[]string{""}, `empty item in ""`},
		{[]string{"web=1,"}, `empty item in "web=1,"`},
		{[]string{"web=1", "worker"}, `"worker": expected name=N`},
		{[]string{"web=x"}, `"web=x": N must be an integer`},
		{[]string{"web=-1"}, `"web=-1": N must be an integer`},
		{[]string{"web=1.5"}, `"web=1.5": N must be an integer`},
		{[]string{"web=100001"}, `"web=100001": N must be an integer from 0 to 100000`},
		{[]string{"web.x=1"}, `"web.x=1": invalid process name "web.x"`},
		{[]string{"=1"}, `"=1": invalid process name ""`},
		{[]string{"web=2 worker=1"}, `"web=2 worker=1": N must be`},
	}
	for _, tt := range tests {
		_, err := ParseConcurrency(tt.specs)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.specs, err, tt.want)
			continue
		}
		if e := AsError(err); e.Code != CodeBadValue || e.Errno != 400 {
			t.Errorf("%q: error %#v", tt.specs, e)
		}
	}
}

func TestConcurrencyFor(t *testing.T) {
	tests := []struct {
		counts map[string]int
		name   string
		want   int
	}{
		{nil, "web", 1},
		{map[string]int{"worker": 3}, "web", 1},
		{map[string]int{"web": 2}, "web", 2},
		{map[string]int{"web": 0}, "web", 0},
		{map[string]int{"all": 4}, "web", 4},
		{map[string]int{"all": 4, "web": 2}, "web", 2},
		{map[string]int{"all": 0, "web": 2}, "worker", 0},
		{map[string]int{"web": -3}, "web", 0},
	}
	for _, tt := range tests {
		if got := ConcurrencyFor(tt.counts, tt.name); got != tt.want {
			t.Errorf("ConcurrencyFor(%v, %q) = %d, want %d", tt.counts, tt.name, got, tt.want)
		}
	}
}

func TestCheckConcurrency(t *testing.T) {
	pf := &Procfile{Path: "Procfile", Entries: []ProcfileEntry{{"web", "a", 1}, {"worker", "b", 2}}}
	if err := pf.CheckConcurrency(map[string]int{"web": 2, "all": 1}); err != nil {
		t.Errorf("valid counts: %v", err)
	}
	err := pf.CheckConcurrency(map[string]int{"web": 2, "clock": 1})
	if err == nil || !strings.Contains(err.Error(), `"clock" is not a process type of Procfile (have web, worker)`) {
		t.Errorf("err = %v", err)
	}
}

func TestProcfilePorts(t *testing.T) {
	entries := []ProcfileEntry{{"web", "a", 1}, {"worker", "b", 2}, {"clock", "c", 3}, {"off", "d", 4}}
	got := ProcfilePorts(entries, map[string]int{"web": 2, "worker": 3, "off": 0}, 5000)
	want := map[string][]int{
		"web":    {5000, 5001},
		"worker": {5100, 5101, 5102},
		"clock":  {5200},
		"off":    {},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ports = %v, want %v", got, want)
	}
	got = ProcfilePorts(entries[:2], map[string]int{"all": 2}, 3000)
	want = map[string][]int{"web": {3000, 3001}, "worker": {3100, 3101}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("all=2 ports = %v, want %v", got, want)
	}
	if got := ProcfilePorts(nil, nil, DefaultPortBase); len(got) != 0 {
		t.Errorf("no entries: %v", got)
	}
}

func TestQuoteCommandWord(t *testing.T) {
	tests := []struct{ word, want string }{
		{"./dummy.sh", "./dummy.sh"},
		{"", "''"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{`say "hi"`, `'say "hi"'`},
		{"$PORT", `"$PORT"`},
		{"$$PORT", `'$PORT'`},                   // a literal $ from single quotes
		{`echo "$$PORT"`, `'echo "$PORT"'`},     // as in sh -c 'echo "$PORT"'
		{`a$$b $X "q" \`, `"a\$b $X \"q\" \\"`}, // mixed: double quotes
		{"$$$X", `"\$$X"`},
		{"x$", `"x$"`},
		{"`cmd`", "'`cmd`'"},
		{"$`x`", "\"$\\`x\\`\""},
	}
	for _, tt := range tests {
		got := QuoteCommandWord(tt.word)
		if got != tt.want {
			t.Errorf("QuoteCommandWord(%q) = %s, want %s", tt.word, got, tt.want)
		}
		back, err := SplitCommandLine(got)
		if err != nil || len(back) != 1 || back[0] != tt.word {
			t.Errorf("SplitCommandLine(%s) = %q, %v; want [%q]", got, back, err, tt.word)
		}
	}
}

func TestJoinCommandWordsRoundTrip(t *testing.T) {
	for _, line := range []string{
		`sh -c 'while true; do echo "worker $PORT tick"; sleep 1; done'`,
		`./srv --port $PORT --name "a b" \$HOME 'x'"y"`,
		`echo "a\"b" 'c\d' e\ f "\$" '$$' $$`,
		`printf '%s\n' "tab	here" ''`,
	} {
		words, err := SplitCommandLine(line)
		if err != nil {
			t.Fatal(err)
		}
		joined := JoinCommandWords(words)
		back, err := SplitCommandLine(joined)
		if err != nil || !reflect.DeepEqual(back, words) {
			t.Errorf("%s\njoined %s\nback %q, want %q (%v)", line, joined, back, words, err)
		}
	}
}

func TestCmdArgs(t *testing.T) {
	e := ProcfileEntry{Name: "worker", Command: `sh -c 'echo "$PORT"' $X`, Line: 1}
	cmd, args, err := e.CmdArgs()
	if err != nil || cmd != "sh" || !reflect.DeepEqual(args, []string{"-c", `echo "$$PORT"`, "$X"}) {
		t.Errorf("CmdArgs = %q %q %v", cmd, args, err)
	}
	// what the spawner does with the args
	env := map[string]string{"X": "x"}
	got, err := ExpandVars(args[1], func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil || got != `echo "$PORT"` {
		t.Errorf("expanded = %q %v", got, err)
	}
	if _, _, err := (ProcfileEntry{Name: "x", Command: "'a"}).CmdArgs(); err == nil {
		t.Errorf("bad command: no error")
	}
	if _, _, err := (ProcfileEntry{Name: "x", Command: "  "}).CmdArgs(); err == nil {
		t.Errorf("empty command: no error")
	}
}

func TestProcfileJobConfigs(t *testing.T) {
	pf := pfMustParse(t, "web: ./dummy.sh\nworker: sh -c 'echo $PORT'\n")
	env := map[string]string{"A": "1"}
	jobs, err := ProcfileJobConfigs(pf, map[string]int{"worker": 3}, env)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 {
		t.Fatalf("%d jobs", len(jobs))
	}
	w := jobs[1]
	if w.Name != "worker" || w.Cmd != "sh" || !reflect.DeepEqual(w.Args, []string{"-c", "echo $$PORT"}) ||
		w.NumProcesses != 3 || w.Priority != 1 || w.Env["A"] != "1" || !w.Start {
		t.Errorf("worker = %+v", w)
	}
	if jobs[0].NumProcesses != 1 || jobs[0].Priority != 0 || len(jobs[0].Args) != 0 {
		t.Errorf("web = %+v", jobs[0])
	}
	env["A"] = "changed"
	if jobs[0].Env["A"] != "1" {
		t.Errorf("env not copied")
	}
	for _, j := range jobs {
		if err := j.Validate(); err != nil {
			t.Errorf("%s: %v", j.Name, err)
		}
	}
}

func pfMustParse(t testing.TB, s string) *Procfile {
	t.Helper()
	pf, err := ParseProcfile("Procfile", strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return pf
}

const pfExportProcfile = `web: ./dummy.sh
worker: sh -c 'while true; do echo "worker $PORT tick"; sleep 1; done'
api-v2: ./srv --port $PORT --name "a b" \$HOME
`

func TestExportINI(t *testing.T) {
	pf := pfMustParse(t, pfExportProcfile)
	env := map[string]string{"GREETING": "hello world", "EMPTY": "", "URL": "http://x/?a=b&c=%20"}
	var buf bytes.Buffer
	if err := ExportINI(&buf, "myapp", pf, map[string]int{"worker": 2}, env); err != nil {
		t.Fatal(err)
	}
	want := `[process:myapp:web]
cmd = ./dummy.sh
priority = 0
numprocesses = 1
redirect_output = stdout, stderr
env:EMPTY =
env:GREETING = hello world
env:URL = http://x/?a=b&c=%20

[process:myapp:worker]
cmd = sh
args = -c 'while true; do echo "worker $PORT tick"; sleep 1; done'
priority = 1
numprocesses = 2
redirect_output = stdout, stderr
env:EMPTY =
env:GREETING = hello world
env:URL = http://x/?a=b&c=%20

[process:myapp:api-v2]
cmd = ./srv
args = --port "$PORT" --name 'a b' '$HOME'
priority = 2
numprocesses = 1
redirect_output = stdout, stderr
env:EMPTY =
env:GREETING = hello world
env:URL = http://x/?a=b&c=%20
`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
	// Read it back the way an INI reader does and compare the words.
	sections := pfReadINI(t, buf.String())
	if len(sections) != 3 {
		t.Fatalf("%d sections", len(sections))
	}
	for i, e := range pf.Entries {
		sec := sections[i]
		if sec.name != "process:myapp:"+e.Name {
			t.Errorf("section %d = %q", i, sec.name)
		}
		session, job, _ := strings.Cut(strings.TrimPrefix(sec.name, "process:"), ":")
		if session != "myapp" || job != e.Name {
			t.Errorf("session/job = %q/%q", session, job)
		}
		want, _ := SplitCommandLine(e.Command)
		got, err := SplitCommandLine(sec.kv["cmd"] + " " + sec.kv["args"])
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: words read back %q, want %q (%v)", e.Name, got, want, err)
		}
		for k, v := range env {
			if sec.kv["env:"+k] != v {
				t.Errorf("%s: env:%s = %q, want %q", e.Name, k, sec.kv["env:"+k], v)
			}
		}
	}
}

type pfINISection struct {
	name string
	kv   map[string]string
}

// pfReadINI is a minimal INI reader: [section], key = value (split at the
// first '=', both sides trimmed), '#'/';' comment lines.
func pfReadINI(t *testing.T, s string) []pfINISection {
	t.Helper()
	var out []pfINISection
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			out = append(out, pfINISection{name: line[1 : len(line)-1], kv: map[string]string{}})
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || len(out) == 0 {
				t.Fatalf("bad INI line %q", line)
			}
			k = strings.TrimSpace(k)
			if _, dup := out[len(out)-1].kv[k]; dup {
				t.Fatalf("duplicate key %q", k)
			}
			out[len(out)-1].kv[k] = strings.TrimSpace(v)
		}
	}
	return out
}

func TestExportINIErrors(t *testing.T) {
	pf := pfMustParse(t, "web: a\n")
	tests := []struct {
		name string
		app  string
		pf   *Procfile
		env  map[string]string
		want string
	}{
		{"newline in env", "app", pf, map[string]string{"K": "a\nb"}, "env:K: the value contains a line break"},
		{"blanks around env value", "app", pf, map[string]string{"K": " a"}, "env:K: the value starts or ends with blanks"},
		{"bad env name", "app", pf, map[string]string{"A B": "x"}, `invalid variable name "A B"`},
		{"empty env name", "app", pf, map[string]string{"": "x"}, "empty variable name"},
		{"empty app", "", pf, nil, "sessionid: missing"},
		{"app with colon", "a:b", pf, nil, "must not contain ':'"},
		{"app with dot", "a.b", pf, nil, "must not contain '.'"},
		{"bad entry name", "app", &Procfile{Path: "P", Entries: []ProcfileEntry{{"a]b", "x", 3}}}, nil, `P:3: invalid process name "a]b"`},
		{"bad entry command", "app", &Procfile{Path: "P", Entries: []ProcfileEntry{{"a", "'x", 3}}}, nil, `P:3: process "a": cannot split`},
		{"newline in arg", "app", &Procfile{Path: "P", Entries: []ProcfileEntry{{"a", "x 'b\nc'", 3}}}, nil, "a: args: the value contains a line break"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := ExportINI(&buf, tt.app, tt.pf, nil, tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %q on error", buf.String())
			}
		})
	}
}

func TestExportJSON(t *testing.T) {
	pf := pfMustParse(t, pfExportProcfile)
	env := map[string]string{"GREETING": "hello <world> & co"}
	var buf bytes.Buffer
	if err := ExportJSON(&buf, "myapp", pf, map[string]int{"all": 2, "web": 1}, env); err != nil {
		t.Fatal(err)
	}
	want := `{
 "jobs": [
  {
   "name": "myapp.web",
   "cmd": "./dummy.sh",
   "args": [],
   "env": {
    "GREETING": "hello <world> & co"
   },
   "numprocesses": 1,
   "redirect_output": [
    "stdout",
    "stderr"
   ]
  },
  {
   "name": "myapp.worker",
   "cmd": "sh",
   "args": [
    "-c",
    "while true; do echo \"worker $$PORT tick\"; sleep 1; done"
   ],
   "env": {
    "GREETING": "hello <world> & co"
   },
   "numprocesses": 2,
   "redirect_output": [
    "stdout",
    "stderr"
   ]
  },
  {
   "name": "myapp.api-v2",
   "cmd": "./srv",
   "args": [
    "--port",
    "$PORT",
    "--name",
    "a b",
    "$$HOME"
   ],
   "env": {
    "GREETING": "hello <world> & co"
   },
   "numprocesses": 2,
   "redirect_output": [
    "stdout",
    "stderr"
   ]
  }
 ]
}
`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
	// Each job reads back through the JSON job loader with the same words.
	var doc struct {
		Jobs []map[string]any `json:"jobs"`
	}
	dec := json.NewDecoder(&buf)
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	for i, m := range doc.Jobs {
		c, err := JobConfigFromMap(m)
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
		session, job := SplitName(c.Name)
		e := pf.Entries[i]
		if session != "myapp" || job != e.Name {
			t.Errorf("name %q", c.Name)
		}
		want, _ := SplitCommandLine(e.Command)
		cmdWords, err := SplitCommandLine(c.Cmd)
		if err != nil {
			t.Fatal(err)
		}
		if got := append(cmdWords, c.Args...); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: words %q, want %q", e.Name, got, want)
		}
		if !reflect.DeepEqual(c.RedirectOutput, []string{"stdout", "stderr"}) || c.Env["GREETING"] != env["GREETING"] {
			t.Errorf("%s: %+v", e.Name, c)
		}
	}
}

func TestExportJSONErrors(t *testing.T) {
	pf := pfMustParse(t, "web: a\n")
	var buf bytes.Buffer
	if err := ExportJSON(&buf, "bad app", pf, nil, nil); err == nil {
		t.Errorf("bad app: no error")
	}
	if err := ExportJSON(&buf, "app", pf, nil, map[string]string{"A=B": "x"}); err == nil {
		t.Errorf("bad env name: no error")
	}
	if err := ExportJSON(&buf, "app", &Procfile{Entries: []ProcfileEntry{{"a", `"x`, 1}}}, nil, nil); err == nil {
		t.Errorf("bad command: no error")
	}
	if err := ExportJSON(&buf, "app", &Procfile{Entries: []ProcfileEntry{{"a", "x \xff", 1}}}, nil, nil); err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("invalid UTF-8 command: %v", err)
	}
	if err := ExportJSON(&buf, "app", pf, nil, map[string]string{"K": "\xff"}); err == nil || !strings.Contains(err.Error(), "env:K: not valid UTF-8") {
		t.Errorf("invalid UTF-8 env: %v", err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %q on error", buf.String())
	}
	// Values INI cannot hold are fine in JSON.
	if err := ExportJSON(&buf, "app", pf, nil, map[string]string{"K": " multi\nline "}); err != nil {
		t.Errorf("multi-line env: %v", err)
	}
	// An empty Procfile gives an empty job list.
	buf.Reset()
	if err := ExportJSON(&buf, "app", &Procfile{}, nil, nil); err != nil || buf.String() != "{\n \"jobs\": []\n}\n" {
		t.Errorf("empty: %q %v", buf.String(), err)
	}
}

func FuzzParseProcfile(f *testing.F) {
	for _, s := range []string{
		"web: ./dummy.sh\n",
		"# c\n\nweb: a\nworker: sh -c 'echo \"$PORT\"'\n",
		"web:x\r\nw-1_: y z\r\n",
		"web: a\nweb: b\n",
		"bad\n",
		"web: 'unterminated\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		pf, err := ParseProcfile("Procfile", strings.NewReader(in))
		if err != nil {
			var pe *ProcfileError
			if !errors.As(err, &pe) || pe.Line < 1 || !strings.HasPrefix(err.Error(), "Procfile:") {
				t.Fatalf("error without file and line: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		last := 0
		var b strings.Builder
		for _, e := range pf.Entries {
			if !pfIsName(e.Name) || seen[e.Name] || e.Line <= last || e.Command == "" || e.Command != strings.TrimSpace(e.Command) {
				t.Fatalf("bad entry %+v", e)
			}
			seen[e.Name] = true
			last = e.Line
			b.WriteString(e.Name + ": " + e.Command + "\n")
		}
		// Writing the entries back gives the same entries.
		again, err := ParseProcfile("Procfile", strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", b.String(), err)
		}
		if len(again.Entries) != len(pf.Entries) {
			t.Fatalf("re-parse: %d entries, want %d", len(again.Entries), len(pf.Entries))
		}
		for i, e := range again.Entries {
			if e.Name != pf.Entries[i].Name || e.Command != pf.Entries[i].Command {
				t.Fatalf("re-parse: %+v, want %+v", e, pf.Entries[i])
			}
		}
		// The JSON export reads back with the same words.
		var buf bytes.Buffer
		if err := ExportJSON(&buf, "app", pf, nil, nil); err != nil {
			if !utf8.ValidString(in) && strings.Contains(err.Error(), "not valid UTF-8") {
				return
			}
			t.Fatalf("ExportJSON: %v", err)
		}
		var doc struct {
			Jobs []struct {
				Cmd  string   `json:"cmd"`
				Args []string `json:"args"`
			} `json:"jobs"`
		}
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		for i, j := range doc.Jobs {
			want, _ := SplitCommandLine(pf.Entries[i].Command)
			got, err := SplitCommandLine(j.Cmd)
			if err != nil || !reflect.DeepEqual(append(got, j.Args...), want) {
				t.Fatalf("JSON words %q %q, want %q", got, j.Args, want)
			}
		}
		// The INI export, when it succeeds, reads back too.
		buf.Reset()
		if err := ExportINI(&buf, "app", pf, nil, nil); err == nil {
			secs := pfReadINI(t, buf.String())
			for i, s := range secs {
				want, _ := SplitCommandLine(pf.Entries[i].Command)
				got, err := SplitCommandLine(s.kv["cmd"] + " " + s.kv["args"])
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("INI words %q, want %q (%v)\n%s", got, want, err, buf.String())
				}
			}
		}
	})
}
