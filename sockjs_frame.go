package gaffer

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// SockJS frames: what a client sends (a JSON array of strings, or one
// string) and what the server writes (o, h, a[...], c[code,"reason"]),
// with the string quoting of sockjs-protocol 0.3.3.

// sjDecode parses what a client sends: a JSON array of strings, or one
// JSON string.
func sjDecode(data []byte) ([]string, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	switch t := v.(type) {
	case string:
		return []string{t}, nil
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, errors.New("not a string")
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, errors.New("not an array of strings")
}

// sjArrayFrame encodes messages as an "a" frame.
func sjArrayFrame(msgs []string) string {
	var b strings.Builder
	sjAppendArray(&b, msgs)
	return b.String()
}

// sjAppendArray writes messages as an "a" frame.
func sjAppendArray(b sjWriter, msgs []string) {
	b.WriteString("a[")
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte(',')
		}
		sjQuote(b, m)
	}
	b.WriteByte(']')
}

// sjWriter is where frames are encoded: a strings.Builder, or a
// bufio.Writer on a response.
type sjWriter interface {
	WriteByte(c byte) error
	WriteString(s string) (int, error)
}

// sjCloseFrame encodes a "c" frame.
func sjCloseFrame(code int, reason string) string {
	var b strings.Builder
	b.WriteString("c[")
	b.WriteString(strconv.Itoa(code))
	b.WriteByte(',')
	sjQuote(&b, reason)
	b.WriteByte(']')
	return b.String()
}

// sjQuote writes s as a JSON string in pure ASCII: every character
// outside printable ASCII is a \u escape (surrogate pairs above U+FFFF),
// so that no transport or browser mangles it; invalid UTF-8 becomes
// U+FFFD.
func sjQuote(b sjWriter, s string) {
	const hex = "0123456789abcdef"
	u := func(r rune) {
		b.WriteString(`\u`)
		b.WriteByte(hex[r>>12&0xf])
		b.WriteByte(hex[r>>8&0xf])
		b.WriteByte(hex[r>>4&0xf])
		b.WriteByte(hex[r&0xf])
	}
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r >= 0x20 && r < 0x7f:
			b.WriteByte(byte(r))
		case r > 0xffff:
			r -= 0x10000
			u(0xd800 + (r>>10)&0x3ff)
			u(0xdc00 + r&0x3ff)
		default:
			u(r)
		}
	}
	b.WriteByte('"')
}
