package gaffer

// Plugins (SPEC "Plugins", reference §9.6): every folder of the plugin
// directory is a plugin. Its _site/ folder (or the folder itself when it
// has nothing to run) is served at /_plugin/<name>/; an executable
// <name>/run is started as the supervised job plugins.<name>, with the
// address of gafferd's API and an API key in its environment.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
)

// PluginSession is the session of the jobs that run executable plugins.
const PluginSession = "plugins"

// Plugin is one folder of the plugin directory.
type Plugin struct {
	Name string // the folder's name: /_plugin/<Name>/ and job plugins.<Name>
	Dir  string // the folder, absolute
	Site string // the folder served at /_plugin/<Name>/, "" when none
	Run  string // the executable started as a job, "" when none
}

// LoadPlugins lists the plugins of dir, sorted by name. A missing dir
// holds no plugin (nil, nil). Hidden folders and plain files are ignored.
// A folder whose name cannot be a job name, or whose run file is not an
// executable regular file, is left out and named in the returned error;
// the other plugins are returned all the same.
func LoadPlugins(dir string) ([]Plugin, error) {
	if dir == "" {
		return nil, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("plugin directory %s: %w", dir, err)
	}
	entries, err := os.ReadDir(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("plugin directory %s: %w", abs, err)
	}
	var out []Plugin
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		p, ok, err := plInspect(abs, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, errors.Join(errs...)
}

// plInspect describes the plugin folder dir/name; ok is false when it is
// not a folder.
func plInspect(dir, name string) (Plugin, bool, error) {
	folder := filepath.Join(dir, name)
	st, err := os.Stat(folder)
	if err != nil || !st.IsDir() {
		return Plugin{}, false, nil
	}
	if !plValidName(name) {
		return Plugin{}, false, fmt.Errorf("plugin %s: the folder name may hold only letters, digits, '-', '_' and '.'", folder)
	}
	p := Plugin{Name: name, Dir: folder}
	run := filepath.Join(folder, "run")
	if st, err := os.Stat(run); err == nil {
		if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			return Plugin{}, false, fmt.Errorf("plugin %s: %s is not an executable file (chmod +x it, or remove it)", name, run)
		}
		p.Run = run
	}
	if st, err := os.Stat(filepath.Join(folder, "_site")); err == nil && st.IsDir() {
		p.Site = filepath.Join(folder, "_site")
	} else if p.Run == "" {
		p.Site = folder
	}
	return p, true, nil
}

// plValidName accepts a plugin folder name: ASCII letters, digits, '-',
// '_' and '.', not starting with '.', at most 100 bytes (it becomes a job
// name and a URL segment).
func plValidName(name string) bool {
	// A plugin's name becomes a job name in session "plugins": the one
	// name rule of the package applies.
	return ValidateName(name, "plugin") == nil
}

// CheckMandatoryPlugins returns an error naming the plugins of mandatory
// that dir does not hold ([gaffer] mandatory_plugins).
func CheckMandatoryPlugins(dir string, mandatory []string) error {
	if len(mandatory) == 0 {
		return nil
	}
	plugins, _ := LoadPlugins(dir)
	have := map[string]bool{}
	for _, p := range plugins {
		have[p.Name] = true
	}
	var missing []string
	for _, m := range mandatory {
		if m = strings.TrimSpace(m); m != "" && !have[m] {
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("mandatory plugins missing from the plugin directory %q: %s ([gaffer] mandatory_plugins)", dir, strings.Join(missing, ", "))
	}
	return nil
}

// PluginsDir returns the plugin directory in force: -p, else
// [gaffer] plugins_dir, else $GAFFER_PLUGIN_DIR, else plugins/ next to the
// configuration.
func (d *Daemon) PluginsDir() string {
	if d.opts.PluginsDir != "" {
		return d.opts.PluginsDir
	}
	return d.Config().PluginsDir
}

// PluginSiteHandler serves the static sites of the plugins of dir under
// /_plugin/<name>/: GET and HEAD only, index.html as the folder's page, no
// listing, no hidden file, nothing outside the site folder (os.Root also
// refuses symbolic links that lead out). Sites are looked up on every
// request, so a plugin added while gafferd runs is served at once.
func PluginSiteHandler(dir string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plServe(w, r, dir)
	})
}

func plServe(w http.ResponseWriter, r *http.Request, dir string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/_plugin/")
	if !ok {
		writeError(w, errNotFound("no plugin site at %s", r.URL.Path))
		return
	}
	name, file, hasSlash := strings.Cut(rest, "/")
	if !plValidName(name) {
		writeError(w, errNotFound("no plugin named %q", name))
		return
	}
	if !hasSlash {
		http.Redirect(w, r, "/_plugin/"+name+"/", http.StatusMovedPermanently)
		return
	}
	abs, _ := filepath.Abs(dir)
	p, found, _ := plInspect(abs, name)
	if !found || p.Site == "" {
		writeError(w, errNotFound("plugin %q has no site", name))
		return
	}
	// Clean the path inside the site; hidden files and folders are never
	// served (.git, .env, and the plugin's own run file when the site is
	// its root folder).
	clean := path.Clean("/" + file)
	for _, seg := range strings.Split(clean, "/") {
		if strings.HasPrefix(seg, ".") {
			writeError(w, errNotFound("no file %s in plugin %s", clean, name))
			return
		}
	}
	if p.Site == p.Dir && clean == "/run" {
		writeError(w, errNotFound("no file %s in plugin %s", clean, name))
		return
	}
	root, err := os.OpenRoot(p.Site)
	if err != nil {
		writeError(w, errNotFound("plugin %q has no site", name))
		return
	}
	defer root.Close()
	rel := strings.TrimPrefix(clean, "/")
	if rel == "" {
		rel = "."
	}
	f, st, err := plOpen(root, rel)
	if err == nil && st.IsDir() {
		f.Close()
		if !strings.HasSuffix(r.URL.Path, "/") {
			http.Redirect(w, r, r.URL.Path+"/", http.StatusMovedPermanently)
			return
		}
		rel = path.Join(rel, "index.html")
		f, st, err = plOpen(root, rel)
		if err == nil && st.IsDir() {
			f.Close()
			err = fs.ErrNotExist
		}
	}
	if err != nil {
		writeError(w, errNotFound("no file %s in plugin %s", clean, name))
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, path.Base(rel), st.ModTime(), f)
}

func plOpen(root *os.Root, rel string) (*os.File, fs.FileInfo, error) {
	f, err := root.Open(rel)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.IsDir() && !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fs.ErrNotExist
	}
	return f, st, nil
}

// PluginsApp is the App that runs the plugins of a Daemon: it serves
// their sites at /_plugin/, starts each executable plugin as the job
// plugins.<name> and, on reload, starts new ones and unloads removed
// ones. Its zero value uses the daemon's plugin directory and
// mandatory_plugins.
type PluginsApp struct {
	Dir       string   // plugin directory; "" is Daemon.PluginsDir()
	Mandatory []string // plugins that must exist; nil is [gaffer] mandatory_plugins

	mu      sync.Mutex
	d       *Daemon
	log     *slog.Logger
	dir     string
	running map[string]Plugin // executable plugins loaded as jobs, by name
}

// Start checks the mandatory plugins, serves the sites and starts the
// executable plugins.
func (a *PluginsApp) Start(ctx context.Context, d *Daemon) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.d, a.log = d, d.log
	a.dir = a.Dir
	if a.dir == "" {
		a.dir = d.PluginsDir()
	}
	mandatory := a.Mandatory
	if mandatory == nil {
		mandatory = d.Config().MandatoryPlugins
	}
	if err := CheckMandatoryPlugins(a.dir, mandatory); err != nil {
		return err
	}
	a.running = map[string]Plugin{}
	if !plRouted(d.Server, "/_plugin/") {
		d.Server.Handle("/_plugin/", PluginSiteHandler(a.dir))
	}
	return a.syncLocked()
}

// plWithPlugins returns the apps a Daemon runs: a PluginsApp for the
// plugin directory first (unless the embedder gave one), then apps.
func plWithPlugins(apps []App) []App {
	for _, a := range apps {
		if _, ok := a.(*PluginsApp); ok {
			return apps
		}
	}
	return append([]App{&PluginsApp{}}, apps...)
}

// plRouted reports whether the server already has a route for pattern
// (registering it twice would panic).
func plRouted(s *Server, pattern string) bool {
	r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: pattern + "x/"}, Host: "localhost"}
	_, p := s.mux.Handler(r)
	return p == pattern
}

// Restart re-reads the plugin directory: new executable plugins start,
// removed ones are unloaded, changed ones are updated.
func (a *PluginsApp) Restart() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.d == nil {
		return errors.New("plugins: not started")
	}
	return a.syncLocked()
}

// Stop unloads the plugin jobs (their processes get their graceful stop).
func (a *PluginsApp) Stop() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.d == nil {
		return nil
	}
	var errs []error
	for name := range a.running {
		if err := a.d.Manager.Unload(PluginSession + "." + name); err != nil && AsError(err).Code != CodeNotFound {
			errs = append(errs, err)
		}
	}
	a.running = map[string]Plugin{}
	return errors.Join(errs...)
}

// Plugins returns the executable plugins running as jobs, by name.
func (a *PluginsApp) Plugins() []Plugin {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Plugin
	for _, p := range a.running {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (a *PluginsApp) syncLocked() error {
	plugins, loadErr := LoadPlugins(a.dir)
	if loadErr != nil {
		a.log.Error("plugins", "err", loadErr)
	}
	var errs []error
	seen := map[string]bool{}
	for _, p := range plugins {
		if p.Site != "" {
			a.log.Info("plugin site", "plugin", p.Name, "url", "/_plugin/"+p.Name+"/", "folder", p.Site)
		}
		if p.Run == "" {
			continue
		}
		seen[p.Name] = true
		cfg, err := a.jobConfig(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		full := PluginSession + "." + p.Name
		if _, ok := a.running[p.Name]; ok {
			if old, err := a.d.Manager.JobConfig(full); err == nil && old.Equal(cfg) {
				continue
			}
			err = a.d.Manager.Update(PluginSession, cfg, nil, true)
		} else {
			err = a.d.Manager.Load(PluginSession, cfg, nil, true)
			if err != nil && AsError(err).Code == CodeConflict {
				err = a.d.Manager.Update(PluginSession, cfg, nil, true)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("plugin %s: %w", p.Name, err))
			continue
		}
		a.running[p.Name] = p
		a.log.Info("plugin started", "plugin", p.Name, "job", full)
	}
	for name := range a.running {
		if !seen[name] {
			if err := a.d.Manager.Unload(PluginSession + "." + name); err != nil && AsError(err).Code != CodeNotFound {
				errs = append(errs, err)
			}
			delete(a.running, name)
		}
	}
	return errors.Join(errs...)
}

// jobConfig builds the job of an executable plugin.
func (a *PluginsApp) jobConfig(p Plugin) (JobConfig, error) {
	cfg := NewJobConfig(p.Name, shellQuote(p.Run))
	cfg.Cwd = p.Dir
	cfg.OSEnv = true
	cfg.RedirectOutput = []string{"stdout", "stderr"}
	flap := DefaultFlapConfig()
	cfg.Flapping = &flap
	cfg.Env = map[string]string{
		"GAFFERD_ADDRESS": plAddress(a.d),
		"GAFFER_PLUGIN":   p.Name,
	}
	if a.d.Auth != nil {
		key, err := plKey(a.d.Auth, p.Name)
		if err != nil {
			return cfg, fmt.Errorf("plugin %s: cannot create its API key: %w", p.Name, err)
		}
		cfg.Env["GAFFER_API_KEY"] = key
	}
	return cfg, nil
}

// plAddress returns the address a plugin reaches gafferd at: the first
// unix socket ("unix:/path"), else the first TCP listener
// ("http://host:port", https with TLS).
func plAddress(d *Daemon) string {
	eps := d.endpoints()
	addrs := d.Addrs()
	for _, ep := range eps {
		if ep.IsUnix() {
			return "unix:" + strings.TrimPrefix(strings.TrimSpace(ep.Bind), "unix:")
		}
	}
	for i, ep := range eps {
		if i >= len(addrs) {
			break
		}
		scheme := "http://"
		if ep.CertFile != "" {
			scheme = "https://"
		}
		return scheme + addrs[i].String()
	}
	return "http://" + DefaultBind
}

// plKey returns the API key of a plugin: the one made for it before, or a
// new one with manage rights on the plugins session.
func plKey(store *AuthStore, name string) (string, error) {
	want := Permissions{Manage: []string{PluginSession}, Write: []string{PluginSession}, Read: []string{PluginSession}}
	for _, k := range store.Keys() {
		if v, _ := k.Extra["plugin"].(string); v == name && slices.Equal(k.Permissions.Manage, want.Manage) {
			return k.Key, nil
		}
	}
	k, err := store.CreateKey(nil, "plugin "+name, want, map[string]any{"plugin": name})
	if err != nil {
		return "", err
	}
	return k.Key, nil
}
