package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/gaffer-go/gaffer"
)

// app is the Procfile application of the working directory (reference
// §13): its Procfile (nil when there is none), root and environment.
type app struct {
	pf      *gaffer.Procfile
	root    string // absolute
	name    string // from the root's base name ("" when not a valid session name)
	env     map[string]string
	envKeys []string
}

var appNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// loadApp reads the Procfile (required when need is set, or when -f was
// given) and the .env files.
func (c *state) loadApp(need bool) (*app, error) {
	a := &app{}
	pfPath := c.g.procfile
	if pfPath == "" {
		pfPath = "Procfile"
		if c.g.rootSet {
			pfPath = filepath.Join(c.g.root, "Procfile")
		}
	}
	pf, err := gaffer.LoadProcfile(pfPath)
	switch {
	case err == nil:
		a.pf = pf
	case errors.Is(err, fs.ErrNotExist):
		if c.g.procfileSet || need {
			return nil, fmt.Errorf("config error: procfile '%s' not found", pfPath)
		}
	default:
		return nil, err
	}
	root := c.g.root
	if root == "" {
		root = "."
		if a.pf != nil {
			root = filepath.Dir(pfPath)
		}
	}
	if a.root, err = filepath.Abs(root); err != nil {
		return nil, err
	}
	base := filepath.Base(a.root)
	if appNameRE.MatchString(base) && gaffer.ValidateSession(base) == nil {
		a.name = base
	}
	files, pairs := splitEnvArgs(c.g.envFiles)
	a.env, a.envKeys, err = gaffer.LoadAppEnv(a.root, files...)
	if err != nil {
		return nil, fmt.Errorf("env: %v", err)
	}
	for _, kv := range pairs {
		if _, ok := a.env[kv[0]]; !ok {
			a.envKeys = append(a.envKeys, kv[0])
		}
		a.env[kv[0]] = kv[1]
	}
	return a, nil
}

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// splitEnvArgs sorts the -e values into .env files (0.5.2's -e path) and
// KEY=VALUE pairs (the documentation's -e k=v): a value is a pair when it
// has the form KEY=VALUE and no file of that name exists. The pairs apply
// after the files.
func splitEnvArgs(values []string) (files []string, pairs [][2]string) {
	for _, v := range values {
		if k, val, ok := strings.Cut(v, "="); ok && envKeyRE.MatchString(k) {
			if _, err := os.Stat(v); errors.Is(err, fs.ErrNotExist) {
				pairs = append(pairs, [2]string{k, val})
				continue
			}
		}
		files = append(files, v)
	}
	return files, pairs
}

// appName resolves the application (session) name, given with --app or as
// the documentation's <name>/<appname> argument (reference §12.1): an
// explicit value ("." is the current folder's app), else the Procfile's
// app, else "default".
func (c *state) appName(a *app, flagValue string) (string, error) {
	name := flagValue
	switch {
	case name == ".":
		name = a.name
		if name == "" {
			return "", fmt.Errorf("the directory name %q is not a valid app name; use --app NAME", filepath.Base(a.root))
		}
	case name != "":
	case a.pf != nil:
		name = a.name
		if name == "" {
			return "", fmt.Errorf("the directory name %q is not a valid app name; use --app NAME", filepath.Base(a.root))
		}
	default:
		name = "default"
	}
	if err := gaffer.ValidateSession(name); err != nil {
		return "", fmt.Errorf("application name %q: %v", name, errorText(err))
	}
	return name, nil
}

// userConfig is the user's gaffer.ini ($GAFFER_CONFIG or
// ~/.gaffer/gaffer.ini): [node "<url>"] sections with key, certfile,
// keyfile and cacert.
type userConfig struct {
	path  string
	nodes map[string]map[string]string
	order []string
}

func userConfigPath() string {
	if p := os.Getenv("GAFFER_CONFIG"); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".gaffer", "gaffer.ini")
}

// loadUserConfig reads the user config; a missing or unreadable file is
// an empty config.
func loadUserConfig() *userConfig {
	uc := &userConfig{path: userConfigPath(), nodes: map[string]map[string]string{}}
	if uc.path == "" {
		return uc
	}
	f, err := os.Open(uc.path)
	if err != nil {
		return uc
	}
	defer f.Close()
	var cur map[string]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			sec := strings.TrimSpace(line[1 : len(line)-1])
			cur = nil
			if rest, ok := strings.CutPrefix(sec, "node "); ok {
				url := strings.Trim(strings.TrimSpace(rest), `"`)
				cur = map[string]string{}
				if _, dup := uc.nodes[url]; !dup {
					uc.order = append(uc.order, url)
				}
				uc.nodes[url] = cur
			}
			continue
		}
		if cur == nil {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			k = strings.TrimSpace(k)
			if k == "cerfile" { // the original's spelling
				k = "certfile"
			}
			cur[k] = strings.TrimSpace(v)
		}
	}
	return uc
}

// node returns the settings of the gafferd at endpoint (matched after
// normalisation).
func (uc *userConfig) node(endpoint string) map[string]string {
	want := normEndpoint(endpoint)
	for url, m := range uc.nodes {
		if normEndpoint(url) == want {
			return m
		}
	}
	return map[string]string{}
}

func normEndpoint(ep string) string {
	u, sock, err := gaffer.ParseEndpoint(ep)
	if err != nil {
		return ep
	}
	if sock != "" {
		return "unix:" + sock
	}
	return u.String()
}

// setNodeKey stores key for endpoint and writes the file (mode 0600, in a
// 0700 directory).
func (uc *userConfig) setNodeKey(endpoint, key string) error {
	if uc.path == "" {
		return errors.New("no home directory to keep the key in (set GAFFER_CONFIG)")
	}
	want := normEndpoint(endpoint)
	var m map[string]string
	for url, n := range uc.nodes {
		if normEndpoint(url) == want {
			m = n
		}
	}
	if m == nil {
		m = map[string]string{}
		uc.nodes[want] = m
		uc.order = append(uc.order, want)
	}
	m["key"] = key
	var b strings.Builder
	for _, url := range uc.order {
		fmt.Fprintf(&b, "[node \"%s\"]\n", url)
		for _, k := range []string{"key", "certfile", "keyfile", "cacert"} {
			if v := uc.nodes[url][k]; v != "" {
				fmt.Fprintf(&b, "%s = %s\n", k, v)
			}
		}
		b.WriteByte('\n')
	}
	if err := os.MkdirAll(filepath.Dir(uc.path), 0o700); err != nil {
		return err
	}
	tmp := uc.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, uc.path)
}
