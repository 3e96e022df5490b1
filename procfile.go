package gaffer

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A Procfile lists the process types of an application, one per line, in
// the format foreman made popular:
//
//	# comment
//	web: ./dummy.sh
//	worker: sh -c 'while true; do echo "worker $PORT tick"; sleep 1; done'
//
// Names are made of letters, digits, '_' and '-' ('-' not first or last,
// at most 128 bytes: the name syntax of ValidateName without '.'). Blank lines and lines
// whose first non-blank character is '#' are ignored. Any other line that is
// not "<name>: <command>" is an error, and so is a name used twice (the
// original gaffer ignored bad lines and let a duplicate overwrite the first
// command; foreman and honcho reject them). Whitespace after the colon is
// optional. The command is the rest of the line; it is split into words
// with SplitCommandLine, never run through a shell, so pipes and "&&" need
// an explicit `sh -c '…'`. A command that cannot be split (an unterminated
// quote) is an error at parse time.
type Procfile struct {
	Path    string          // file name as given to ParseProcfile or LoadProcfile
	Entries []ProcfileEntry // process types, in file order
}

// ProcfileEntry is one process type of a Procfile.
type ProcfileEntry struct {
	Name    string // process type (see pfIsName)
	Command string // the command line, trimmed, as written
	Line    int    // 1-based line number in the file
}

// ProcfileError is a syntax error in a Procfile or a .env file. Its text is
// "file:line: message". It unwraps to an *Error with code invalid_config, so
// AsError and errors.As(err, **Error) see it as a 400.
type ProcfileError struct {
	File string
	Line int
	Msg  string
}

// Error implements the error interface.
func (e *ProcfileError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Unwrap returns the error as an *Error (code invalid_config, status 400).
func (e *ProcfileError) Unwrap() error {
	return Errorf(CodeInvalidConfig, http.StatusBadRequest, "%s", e.Error())
}

func pfErrorf(file string, line int, format string, args ...any) error {
	return &ProcfileError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// pfMaxLine bounds one Procfile line; longer lines are an error, not a
// silent truncation.
const pfMaxLine = 1 << 20

// pfIsName reports whether s is a valid process type name: the name
// syntax of ValidateName without '.' (a process type becomes a job name,
// and "web.1" names instance 1 of web).
func pfIsName(s string) bool {
	return nameProblem(s, false) == ""
}

// ParseProcfile reads a Procfile from r; name is the file name used in
// error messages and stored in Procfile.Path. Errors are *ProcfileError
// ("file:line: message") for syntax problems, or the reader's error.
func ParseProcfile(name string, r io.Reader) (*Procfile, error) {
	pf := &Procfile{Path: name}
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), pfMaxLine)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if lineNo == 1 {
			line = strings.TrimPrefix(line, "\ufeff") // UTF-8 byte order mark
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			return nil, pfErrorf(name, lineNo, "expected \"<name>: <command>\", found no ':'")
		}
		pname, cmd := line[:colon], strings.TrimSpace(line[colon+1:])
		if p := nameProblem(pname, false); p != "" {
			return nil, pfErrorf(name, lineNo, "invalid process name %s: %s; the name is directly followed by ':'", quoteName(pname), p)
		}
		if cmd == "" {
			return nil, pfErrorf(name, lineNo, "process %q has no command", pname)
		}
		if first, dup := seen[pname]; dup {
			return nil, pfErrorf(name, lineNo, "duplicate process name %q (first defined at line %d)", pname, first)
		}
		words, err := SplitCommandLine(cmd)
		if err != nil {
			return nil, pfErrorf(name, lineNo, "process %q: %v", pname, err)
		}
		if len(words) == 0 {
			return nil, pfErrorf(name, lineNo, "process %q has no command", pname)
		}
		seen[pname] = lineNo
		pf.Entries = append(pf.Entries, ProcfileEntry{Name: pname, Command: cmd, Line: lineNo})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, pfErrorf(name, lineNo+1, "line longer than %d bytes", pfMaxLine)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return pf, nil
}

// LoadProcfile reads and parses the Procfile at path. A missing file gives
// an error for which errors.Is(err, fs.ErrNotExist) holds.
func LoadProcfile(path string) (*Procfile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseProcfile(path, f)
}

// Lookup returns the entry named name.
func (p *Procfile) Lookup(name string) (ProcfileEntry, bool) {
	for _, e := range p.Entries {
		if e.Name == name {
			return e, true
		}
	}
	return ProcfileEntry{}, false
}

// Names returns the process type names in file order.
func (p *Procfile) Names() []string {
	names := make([]string, len(p.Entries))
	for i, e := range p.Entries {
		names[i] = e.Name
	}
	return names
}

// CheckConcurrency reports an error naming the first key of counts (sorted)
// that is neither a process type of p nor "all".
func (p *Procfile) CheckConcurrency(counts map[string]int) error {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == ConcurrencyAll {
			continue
		}
		if _, ok := p.Lookup(k); !ok {
			return Errorf(CodeBadValue, http.StatusBadRequest, "concurrency: %q is not a process type of %s (have %s)", k, p.Path, strings.Join(p.Names(), ", "))
		}
	}
	return nil
}

// CmdArgs splits the entry's command for a JobConfig: cmd is the first word,
// quoted (see QuoteCommandWord) so that splitting it again gives that word
// back, and args are the remaining words as SplitCommandLine returns them,
// that is with a '$' that was single-quoted or backslash-escaped written
// "$$", which the spawner turns back into one '$'.
func (e ProcfileEntry) CmdArgs() (cmd string, args []string, err error) {
	words, err := SplitCommandLine(e.Command)
	if err != nil {
		return "", nil, fmt.Errorf("process %q: %v", e.Name, err)
	}
	if len(words) == 0 {
		return "", nil, fmt.Errorf("process %q has no command", e.Name)
	}
	return QuoteCommandWord(words[0]), words[1:], nil
}

// QuoteCommandWord quotes one word as SplitCommandLine returns it, so that
// SplitCommandLine gives back exactly [w]. Because SplitCommandLine writes a
// literal '$' as "$$", a word whose every '$' is part of such a pair is
// written in single quotes with each pair written back as one '$' (so
// `echo '$HOME'` round-trips as written); a word with a '$' that refers to
// a variable is written in double quotes, where '$' stays as it is and a
// "$$" pair is written `\$`. Other words use the usual sh quoting.
func QuoteCommandWord(w string) string {
	if !strings.Contains(w, "$") {
		return shellQuote(w)
	}
	var lit strings.Builder // w with each "$$" pair written as one '$'
	paired := true
	for i := 0; i < len(w); i++ {
		if w[i] == '$' {
			if i+1 < len(w) && w[i+1] == '$' {
				lit.WriteByte('$')
				i++
				continue
			}
			paired = false
			break
		}
		lit.WriteByte(w[i])
	}
	if paired {
		return "'" + strings.ReplaceAll(lit.String(), "'", `'\''`) + "'"
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(w); i++ {
		switch c := w[i]; c {
		case '\\', '"', '`':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '$':
			if i+1 < len(w) && w[i+1] == '$' {
				b.WriteString(`\$`)
				i++
			} else {
				b.WriteByte('$')
			}
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// JoinCommandWords quotes each word with QuoteCommandWord and joins them
// with spaces, so that SplitCommandLine gives the words back.
func JoinCommandWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = QuoteCommandWord(w)
	}
	return strings.Join(q, " ")
}

// ConcurrencyAll is the name that sets the default count in a concurrency
// spec ("all=2"). A process type literally named "all" is also set by it.
const ConcurrencyAll = "all"

// MaxConcurrency bounds one count of a concurrency spec.
const MaxConcurrency = 100000

// ParseConcurrency parses concurrency specs as given to -c (or foreman's
// -m): each spec is a comma-separated list of name=N items, and several
// specs (repeated flags) are merged, a later item overriding an earlier one
// for the same name. N is an integer from 0 to MaxConcurrency; 0 means the
// type is not run. The name "all" sets the default for types not listed
// (see ConcurrencyFor). Blanks around items, names and numbers are allowed.
// An error (an *Error, code bad_value) names the bad item.
func ParseConcurrency(specs []string) (map[string]int, error) {
	counts := map[string]int{}
	for _, spec := range specs {
		for _, item := range strings.Split(spec, ",") {
			it := strings.TrimSpace(item)
			if it == "" {
				return nil, Errorf(CodeBadValue, http.StatusBadRequest, "concurrency: empty item in %q", spec)
			}
			name, num, ok := strings.Cut(it, "=")
			if !ok {
				return nil, Errorf(CodeBadValue, http.StatusBadRequest, "concurrency: %q: expected name=N", it)
			}
			name, num = strings.TrimSpace(name), strings.TrimSpace(num)
			if !pfIsName(name) {
				return nil, Errorf(CodeBadValue, http.StatusBadRequest, "concurrency: %q: invalid process name %q", it, name)
			}
			n, err := strconv.Atoi(num)
			if err != nil || n < 0 || n > MaxConcurrency {
				return nil, Errorf(CodeBadValue, http.StatusBadRequest, "concurrency: %q: N must be an integer from 0 to %d", it, MaxConcurrency)
			}
			counts[name] = n
		}
	}
	return counts, nil
}

// ConcurrencyFor returns the number of processes to run for the process
// type name: counts[name] if set, else counts["all"] if set, else 1.
// Negative values count as 0.
func ConcurrencyFor(counts map[string]int, name string) int {
	n, ok := counts[name]
	if !ok {
		n, ok = counts[ConcurrencyAll]
	}
	if !ok {
		return 1
	}
	return max(n, 0)
}

// DefaultPortBase is foreman's default base port.
const DefaultPortBase = 5000

// ProcfilePorts assigns ports the way foreman does: instance j (0-based) of
// the entry at index i gets base + 100*i + j. Counts are read with
// ConcurrencyFor. A type with a count of 0 maps to an empty slice. The
// caller picks base (foreman: -p, else $PORT, else DefaultPortBase) and
// checks that the ports fit its needs; more than 100 instances of a type
// overlap the next type's range, as in foreman.
func ProcfilePorts(entries []ProcfileEntry, counts map[string]int, base int) map[string][]int {
	ports := make(map[string][]int, len(entries))
	for i, e := range entries {
		n := ConcurrencyFor(counts, e.Name)
		p := make([]int, n)
		for j := range p {
			p[j] = base + 100*i + j
		}
		ports[e.Name] = p
	}
	return ports
}

// ProcfileJobConfigs returns one JobConfig per entry of pf (defaults set by
// NewJobConfig), in file order: Name is the process type (the session, app,
// is the caller's), Cmd and Args come from ProcfileEntry.CmdArgs, Env is a
// copy of env, NumProcesses comes from ConcurrencyFor and Priority is the
// 0-based index of the entry. Output labels, cwd and the like are left to
// the caller.
func ProcfileJobConfigs(pf *Procfile, counts map[string]int, env map[string]string) ([]JobConfig, error) {
	out := make([]JobConfig, 0, len(pf.Entries))
	for i, e := range pf.Entries {
		if !pfIsName(e.Name) {
			return nil, fmt.Errorf("%s:%d: invalid process name %q", pf.Path, e.Line, e.Name)
		}
		cmd, args, err := e.CmdArgs()
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", pf.Path, e.Line, err)
		}
		c := NewJobConfig(e.Name, cmd)
		c.Args = args
		c.Env = make(map[string]string, len(env))
		for k, v := range env {
			c.Env[k] = v
		}
		c.NumProcesses = ConcurrencyFor(counts, e.Name)
		c.Priority = i
		out = append(out, c)
	}
	return out, nil
}

// pfCheckApp checks an application (session) name for use in an export.
func pfCheckApp(app string) error {
	if err := ValidateSession(app); err != nil {
		return err
	}
	if strings.ContainsAny(app, ":[]") {
		return errBadRequest("app: %q must not contain ':', '[' or ']'", app)
	}
	return nil
}

// pfCheckEnvName checks an environment variable name for use in an export.
func pfCheckEnvName(k string) error {
	if k == "" {
		return errBadRequest("env: empty variable name")
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c == '=' || c == 0x7f {
			return errBadRequest("env: invalid variable name %q", k)
		}
	}
	return nil
}

// pfINIValue checks that v survives an INI "key = value" line: one line,
// no surrounding blanks (the reader trims them), no NUL.
func pfINIValue(what, v string) error {
	if strings.ContainsAny(v, "\n\r\x00") {
		return errBadRequest("%s: the value contains a line break or NUL, which INI cannot hold; export as JSON instead", what)
	}
	if v != strings.TrimSpace(v) {
		return errBadRequest("%s: the value starts or ends with blanks, which INI drops; export as JSON instead", what)
	}
	return nil
}

func pfSortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ExportINI writes pf as gaffer INI, one section per entry, in file order:
//
//	[process:<app>:<name>]
//	cmd = <first word>
//	args = <other words>
//	priority = <0-based index>
//	numprocesses = <N>
//	redirect_output = stdout, stderr
//	env:<KEY> = <value>
//
// Words are quoted with QuoteCommandWord, so splitting cmd and args gives
// exactly the words of the Procfile command; "args" is left out when there
// are none. N comes from ConcurrencyFor. env lines are sorted by key.
// Sections are separated by a blank line. A value INI cannot hold (a line
// break, surrounding blanks) is an error that suggests JSON; nothing is
// written then. The only error after the checks is w's.
func ExportINI(w io.Writer, app string, pf *Procfile, counts map[string]int, env map[string]string) error {
	if err := pfCheckApp(app); err != nil {
		return err
	}
	keys := pfSortedKeys(env)
	for _, k := range keys {
		if err := pfCheckEnvName(k); err != nil {
			return err
		}
		if err := pfINIValue("env:"+k, env[k]); err != nil {
			return err
		}
	}
	var b strings.Builder
	for i, e := range pf.Entries {
		if !pfIsName(e.Name) {
			return errBadRequest("%s:%d: invalid process name %q", pf.Path, e.Line, e.Name)
		}
		words, err := SplitCommandLine(e.Command)
		if err != nil || len(words) == 0 {
			return errBadRequest("%s:%d: process %q: cannot split the command: %v", pf.Path, e.Line, e.Name, err)
		}
		cmd := QuoteCommandWord(words[0])
		args := JoinCommandWords(words[1:])
		if err := pfINIValue(e.Name+": cmd", cmd); err != nil {
			return err
		}
		if err := pfINIValue(e.Name+": args", args); err != nil {
			return err
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "[process:%s:%s]\n", app, e.Name)
		fmt.Fprintf(&b, "cmd = %s\n", cmd)
		if args != "" {
			fmt.Fprintf(&b, "args = %s\n", args)
		}
		fmt.Fprintf(&b, "priority = %d\n", i)
		fmt.Fprintf(&b, "numprocesses = %d\n", ConcurrencyFor(counts, e.Name))
		b.WriteString("redirect_output = stdout, stderr\n")
		for _, k := range keys {
			if env[k] == "" {
				fmt.Fprintf(&b, "env:%s =\n", k)
			} else {
				fmt.Fprintf(&b, "env:%s = %s\n", k, env[k])
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// pfJSONJob is one job of ExportJSON, fields in output order.
type pfJSONJob struct {
	Name           string            `json:"name"`
	Cmd            string            `json:"cmd"`
	Args           []string          `json:"args"`
	Env            map[string]string `json:"env"`
	NumProcesses   int               `json:"numprocesses"`
	RedirectOutput []string          `json:"redirect_output"`
}

// ExportJSON writes pf as a job file that `gaffer load <file>` and
// POST /jobs/<app> accept, with a 1-space indent and a final newline:
//
//	{"jobs": [{"name": "<app>.<name>", "cmd": <first word>, "args": [...],
//	  "env": {...}, "numprocesses": N, "redirect_output": ["stdout", "stderr"]}, ...]}
//
// cmd is the first word quoted with QuoteCommandWord (the loader splits
// cmd); args are the other words as SplitCommandLine returns them, so a
// literal '$' is "$$" as the spawner expects. N comes from ConcurrencyFor.
// Jobs are in file order. Text that is not valid UTF-8 is an error, as JSON
// cannot hold it.
func ExportJSON(w io.Writer, app string, pf *Procfile, counts map[string]int, env map[string]string) error {
	if err := pfCheckApp(app); err != nil {
		return err
	}
	for _, k := range pfSortedKeys(env) {
		if err := pfCheckEnvName(k); err != nil {
			return err
		}
		if !utf8.ValidString(k) || !utf8.ValidString(env[k]) {
			return errBadRequest("env:%s: not valid UTF-8, which JSON cannot hold", strings.ToValidUTF8(k, "?"))
		}
	}
	jobs := make([]pfJSONJob, 0, len(pf.Entries))
	for _, e := range pf.Entries {
		if !pfIsName(e.Name) {
			return errBadRequest("%s:%d: invalid process name %q", pf.Path, e.Line, e.Name)
		}
		words, err := SplitCommandLine(e.Command)
		if err != nil || len(words) == 0 {
			return errBadRequest("%s:%d: process %q: cannot split the command: %v", pf.Path, e.Line, e.Name, err)
		}
		if !utf8.ValidString(e.Command) {
			return errBadRequest("%s:%d: process %q: the command is not valid UTF-8, which JSON cannot hold", pf.Path, e.Line, e.Name)
		}
		envCopy := make(map[string]string, len(env))
		for k, v := range env {
			envCopy[k] = v
		}
		jobs = append(jobs, pfJSONJob{
			Name:           app + "." + e.Name,
			Cmd:            QuoteCommandWord(words[0]),
			Args:           append([]string{}, words[1:]...),
			Env:            envCopy,
			NumProcesses:   ConcurrencyFor(counts, e.Name),
			RedirectOutput: []string{"stdout", "stderr"},
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.SetEscapeHTML(false)
	return enc.Encode(struct {
		Jobs []pfJSONJob `json:"jobs"`
	}{jobs})
}
