package gaffer

import (
	"errors"
	"fmt"
	"strings"
)

// SplitCommandLine splits s into words with POSIX shell rules: blanks
// separate words, single quotes keep everything literally, double quotes
// keep everything but a backslash before \ " $ ` or a newline, and a
// backslash outside quotes escapes the next character. Variables are not
// expanded here (see ExpandVars); a '$' is kept as it is, except that a
// '$' written inside single quotes or escaped with a backslash is doubled
// to "$$" so that ExpandVars turns it back into one literal '$'.
func SplitCommandLine(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
			i++
		case c == '\'':
			inWord = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote at offset %d", i)
			}
			cur.WriteString(strings.ReplaceAll(s[i+1:i+1+j], "$", "$$"))
			i += j + 2
		case c == '"':
			inWord = true
			i++
			closed := false
			for i < len(s) {
				d := s[i]
				if d == '"' {
					closed = true
					i++
					break
				}
				if d == '\\' && i+1 < len(s) {
					switch n := s[i+1]; n {
					case '\\', '"', '`':
						cur.WriteByte(n)
						i += 2
						continue
					case '$':
						cur.WriteString("$$")
						i += 2
						continue
					case '\n':
						i += 2
						continue
					}
				}
				cur.WriteByte(d)
				i++
			}
			if !closed {
				return nil, errors.New("unterminated double quote")
			}
		case c == '\\':
			inWord = true
			if i+1 >= len(s) {
				return nil, errors.New("trailing backslash")
			}
			n := s[i+1]
			switch n {
			case '\n':
			case '$':
				cur.WriteString("$$")
			default:
				cur.WriteByte(n)
			}
			i += 2
		default:
			inWord = true
			cur.WriteByte(c)
			i++
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// ExpandVars replaces $NAME and ${NAME} with values from lookup and "$$"
// with a literal '$'. A variable that lookup does not know is an error that
// names it; so is a '$' that starts nothing (a lone '$' at the end, or
// "${" without its '}').
func ExpandVars(s string, lookup func(string) (string, bool)) (string, error) {
	if strings.IndexByte(s, '$') < 0 {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(s) {
			b.WriteByte('$') // a trailing '$' is literal, as in sh
			i++
			continue
		}
		n := s[i+1]
		switch {
		case n == '$':
			b.WriteByte('$')
			i += 2
		case n == '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf("unterminated ${ in %q", s)
			}
			name := s[i+2 : i+2+end]
			if !isVarName(name) {
				return "", fmt.Errorf("invalid variable name %q in %q", name, s)
			}
			v, ok := lookup(name)
			if !ok {
				return "", fmt.Errorf("undefined variable $%s", name)
			}
			b.WriteString(v)
			i += 3 + end
		case isVarStart(n):
			j := i + 1
			for j < len(s) && isVarChar(s[j]) {
				j++
			}
			name := s[i+1 : j]
			v, ok := lookup(name)
			if !ok {
				return "", fmt.Errorf("undefined variable $%s", name)
			}
			b.WriteString(v)
			i = j
		default:
			b.WriteByte('$') // "$1", "$ " …: literal, as in sh without positional args
			i++
		}
	}
	return b.String(), nil
}

func isVarStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isVarChar(c byte) bool { return isVarStart(c) || (c >= '0' && c <= '9') }

func isVarName(s string) bool {
	if s == "" || !isVarStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isVarChar(s[i]) {
			return false
		}
	}
	return true
}

// shellQuote quotes s for sh so that it reads back as one word.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '_' || r == '-' || r == '.' || r == '/' || r == ':' || r == '=' || r == ',' || r == '+' || r == '@' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
