package gaffer

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
)

// ConfigError is an error in a configuration file. It prints as
// "file:line: message", or "file:line (section [name]): message" when the
// error belongs to a section. It unwraps to an *Error with the code
// invalid_config, so that AsError gives the API a 400 that carries the
// whole sentence.
type ConfigError struct {
	File    string // the file, as given to the parser
	Line    int    // 1-based line; 0 when the error concerns the whole file
	Section string // the section name without brackets, or ""
	Msg     string
	Err     error // the underlying error (an *fs.PathError…), or nil
}

// Error implements the error interface.
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Section != "" {
		fmt.Fprintf(&b, " (section [%s])", e.Section)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the error as an *Error of code invalid_config, and the
// underlying error if any (so errors.Is(err, fs.ErrNotExist) works).
func (e *ConfigError) Unwrap() []error {
	ge := &Error{Code: CodeInvalidConfig, Errno: http.StatusBadRequest, Reason: e.Error()}
	if e.Err != nil {
		return []error{ge, e.Err}
	}
	return []error{ge}
}

// INIFile is a parsed INI file. Sections keep the order of the file.
type INIFile struct {
	Path     string
	Sections []*INISection
}

// INISection is one [name] section of an INI file.
type INISection struct {
	Name string // as written between the brackets, trimmed
	Line int    // line of the [name] header
	Keys []INIKey
}

// INIKey is one "key = value" entry of a section.
type INIKey struct {
	Name  string // lower-cased key
	Raw   string // the key as written (for names whose case matters, like env:NAME)
	Value string // value after comment removal, continuation and %-interpolation
	Line  int    // line of the key
}

// Section returns the section with this exact name, or nil.
func (f *INIFile) Section(name string) *INISection {
	for _, s := range f.Sections {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Get returns the key of this (case-insensitive) name.
func (s *INISection) Get(name string) (INIKey, bool) {
	name = strings.ToLower(name)
	for _, k := range s.Keys {
		if k.Name == name {
			return k, true
		}
	}
	return INIKey{}, false
}

// ParseINI parses data, read from the file named filename (used in errors).
//
// The dialect is Python configparser's, as gafferd.ini used it:
//   - "[name]" starts a section; keys before the first section are an error.
//   - "key = value" or "key: value"; the key ends at the first '=' or ':',
//     except after "env:" (so "env:PATH = /bin" is the key "env:PATH").
//     Keys are compared in lower case; INIKey.Raw keeps the written case.
//   - Lines whose first non-blank character is ';' or '#' are comments, and
//     " ;" (a ';' after a blank) starts a comment inside a line.
//   - A line indented deeper than the key line continues its value (joined
//     with "\n"); blank lines and comments in between are skipped. Keys
//     themselves may be indented.
//   - "%%" is a literal '%', and "%(name)s" is the value of the key name of
//     the same section; any other '%' is kept as it is.
//
// A key repeated in a section, and a section repeated in a file, are errors
// (configparser's strict mode): a silent override hides mistakes. Every
// error is a *ConfigError; ParseINI never panics.
func ParseINI(filename string, data []byte) (*INIFile, error) {
	p := &iniParser{file: &INIFile{Path: filename}, name: filename}
	if err := p.parse(data); err != nil {
		return nil, err
	}
	for _, s := range p.file.Sections {
		if err := iniInterpolate(filename, s); err != nil {
			return nil, err
		}
	}
	return p.file, nil
}

type iniParser struct {
	file *INIFile
	name string
	cur  *INISection
	last *INIKey // key that a more indented line continues
	// lastIndent is the indentation of last's line.
	lastIndent int
	seen       map[string]int
}

func (p *iniParser) errorf(line int, format string, args ...any) error {
	return &ConfigError{File: p.name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (p *iniParser) parse(data []byte) error {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	p.seen = map[string]int{}
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if bytes.IndexByte(line, 0) >= 0 {
			return p.errorf(lineNo, "NUL byte in line")
		}
		if err := p.line(lineNo, string(line)); err != nil {
			return err
		}
	}
	return nil
}

func (p *iniParser) line(n int, line string) error {
	trimmed := strings.TrimSpace(line)
	if trimmed == "" || trimmed[0] == ';' || trimmed[0] == '#' {
		return nil // blank lines and comments neither end nor extend a value
	}
	indent := len(line) - len(strings.TrimLeft(line, " \t"))
	if p.last != nil && indent > p.lastIndent {
		if v := iniStripComment(trimmed); v != "" {
			if p.last.Value == "" {
				p.last.Value = v
			} else {
				p.last.Value += "\n" + v
			}
			if len(p.last.Value) > iniMaxValue {
				return p.errorf(n, "value of %q longer than %d bytes", p.last.Raw, iniMaxValue)
			}
		}
		return nil
	}
	if trimmed[0] == '[' {
		return p.header(n, iniStripComment(trimmed))
	}
	if err := p.keyValue(n, trimmed); err != nil {
		return err
	}
	p.lastIndent = indent
	return nil
}

func (p *iniParser) header(n int, s string) error {
	if !strings.HasSuffix(s, "]") {
		return p.errorf(n, "section header %q has no closing ']'", s)
	}
	name := strings.TrimSpace(s[1 : len(s)-1])
	if name == "" {
		return p.errorf(n, "empty section name")
	}
	if strings.ContainsAny(name, "[]") {
		return p.errorf(n, "section name %q contains a bracket", name)
	}
	if first, ok := p.seen[name]; ok {
		return p.errorf(n, "section [%s] repeated (first at line %d); merge the two sections", name, first)
	}
	p.seen[name] = n
	p.cur = &INISection{Name: name, Line: n}
	p.file.Sections = append(p.file.Sections, p.cur)
	p.last = nil
	return nil
}

func (p *iniParser) keyValue(n int, s string) error {
	i := strings.IndexAny(s, "=:")
	if i < 0 {
		return p.errorf(n, "expected \"key = value\", a [section] or a comment, got %q", iniShorten(s))
	}
	if s[i] == ':' && strings.EqualFold(strings.TrimSpace(s[:i]), "env") {
		if j := strings.IndexAny(s[i+1:], "=:"); j >= 0 {
			i += 1 + j
		}
	}
	raw := strings.TrimSpace(s[:i])
	if raw == "" {
		return p.errorf(n, "empty key before %q", s[i:i+1])
	}
	if p.cur == nil {
		return p.errorf(n, "key %q is outside of any [section]", raw)
	}
	name := strings.ToLower(raw)
	for _, k := range p.cur.Keys {
		if k.Name == name {
			return p.errorf(n, "key %q repeated in section [%s] (first at line %d)", raw, p.cur.Name, k.Line)
		}
	}
	p.cur.Keys = append(p.cur.Keys, INIKey{Name: name, Raw: raw, Value: iniStripComment(strings.TrimSpace(s[i+1:])), Line: n})
	p.last = &p.cur.Keys[len(p.cur.Keys)-1]
	return nil
}

// iniStripComment removes an inline comment: a ';' preceded by a blank.
func iniStripComment(s string) string {
	for i := 1; i < len(s); i++ {
		if s[i] == ';' && (s[i-1] == ' ' || s[i-1] == '\t') {
			return strings.TrimSpace(s[:i])
		}
	}
	return s
}

func iniShorten(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// iniInterpolate expands %% and %(name)s in every value of s.
func iniInterpolate(file string, s *INISection) error {
	raw := make(map[string]string, len(s.Keys))
	for _, k := range s.Keys {
		raw[k.Name] = k.Value
	}
	for i := range s.Keys {
		k := &s.Keys[i]
		v, err := iniExpand(k.Value, raw, 0)
		if err != nil {
			return &ConfigError{File: file, Line: k.Line, Section: s.Name, Msg: fmt.Sprintf("%s: %v", k.Raw, err)}
		}
		k.Value = v
	}
	return nil
}

const (
	iniMaxDepth = 10      // nesting of %(name)s references
	iniMaxValue = 1 << 20 // bytes in one value, after interpolation
)

func iniExpand(v string, raw map[string]string, depth int) (string, error) {
	if !strings.Contains(v, "%") {
		return v, nil
	}
	if depth >= iniMaxDepth {
		return "", fmt.Errorf("%%(name)s references nest deeper than %d (a loop?)", iniMaxDepth)
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '%' || i+1 >= len(v) {
			b.WriteByte(c)
			continue
		}
		switch v[i+1] {
		case '%':
			b.WriteByte('%')
			i++
		case '(':
			end := strings.Index(v[i:], ")s")
			if end < 0 {
				return "", fmt.Errorf("%q: '%%(' must be closed by ')s'; write %%%% for a literal '%%'", iniShorten(v[i:]))
			}
			ref := strings.ToLower(v[i+2 : i+end])
			val, ok := raw[ref]
			if !ok {
				return "", fmt.Errorf("%%(%s)s: no key %q in this section", ref, ref)
			}
			x, err := iniExpand(val, raw, depth+1)
			if err != nil {
				return "", err
			}
			b.WriteString(x)
			if b.Len() > iniMaxValue {
				return "", fmt.Errorf("value longer than %d bytes after interpolation", iniMaxValue)
			}
			i += end + 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
