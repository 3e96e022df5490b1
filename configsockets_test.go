package gaffer

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// [socket:NAME] sections: named by several jobs as @NAME, resolved into
// the canonical spec with the section's name, options kept.
func TestConfigSocketSections(t *testing.T) {
	c, dir, err := cfgLoad(t, `
[process:a]
cmd = a
sockets = @web, tcp://127.0.0.1:0

[process:b]
cmd = b
sockets = @web

[socket:web]
bind = unix:web.sock
backlog = 64
mode = 0660

[socket:unused]
bind = tcp://127.0.0.1:0
`)
	if err != nil {
		t.Fatal(err)
	}
	web := "web=unix:" + filepath.Join(dir, "web.sock") + "?backlog=64&mode=0660"
	want := map[string][]string{"default.a": {web, "tcp://127.0.0.1:0"}, "default.b": {web}}
	for _, sj := range c.Jobs {
		if got := sj.Config.Sockets; strings.Join(got, " ") != strings.Join(want[sj.FullName()], " ") {
			t.Errorf("%s: sockets %q, want %q", sj.FullName(), got, want[sj.FullName()])
		}
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "[socket:unused] is named by no job") {
		t.Errorf("warnings %q", c.Warnings)
	}
}

func TestConfigSocketErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct{ name, ini, want string }{
		{"unknown section", "[process:a]\ncmd = a\nsockets = @nope\n", "gaffer.ini:3 (section [process:a]): sockets: @nope: no [socket:nope] section"},
		{"bad spec", "[process:a]\ncmd = a\nsockets = http://x\n", `gaffer.ini:3 (section [process:a]): sockets: "http://x": expected tcp://HOST:PORT`},
		{"host name", "[process:a]\ncmd = a\nsockets = tcp://example.com:80\n", "not an IP address"},
		{"twice", "[process:a]\ncmd = a\nsockets = tcp://127.0.0.1:9, tcp://127.0.0.1:9\n", "listed twice"},
		{"no bind", "[socket:s]\nbacklog = 3\n", "gaffer.ini:1 (section [socket:s]): bind: missing"},
		{"bad key", "[socket:s]\nbind = tcp://127.0.0.1:0\nowner = x\n", "gaffer.ini:3 (section [socket:s]): owner: unknown key (want bind, backlog, mode)"},
		{"mode on tcp", "[socket:s]\nbind = tcp://127.0.0.1:0\nmode = 0600\n", "mode: expected an octal mode like 0660 (unix paths only)"},
		{"bad name", "[socket:a:b]\nbind = tcp://127.0.0.1:0\n", "socket name"},
		{"other options", "[process:a]\ncmd = a\nsockets = tcp://127.0.0.1:9?backlog=5\n[process:b]\ncmd = b\nsockets = tcp://127.0.0.1:9\n",
			"gaffer.ini:6 (section [process:b]): sockets: tcp://127.0.0.1:9 is also defined at"},
		{"in use", "[process:a]\ncmd = a\nsockets = @s\n[socket:s]\nbind = tcp://" + busy.Addr().String() + "\n",
			"gaffer.ini:5 (section [socket:s]): bind: cannot listen on tcp://" + busy.Addr().String()},
		{"no directory", "[process:a]\ncmd = a\nsockets = unix:/nonexistent-dir/x.sock\n", "gaffer.ini:3 (section [process:a]): sockets: cannot listen on unix:/nonexistent-dir/x.sock: directory /nonexistent-dir does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := cfgLoad(t, tt.ini)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one holding %q", err, tt.want)
			}
		})
	}
}

// A job of the API cannot name a [socket:NAME] section; the same
// address in two jobs is one socket; an address in use is a load error.
func TestSocketsLoadErrors(t *testing.T) {
	m := newTestManager(t)
	t.Cleanup(m.closeContainment)
	cfg := childConfig(t, "a", "sleep", nil)
	cfg.Sockets = []string{"@web"}
	if err := m.Load("default", cfg, nil, false); err == nil || !strings.Contains(err.Error(), "only a configuration file has") {
		t.Errorf("load with @web: %v", err)
	}
	busy, _ := net.Listen("tcp", "127.0.0.1:0")
	defer busy.Close()
	cfg.Sockets = []string{"tcp://" + busy.Addr().String()}
	if err := m.Load("default", cfg, nil, false); err == nil || !strings.Contains(err.Error(), "cannot listen on tcp://"+busy.Addr().String()) {
		t.Errorf("load on a busy address: %v", err)
	}
	cfg.Sockets = []string{"tcp://127.0.0.1:0"}
	if err := m.Load("default", cfg, nil, false); err != nil {
		t.Fatal(err)
	}
	other := cfg
	other.Name = "b"
	if err := m.Load("default", other, nil, false); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	n, refs := len(m.contain.sockets.bound), m.contain.sockets.bound["tcp://127.0.0.1:0"].refs
	m.mu.Unlock()
	if n != 1 || refs != 2 {
		t.Errorf("%d sockets bound, %d references; want 1 shared by 2 jobs", n, refs)
	}
	other.Sockets = []string{"tcp://127.0.0.1:0?backlog=8"}
	other.Name = "c"
	if err := m.Load("default", other, nil, false); err == nil || !strings.Contains(err.Error(), "already bound with other options") {
		t.Errorf("load with other options: %v", err)
	}
	addr := socketAddr(t, m, "tcp://127.0.0.1:0")
	m.Unload("default.a")
	m.Unload("default.b")
	if l, err := net.Listen("tcp", addr); err != nil {
		t.Errorf("the socket is still open after both jobs unloaded: %v", err)
	} else {
		l.Close()
	}
}

// An update keeps a socket the new config still names (same file
// descriptor, never closed) and closes one it drops.
func TestSocketsUpdate(t *testing.T) {
	m := newTestManager(t)
	t.Cleanup(m.closeContainment)
	cfg := childConfig(t, "a", "sleep", nil)
	cfg.Sockets = []string{"tcp://127.0.0.1:0", "udp://127.0.0.1:0"}
	if err := m.Load("default", cfg, nil, false); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	tcp := m.contain.sockets.bound["tcp://127.0.0.1:0"]
	m.mu.Unlock()
	cfg.Sockets = []string{"tcp://127.0.0.1:0"}
	if err := m.Update("default", cfg, nil, false); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	same := m.contain.sockets.bound["tcp://127.0.0.1:0"] == tcp
	_, udp := m.contain.sockets.bound["udp://127.0.0.1:0"]
	m.mu.Unlock()
	if !same || udp {
		t.Errorf("after the update: tcp kept %v, udp still bound %v", same, udp)
	}
}
