package gaffer

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestConfigLookupdKey: [gaffer] lookupd_key and lookupd_key_file give the
// node key; bad values are errors that name the file and the line.
func TestConfigLookupdKey(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "node.key"), []byte("from-file-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "bad.key"), []byte("has space\n"), 0o600)
	for _, tt := range []struct {
		ini, want, err string
	}{
		{"lookupd_key = inline-key\n", "inline-key", ""},
		{"lookupd_key_file = node.key\n", "from-file-key", ""},
		{"lookupd_key_file = " + filepath.Join(dir, "node.key") + "\n", "from-file-key", ""},
		{"lookupd_key_file = missing.key\n", "", "gaffer.ini:2"},
		{"lookupd_key_file = bad.key\n", "", "not a usable key"},
		{"lookupd_key =\n", "", "not a usable key"},
		{"lookupd_key = a\nlookupd_key_file = node.key\n", "", "use one of lookupd_key and lookupd_key_file"},
	} {
		path := filepath.Join(dir, "gaffer.ini")
		if err := os.WriteFile(path, []byte("[gaffer]\n"+tt.ini), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(path)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: %v, want an error with %q", tt.ini, err, tt.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tt.ini, err)
		case cfg.LookupdKey != tt.want:
			t.Errorf("%q: key %q, want %q", tt.ini, cfg.LookupdKey, tt.want)
		}
	}
}

// TestDaemonLookupdKey: the file's node key is the registrar's; without
// one, $GAFFERD_LOOKUPD_KEY.
func TestDaemonLookupdKey(t *testing.T) {
	t.Setenv("GAFFERD_LOOKUPD_KEY", "env-key")
	for _, tt := range []struct{ file, want string }{{"file-key", "file-key"}, {"", "env-key"}} {
		d := &Daemon{cfg: &Config{LookupdAddresses: []string{"http://l:1"}, LookupdKey: tt.file}}
		app, err := d.lkApp()
		if err != nil {
			t.Fatal(err)
		}
		if k := app.(*LookupdRegistrar).nodeKey; k != tt.want {
			t.Errorf("file key %q: registrar key %q, want %q", tt.file, k, tt.want)
		}
	}
}

// TestDaemonAnnouncedHosts: the names gafferd announces to lookupd.
func TestDaemonAnnouncedHosts(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip(err)
	}
	for _, tt := range []struct {
		opts DaemonOptions
		cfg  Config
		want []string
	}{
		{want: nil},
		{cfg: Config{LookupdAddresses: []string{"http://l:1"}}, want: []string{host}},
		{opts: DaemonOptions{LookupdAddrs: []string{"http://l:1"}}, want: []string{host}},
		{cfg: Config{LookupdAddresses: []string{"http://l:1"}, BroadcastAddress: "http://Node1.Example:5000"}, want: []string{"Node1.Example"}},
		{opts: DaemonOptions{Broadcast: "https://[::1]:5000"}, cfg: Config{BroadcastAddress: "http://f:1"}, want: []string{"::1"}},
	} {
		d := &Daemon{opts: tt.opts, cfg: &tt.cfg}
		if got := d.lkAnnouncedHosts(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%+v %+v: %v, want %v", tt.opts, tt.cfg, got, tt.want)
		}
	}
}

// TestServerAllowedHosts: a loopback listener accepts the announced
// names in Host, and still refuses other names (DNS rebinding).
func TestServerAllowedHosts(t *testing.T) {
	m := NewManager(Options{})
	defer m.Shutdown(context.Background())
	s := NewServer(ServerOptions{Manager: m, AllowedHosts: []string{"Node1.Example"}})
	l, h, err := s.Listen(EndpointConfig{Name: "t", Bind: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l, h)
	defer s.Shutdown(context.Background())
	for _, tt := range []struct {
		host string
		code int
	}{{"node1.example", 200}, {"NODE1.example:5000", 200}, {"localhost", 200}, {"evil.example", 403}, {"node1.example.evil", 403}} {
		req, _ := http.NewRequest("GET", "http://"+l.Addr().String()+"/jobs", nil)
		req.Host = tt.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("Host %q: %d, want %d", tt.host, resp.StatusCode, tt.code)
		}
	}
}

func TestLkResolvesToLoopback(t *testing.T) {
	for host, want := range map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true, "10.1.2.3": false, "no-such-host.invalid": false} {
		if got := lkResolvesToLoopback(host); got != want {
			t.Errorf("%s: %v, want %v", host, got, want)
		}
	}
}
