package gaffer

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestJobConfigFromJSON(t *testing.T) {
	c, err := JobConfigFromJSON([]byte(`{"name": "web", "cmd": "python -u app.py", "args": "--port $PORT",
		"env": {"PORT": "80"}, "numprocesses": 3, "graceful_timeout": 0.5, "redirect_output": ["out", "err"],
		"flapping": {"attempts": 3}, "uid": 1000, "start": false}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.NumProcesses != 3 || c.GracefulTimeout != 500*time.Millisecond || c.UID != "1000" || c.Start ||
		len(c.Args) != 2 || c.Flapping.Attempts != 3 || c.Flapping.MaxRetry != 5 {
		t.Fatalf("%+v", c)
	}
	for body, field := range map[string]string{
		`{"name": "x", "cmd": "a", "numprocesses": 1.5}`:                                   "numprocesses",
		`{"name": "x", "cmd": "a", "env": {"A": [1]}}`:                                     "env.A",
		`{"name": "x", "cmd": "a", "flapping": {"tries": 1}}`:                              "flapping.tries",
		`{"name": "x", "cmd": "a", "redirect_output": [1]}`:                                "redirect_output[0]",
		`{"name": "x", "cmd": "a", "redirect_output": ["a","b","c"]}`:                      "redirect_output",
		`{"name": "x", "cmd": "a", "graceful_timeout": -1}`:                                "graceful_timeout",
		`{"name": "x", "cmd": "a", "custom_streams": ["out"], "redirect_output": ["out"]}`: "custom_streams",
		`{"name": "", "cmd": "a"}`:                                                         "name",
		`{"name": "x", "cmd": "  "}`:                                                       "cmd",
		`{"name": "x", "cmd": "a", "unknown": true}`:                                       "unknown",
	} {
		_, err := JobConfigFromJSON([]byte(body))
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: error %v does not name %s", body, err, field)
		}
	}
}

func TestJobConfigMapMasksSecrets(t *testing.T) {
	c := NewJobConfig("x", "a")
	c.Env = map[string]string{"API_TOKEN": "s3cret", "PORT": "80"}
	m := c.Map(false)
	env := m["env"].(map[string]string)
	if env["API_TOKEN"] == "s3cret" || env["PORT"] != "80" {
		t.Fatalf("env %v", env)
	}
	if c.Map(true)["env"].(map[string]string)["API_TOKEN"] != "s3cret" {
		t.Fatal("manage rights should see the value")
	}
}

func FuzzJobConfigFromJSON(f *testing.F) {
	f.Add([]byte(`{"name": "web", "cmd": "sleep 1", "numprocesses": 2}`))
	f.Add([]byte(`{"name": "x", "cmd": "a", "flapping": "2, 1., 7., 5", "env": {"A": "b"}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := JobConfigFromJSON(data)
		if err != nil {
			if AsError(err).Errno != 400 {
				t.Fatalf("error %v is not a 400", err)
			}
			return
		}
		if c.Validate() != nil {
			t.Fatalf("accepted an invalid config: %+v", c)
		}
		// What is accepted serialises and reads back.
		if _, err := JobConfigFromMap(roundTrip(t, c.Map(true))); err != nil {
			t.Fatalf("round trip of %s: %v", data, err)
		}
	})
}

func roundTrip(t *testing.T, m map[string]any) map[string]any {
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodeObjectBytes(data, false)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// FuzzNameSyntax checks the invariants of the one name syntax: a name it
// accepts is 1 to 128 ASCII letters, digits, '_', '-' (and '.' where
// allowed), neither starts nor ends with '-' or '.', holds no "..", and a
// session name splits back out of "session.job" whole.
func FuzzNameSyntax(f *testing.F) {
	for _, s := range []string{"web", "..", "a.b", "a..b", "-x", "x-", "_", "a/b", "a\x00b", "é", "web-1_x", strings.Repeat("a", 129)} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, dots bool) {
		err := checkName(s, "name", dots)
		if err != nil {
			if e := AsError(err); e.Errno != 400 || !strings.HasPrefix(e.Reason, "name: ") {
				t.Fatalf("%q: error %v is not a 400 naming the field", s, err)
			}
			return
		}
		if s == "" || len(s) > maxNameLen || strings.Contains(s, "..") || strings.ContainsAny(s[:1]+s[len(s)-1:], "-.") {
			t.Fatalf("%q accepted", s)
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' && dots
			if !ok {
				t.Fatalf("%q accepted with byte %q", s, c)
			}
		}
		if !dots {
			if sid, job := SplitName(s + ".j.k"); sid != s || job != "j.k" {
				t.Fatalf("%q: SplitName gives %q, %q", s, sid, job)
			}
		}
	})
}
