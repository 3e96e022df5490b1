package gaffer

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// envMaxBytes bounds the size of one .env file.
const envMaxBytes = 16 << 20

// ParseDotenv reads a .env file from r; name is the file name used in
// errors. It returns the variables and their keys in the order of first
// appearance. The format is the one foreman and dotenv read:
//
//   - one KEY=VALUE per line; an optional "export " prefix is dropped;
//     blanks around the key and before the value are ignored;
//   - blank lines and lines whose first non-blank character is '#' are
//     ignored; "export KEY" alone (no '=') is ignored too;
//   - keys match [A-Za-z_][A-Za-z0-9_.]*;
//   - an unquoted value runs to the end of the line, is trimmed, and loses an
//     inline comment: a '#' preceded by a blank and everything after it
//     ("A=b#c" keeps "b#c");
//   - a value in single quotes is taken literally;
//   - a value in double quotes has the escapes \n \t \r \" \\ and \$
//     processed; any other backslash is kept as it is;
//   - a quoted value may span lines until its closing quote; after the
//     closing quote only blanks and a '#' comment may follow;
//   - a key given twice keeps the last value (and its first position).
//
// There is no variable expansion: "$HOME" or "${HOME}" is kept literally,
// in every form of value. (The spawner does not expand env values either.)
// CRLF line ends and a leading UTF-8 byte order mark are accepted.
//
// Syntax errors are *ProcfileError values ("file:line: message"): a line
// that is not KEY=VALUE, an invalid key, an unterminated quote (reported at
// the line where the value starts), text after a closing quote, a NUL byte.
func ParseDotenv(name string, r io.Reader) (map[string]string, []string, error) {
	data, err := io.ReadAll(io.LimitReader(r, envMaxBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > envMaxBytes {
		return nil, nil, pfErrorf(name, 1, "file larger than %d bytes", envMaxBytes)
	}
	s := strings.TrimPrefix(string(data), "\ufeff")
	s = strings.ReplaceAll(s, "\r\n", "\n")

	env := map[string]string{}
	var keys []string
	lineNo := 0
	for pos := 0; pos < len(s); {
		lineNo++
		end := strings.IndexByte(s[pos:], '\n')
		if end < 0 {
			end = len(s)
		} else {
			end += pos
		}
		line := s[pos:end]
		next := end + 1

		t := strings.TrimLeft(line, " \t")
		if t == "" || t[0] == '#' {
			pos = next
			continue
		}
		exported := false
		if strings.HasPrefix(t, "export") && len(t) > 6 && (t[6] == ' ' || t[6] == '\t') {
			t = strings.TrimLeft(t[6:], " \t")
			exported = true
		}
		eq := strings.IndexByte(t, '=')
		if eq < 0 {
			if k := strings.TrimRight(t, " \t"); exported && envIsKey(k) {
				pos = next // "export KEY": exports a key set elsewhere
				continue
			}
			return nil, nil, pfErrorf(name, lineNo, "expected KEY=VALUE")
		}
		key := strings.Trim(t[:eq], " \t")
		if !envIsKey(key) {
			return nil, nil, pfErrorf(name, lineNo, "invalid variable name %q: letters, digits, '_' and '.', not starting with a digit or '.'", key)
		}
		raw := t[eq+1:]
		v := strings.TrimLeft(raw, " \t")
		var value string
		if v != "" && (v[0] == '\'' || v[0] == '"') {
			// v is a suffix of line, which ends at s[end]: find its start in s.
			start := lineNo
			i := end - len(v) + 1
			var closed bool
			value, i, closed = envQuoted(s, i, v[0])
			lineNo += strings.Count(s[end-len(v):min(i, len(s))], "\n")
			if !closed {
				return nil, nil, pfErrorf(name, start, "%s: unterminated %s quote", key, envQuoteName(v[0]))
			}
			rest := s[i:]
			if j := strings.IndexByte(rest, '\n'); j >= 0 {
				rest = rest[:j]
				next = i + j + 1
			} else {
				next = len(s)
			}
			if r := strings.TrimLeft(rest, " \t"); r != "" && r[0] != '#' {
				return nil, nil, pfErrorf(name, lineNo, "%s: unexpected %q after the closing quote", key, r)
			}
		} else {
			value = raw
			for j := 1; j < len(raw); j++ {
				if raw[j] == '#' && (raw[j-1] == ' ' || raw[j-1] == '\t') {
					value = raw[:j]
					break
				}
			}
			value = strings.Trim(value, " \t")
		}
		if strings.IndexByte(value, 0) >= 0 {
			return nil, nil, pfErrorf(name, lineNo, "%s: the value contains a NUL byte", key)
		}
		if _, dup := env[key]; !dup {
			keys = append(keys, key)
		}
		env[key] = value
		pos = next
	}
	return env, keys, nil
}

func envQuoteName(q byte) string {
	if q == '\'' {
		return "single"
	}
	return "double"
}

// envQuoted decodes a quoted value starting at s[i] (just after the opening
// quote q). It returns the value, the index just after the closing quote and
// whether the quote was closed.
func envQuoted(s string, i int, q byte) (string, int, bool) {
	if q == '\'' {
		j := strings.IndexByte(s[i:], '\'')
		if j < 0 {
			return "", len(s), false
		}
		return s[i : i+j], i + j + 1, true
	}
	var b strings.Builder
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), i + 1, true
		case c == '\\' && i+1 < len(s):
			switch n := s[i+1]; n {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '"', '\\', '$':
				b.WriteByte(n)
			default:
				b.WriteByte('\\')
				b.WriteByte(n)
			}
			i += 2
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", len(s), false
}

// envIsKey reports whether k matches [A-Za-z_][A-Za-z0-9_.]*.
func envIsKey(k string) bool {
	if k == "" || !isVarStart(k[0]) {
		return false
	}
	for i := 1; i < len(k); i++ {
		if c := k[i]; !isVarChar(c) && c != '.' {
			return false
		}
	}
	return true
}

// LoadDotenv reads and merges the .env files at paths, in order: a later
// file overrides the keys of an earlier one. Every file must exist; for the
// implicit default file use LoadAppEnv. The keys are returned in the order
// of first appearance.
func LoadDotenv(paths ...string) (map[string]string, []string, error) {
	env := map[string]string{}
	var keys []string
	for _, p := range paths {
		if err := envMergeFile(env, &keys, p); err != nil {
			return nil, nil, err
		}
	}
	return env, keys, nil
}

// LoadAppEnv builds the environment of a Procfile application (reference
// §13.1): <root>/.env first, skipped when it does not exist, then the files
// given with -e, each of which must exist. Later files override earlier
// ones. Pass only the -e files the user gave, not a default ".env" (which
// would load <root>/.env a second time, or fail when it is missing).
func LoadAppEnv(root string, files ...string) (map[string]string, []string, error) {
	env := map[string]string{}
	var keys []string
	def := filepath.Join(root, ".env")
	if err := envMergeFile(env, &keys, def); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	for _, p := range files {
		if err := envMergeFile(env, &keys, p); err != nil {
			return nil, nil, err
		}
	}
	return env, keys, nil
}

func envMergeFile(env map[string]string, keys *[]string, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	m, k, err := ParseDotenv(path, f)
	if err != nil {
		return err
	}
	for _, key := range k {
		if _, ok := env[key]; !ok {
			*keys = append(*keys, key)
		}
		env[key] = m[key]
	}
	return nil
}
