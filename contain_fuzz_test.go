package gaffer

import (
	"testing"
)

// A socket spec that parses writes back in a canonical form that parses
// to the same socket.
func FuzzSocketSpec(f *testing.F) {
	for _, s := range []string{"tcp://127.0.0.1:8000", "web=unix:/run/app.sock?backlog=16&mode=0660", "udp://[::1]:53",
		"tcp://:80", "unix:@abstract", "tcp://localhost:1?backlog=4096", "x=tcp://1.2.3.4:5?mode=0600"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := parseSocketSpec(s)
		if err != nil {
			return
		}
		again, err := parseSocketSpec(spec.String())
		if err != nil {
			t.Fatalf("%q → %q does not parse: %v", s, spec.String(), err)
		}
		if again != spec {
			t.Fatalf("%q → %q → %+v, want %+v", s, spec.String(), again, spec)
		}
	})
}

// A resource limit that parses writes back in a form that parses to the
// same limit.
func FuzzRlimit(f *testing.F) {
	for _, s := range []string{"1024", "1024:4096", "infinity", "0:unlimited", "64M", "1G:infinity", "5:3"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, sized bool) {
		cur, max, err := parseRlimit(s, sized)
		if err != nil {
			return
		}
		if cur > max {
			t.Fatalf("%q: soft %d above hard %d", s, cur, max)
		}
		c2, m2, err := parseRlimit(formatRlimit(cur, max), false)
		if err != nil || c2 != cur || m2 != max {
			t.Fatalf("%q → %q → %d:%d, %v", s, formatRlimit(cur, max), c2, m2, err)
		}
	})
}
