package gaffer

import (
	"os"
	"path/filepath"
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
