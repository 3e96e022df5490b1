package gaffer

// Typed values out of decoded JSON objects (decodeObject keeps numbers as
// json.Number). Each reader takes the key it reads and names it in its
// error, so that a 400 says which field is wrong ("env.PORT: expected a
// string…", "args[1]: expected a string…"). The job settings table
// (jobsettings.go) and the API's other bodies (auth, commit, scale) use
// them alike.

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// nonNil returns s, or an empty list for nil (so that JSON shows []).
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// typeErr is the 400 of a value of the wrong JSON type at key k.
func typeErr(k string, want string, v any) error {
	return errBadRequest("%s: expected %s, got %s", k, want, jsonTypeName(v))
}

// jsonTypeName names the JSON type of a decoded value ("a string").
func jsonTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number, float64, int:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// mapString reads a string.
func mapString(k string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", typeErr(k, "a string", v)
	}
	return s, nil
}

// mapBool reads a boolean, or a string in one of the INI spellings.
func mapBool(k string, v any) (bool, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		if r, ok := ParseBool(b); ok {
			return r, nil
		}
	}
	return false, typeErr(k, "a boolean", v)
}

// mapInt reads an integer that fits 32 bits: a number without a
// fraction, or a string of digits.
func mapInt(k string, v any) (int, error) {
	switch n := v.(type) {
	case json.Number:
		i, err := strconv.ParseInt(string(n), 10, 32)
		if err != nil {
			f, ferr := n.Float64()
			if ferr != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
				return 0, errBadRequest("%s: expected an integer, got %s", k, n)
			}
			return int(f), nil
		}
		return int(i), nil
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > math.MaxInt32 {
			return 0, errBadRequest("%s: expected an integer, got %v", k, n)
		}
		return int(n), nil
	case int:
		return n, nil
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 32)
		if err != nil {
			return 0, errBadRequest("%s: expected an integer, got %q", k, n)
		}
		return int(i), nil
	}
	return 0, typeErr(k, "an integer", v)
}

// mapFloat reads a finite number, or a string holding one.
func mapFloat(k string, v any) (float64, error) {
	var f float64
	var err error
	switch n := v.(type) {
	case json.Number:
		f, err = n.Float64()
	case float64:
		f = n
	case int:
		f = float64(n)
	case string:
		f, err = strconv.ParseFloat(strings.TrimSpace(n), 64)
	default:
		return 0, typeErr(k, "a number", v)
	}
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errBadRequest("%s: expected a number, got %v", k, v)
	}
	return f, nil
}

// mapID reads a user or group: a name, or a non-negative integer.
func mapID(k string, v any) (string, error) {
	switch n := v.(type) {
	case nil:
		return "", nil
	case string:
		return n, nil
	case json.Number:
		i, err := strconv.ParseUint(string(n), 10, 32)
		if err != nil {
			return "", errBadRequest("%s: expected a name or a non-negative integer, got %s", k, n)
		}
		return strconv.FormatUint(i, 10), nil
	case float64:
		if n < 0 || n != math.Trunc(n) {
			return "", errBadRequest("%s: expected a name or a non-negative integer", k)
		}
		return strconv.FormatInt(int64(n), 10), nil
	}
	return "", typeErr(k, "a name or an integer", v)
}

// mapStrings reads a list of strings, or one comma-separated string.
func mapStrings(k string, v any) ([]string, error) {
	switch a := v.(type) {
	case nil:
		return nil, nil
	case string:
		var out []string
		for _, s := range strings.Split(a, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out, nil
	case []any:
		out := make([]string, 0, len(a))
		for i, e := range a {
			s, ok := e.(string)
			if !ok {
				return nil, typeErr(fmt.Sprintf("%s[%d]", k, i), "a string", e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, typeErr(k, "a list of strings", v)
}

// mapArgs reads arguments: a list of strings, or one string split into
// words as a shell would.
func mapArgs(k string, v any) ([]string, error) {
	if s, ok := v.(string); ok {
		args, err := SplitCommandLine(s)
		if err != nil {
			return nil, errBadRequest("%s: %v", k, err)
		}
		return args, nil
	}
	return mapStrings(k, v)
}

// mapEnv reads an env object. Values are strings; a number is taken as
// its text as written ("PORT": 8080 is "8080") and a boolean as "true" or
// "false", as compose files do; null, objects and lists are refused.
func mapEnv(k string, v any) (map[string]string, error) {
	if v == nil {
		return nil, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, typeErr(k, "an object", v)
	}
	env := make(map[string]string, len(obj))
	for name, val := range obj {
		if name == "" || strings.ContainsAny(name, "=\x00") {
			return nil, errBadRequest("%s: invalid variable name %q", k, name)
		}
		switch x := val.(type) {
		case string:
			if strings.ContainsRune(x, 0) {
				return nil, errBadRequest("%s.%s: value contains a NUL byte", k, name)
			}
			env[name] = x
		case json.Number:
			env[name] = string(x)
		case bool:
			env[name] = strconv.FormatBool(x)
		default:
			return nil, typeErr(k+"."+name, "a string (numbers and booleans are taken as their text)", val)
		}
	}
	return env, nil
}
