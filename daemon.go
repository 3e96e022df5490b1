package gaffer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// DaemonOptions configures a Daemon: the configuration file and the
// command-line overrides of gafferd.
type DaemonOptions struct {
	ConfigPath   string // file or directory; "" runs with defaults and no job
	Binds        []string
	RequireKey   bool // --require-key: can only turn it on
	DataDir      string
	PluginsDir   string
	LookupdAddrs []string
	Broadcast    string
	CertFile     string
	KeyFile      string
	// TLS client files for the lookupd connections (--client-certfile,
	// --client-keyfile, --cacert); they override [lookup_ssl].
	LookupdCertFile, LookupdKeyFile, LookupdCAFile string
	Verbose                                        int       // 1: lifecycle events on Console; 2: all events and process output
	Console                                        io.Writer // where -v/-vv lines go (stdout)
	Logger                                         *slog.Logger
	// Apps are started after the manager and stopped before it (plugins,
	// embedders' applications).
	Apps []App
}

// App is an application hosted by a Daemon (the seed's apps and
// plugins): it starts with the daemon, is restarted on reload and stopped
// before the daemon ends.
type App interface {
	Start(ctx context.Context, d *Daemon) error
	Stop() error
	Restart() error
}

// Daemon is a running gafferd: manager, API listeners, reloads and
// signals, wired from a Config.
type Daemon struct {
	opts    DaemonOptions
	log     *slog.Logger
	Manager *Manager
	Server  *Server
	Auth    *AuthStore

	mu       sync.Mutex
	cfg      *Config
	fileJobs []SessionJob // the jobs the configuration file defines, as last applied
	apps     []App
	hooks    *Webhooks // also in apps; stopped after the manager (shutdown)
	addrs    []net.Addr
	state    *StateRecorder // nil when the runtime state is not kept
}

// NewDaemon reads the configuration and prepares a Daemon; Run starts it.
func NewDaemon(opts DaemonOptions) (*Daemon, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cfg := &Config{}
	if opts.ConfigPath != "" {
		c, err := LoadConfig(opts.ConfigPath)
		if err != nil {
			return nil, err
		}
		cfg = c
		for _, w := range cfg.Warnings {
			opts.Logger.Warn("config: " + w)
		}
	} else {
		wd, _ := os.Getwd()
		cfg.Dir = wd
	}
	d := &Daemon{opts: opts, log: opts.Logger, cfg: cfg}
	return d, nil
}

// Config returns the configuration in force.
func (d *Daemon) Config() *Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// DataDir is where gafferd keeps keys, users and its state file.
func (d *Daemon) DataDir() string {
	if d.opts.DataDir != "" {
		return d.opts.DataDir
	}
	if d.cfg.DataDir != "" {
		return d.cfg.DataDir
	}
	if d.cfg.Dir != "" {
		return d.cfg.Dir
	}
	return "."
}

// requireKey: the command line can only turn it on; the file may.
func (d *Daemon) requireKey() bool {
	if d.opts.RequireKey {
		return true
	}
	return d.cfg.RequireKey != nil && *d.cfg.RequireKey
}

// endpoints: --bind replaces the file's endpoints when given.
func (d *Daemon) endpoints() []EndpointConfig {
	if len(d.opts.Binds) > 0 {
		var eps []EndpointConfig
		for i, b := range d.opts.Binds {
			ep := EndpointConfig{Name: "bind" + strconv.Itoa(i), Bind: b, SocketMode: DefaultSocketMode}
			if !ep.IsUnix() {
				ep.CertFile, ep.KeyFile = d.opts.CertFile, d.opts.KeyFile
			}
			eps = append(eps, ep)
		}
		return eps
	}
	if len(d.cfg.Endpoints) == 0 {
		return []EndpointConfig{{Name: "default", Bind: DefaultBind, CertFile: d.opts.CertFile, KeyFile: d.opts.KeyFile}}
	}
	eps := append([]EndpointConfig(nil), d.cfg.Endpoints...)
	for i := range eps {
		if eps[i].CertFile == "" && d.opts.CertFile != "" && !eps[i].IsUnix() {
			eps[i].CertFile, eps[i].KeyFile = d.opts.CertFile, d.opts.KeyFile
		}
	}
	return eps
}

// Addrs returns the addresses the API listens on (after Run started).
func (d *Daemon) Addrs() []net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]net.Addr(nil), d.addrs...)
}

// Run starts everything and blocks until ctx ends or a stop signal
// arrives (SIGTERM, SIGINT, SIGQUIT); SIGHUP reloads the configuration
// and SIGUSR1 reopens the log files. ready is called once the API
// listens.
func (d *Daemon) Run(ctx context.Context, ready func()) error {
	if err := CheckMandatoryPlugins(d.PluginsDir(), d.cfg.MandatoryPlugins); err != nil {
		return err
	}
	// Signals first: a SIGTERM during start-up must still stop the
	// processes already spawned, not kill gafferd and orphan them.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	if err := SetSubreaper(); err != nil {
		d.log.Warn("cannot become child subreaper; escaped grandchildren will not be reaped", "err", err)
	}
	lookupApp, err := d.lkApp()
	if err != nil {
		return err
	}
	if d.requireKey() {
		store, err := OpenAuthStore(d.DataDir())
		if err != nil {
			return fmt.Errorf("auth store: %w", err)
		}
		d.Auth = store
	} else {
		d.log.Info("require_key is off: every client that can reach the API may run commands")
	}
	var consoleOut func(*Process, string, []byte)
	if d.opts.Verbose >= 2 && d.opts.Console != nil {
		consoleOut = newConsolePrinter(d.opts.Console).output
	}
	essential := make(chan error, 1) // an essential job gave up: stop everything, exit 1
	d.Manager = NewManager(Options{Logger: d.log, Output: consoleOut, MaxProcesses: d.cfg.MaxProcesses, MaxGracefulTimeout: d.cfg.MaxGracefulTimeout,
		EssentialFailed: func(job, reason string) {
			select {
			case essential <- fmt.Errorf("the essential job %s gave up (%s): every job was stopped", job, reason):
			default:
			}
		}})
	d.Manager.enableCgroups()            // a cgroup per process where the machine allows it
	defer startStatsHistory(d.Manager)() // the console's graphs (statshistory.go), stopped when Run returns
	setMaxSubscriberMemory(d.cfg.MaxSubscriberMemory)
	if d.opts.Verbose >= 1 && d.opts.Console != nil {
		go printConsoleEvents(consoleEvents(d.Manager, d.opts.Verbose >= 2), d.opts.Console)
	}
	d.Server = NewServer(ServerOptions{Manager: d.Manager, Auth: d.Auth, RequireKey: d.requireKey(),
		UnixSocketTrusted: d.cfg.UnixSocketTrusted, CORSOrigins: d.cfg.CORSOrigins, Logger: d.log,
		Reload: d.Reload, AllowedHosts: d.lkAnnouncedHosts()})

	// Webhooks before the first job loads: they see the start-up too.
	d.hooks = &Webhooks{}
	if err := d.hooks.Start(ctx, d); err != nil {
		d.log.Error("webhooks failed to start", "err", err)
	} else {
		d.apps = append(d.apps, d.hooks)
	}

	// Jobs: the file's, merged with the runtime state (state.go), in
	// priority order, then the jobs loaded through the API.
	d.fileJobs = append([]SessionJob(nil), d.cfg.Jobs...)
	startRestored, err := d.restoreState()
	if err != nil {
		d.shutdown()
		return err
	}

	// Listeners.
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for _, ep := range d.endpoints() {
		l, h, err := d.Server.Listen(ep)
		if err != nil {
			d.shutdown()
			return err
		}
		h = d.state.Middleware(h) // answer changes once they are saved
		d.mu.Lock()
		d.addrs = append(d.addrs, l.Addr())
		d.mu.Unlock()
		d.log.Info("listening", "endpoint", ep.Name, "address", l.Addr().String(), "tls", ep.CertFile != "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.Server.Serve(l, h); err != nil {
				errc <- err
			}
		}()
	}
	// The API answers while the restored jobs start (changes wait).
	if err := startRestored(); err != nil {
		d.shutdown()
		return err
	}
	apps := append([]App(nil), plWithPlugins(d.opts.Apps)...)
	if lookupApp != nil {
		apps = append(apps, lookupApp)
	}
	for _, app := range apps {
		if err := app.Start(ctx, d); err != nil {
			d.log.Error("app failed to start", "err", err)
			continue
		}
		d.apps = append(d.apps, app)
	}
	mtAttach(d) // GET /metrics reports the apps' figures (webhooks)
	if ready != nil {
		ready()
	}
	sdNotify("READY=1")

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			runErr = err
			break loop
		case err := <-essential:
			d.log.Error("an essential job gave up: stopping every job", "err", err)
			runErr = err
			break loop
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				sdNotify("RELOADING=1")
				diff, err := d.Reload(false)
				if err != nil {
					d.log.Error("reload failed; the running configuration is kept", "err", err)
				} else {
					d.log.Info("reloaded", "added", diff.Added, "removed", diff.Removed, "changed", diff.Changed)
				}
				sdNotify("READY=1")
			case syscall.SIGUSR1:
				d.Manager.ReopenLogs()
				d.log.Info("log files reopened")
			default:
				d.log.Info("stopping", "signal", sig.String())
				break loop
			}
		}
	}
	sdNotify("STOPPING=1")
	// A second stop signal during the graceful stop stops at once.
	stopped := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGTERM || sig == syscall.SIGINT || sig == syscall.SIGQUIT {
					d.log.Warn("second stop signal: killing every process now", "signal", sig.String())
					d.Manager.forceStop()
				}
			case <-stopped:
				return
			}
		}
	}()
	d.shutdown()
	close(stopped)
	wg.Wait()
	return runErr
}

// shutdown stops the apps, every process (gracefully) and the listeners.
func (d *Daemon) shutdown() {
	mtDetach(d)
	for i := len(d.apps) - 1; i >= 0; i-- {
		if d.apps[i] != App(d.hooks) {
			d.apps[i].Stop()
		}
	}
	if d.state != nil {
		// Before the manager stops the jobs: a shutdown is not a change.
		d.state.Stop()
	}
	if d.Manager != nil {
		// Processes get their graceful timeouts; this bounds the whole.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		d.Manager.Shutdown(ctx)
		cancel()
		// Job sockets closed, empty cgroups removed.
		d.Manager.closeContainment()
		d.Manager.closeLedger() // after Shutdown: records the detached processes left running
	}
	if d.hooks != nil {
		// After the manager: the shutdown's stop and exit events go out.
		d.hooks.stopDrained(whDrainTimeout)
	}
	if d.Server != nil {
		d.Server.Shutdown(context.Background())
	}
}

// Reload re-reads the configuration file and applies the difference with
// the jobs it defined before: added jobs load (and start when their start
// setting says so), removed jobs unload, changed jobs update, unchanged
// jobs and their processes are left alone. With dryRun nothing changes.
// A configuration that cannot be read or is invalid changes nothing: the
// error (a 400 through the API) says what and where.
func (d *Daemon) Reload(dryRun bool) (ReloadDiff, error) {
	if d.opts.ConfigPath == "" {
		return ReloadDiff{}, Errorf(CodeUnavailable, 503, "gafferd was started without a configuration file")
	}
	// A file that is missing (a directory without gafferd.ini included)
	// or unreadable is an error that changes nothing, never "no jobs".
	cfg, err := loadConfig(d.opts.ConfigPath, true)
	if err != nil {
		return ReloadDiff{}, err
	}
	if err := d.checkReloadLimits(cfg); err != nil {
		return ReloadDiff{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	diff := DiffJobs(d.fileJobs, cfg.Jobs)
	if dryRun {
		return diff, nil
	}
	var errs []error
	// Removed jobs unload dependents first (the old order has dependencies
	// first); added and changed jobs follow the new order, dependencies
	// first (depends.go).
	var later []string // removed jobs that a changed job depends on until it is updated
	for i := len(diff.Removed) - 1; i >= 0; i-- {
		name := diff.Removed[i]
		if err := d.Manager.Unload(name); err != nil && AsError(err).Code == CodeConflict {
			later = append(later, name)
		} else if err != nil && AsError(err).Code != CodeNotFound {
			errs = append(errs, fmt.Errorf("unload %s: %w", name, err))
		}
	}
	changed, added := map[string]bool{}, map[string]bool{}
	for _, n := range diff.Changed {
		changed[n] = true
	}
	for _, n := range diff.Added {
		added[n] = true
	}
	for _, sj := range cfg.Jobs {
		name := sj.FullName()
		switch {
		case changed[name]:
			delete(changed, name)
			if err := d.Manager.Update(sj.Session, sj.Config, nil, sj.Config.Start); err != nil {
				if AsError(err).Code == CodeNotFound {
					err = d.Manager.Load(sj.Session, sj.Config, nil, sj.Config.Start)
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("update %s: %w", name, err))
				}
			}
		case added[name]:
			delete(added, name)
			if err := d.Manager.Load(sj.Session, sj.Config, nil, sj.Config.Start); err != nil {
				errs = append(errs, fmt.Errorf("load %s: %w", name, err))
			}
		}
	}
	for _, name := range later {
		if err := d.Manager.Unload(name); err != nil && AsError(err).Code != CodeNotFound {
			errs = append(errs, fmt.Errorf("unload %s: %w", name, err))
		}
	}
	d.fileJobs = append([]SessionJob(nil), cfg.Jobs...)
	d.cfg = cfg
	for _, app := range d.apps {
		app.Restart()
	}
	if len(errs) > 0 {
		return diff, Errorf(CodeInvalidConfig, 400, "reload applied with errors: %v", errors.Join(errs...))
	}
	return diff, nil
}

// sdNotify tells systemd about our state when NOTIFY_SOCKET is set
// (sd_notify protocol: one datagram on a unix socket; "@" is the abstract
// namespace).
func sdNotify(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}

// WritePidfile writes our pid atomically; a pidfile holding a live pid is
// an error that names it.
func WritePidfile(path string) error {
	if data, err := os.ReadFile(path); err == nil {
		if pid, err := strconv.Atoi(string(trimSpaceBytes(data))); err == nil && pid > 0 && pid != os.Getpid() {
			if syscall.Kill(pid, 0) == nil || errors.Is(syscall.Kill(pid, 0), syscall.EPERM) {
				return fmt.Errorf("already running on PID %d (or pid file '%s' is stale)", pid, path)
			}
		}
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// RemovePidfile removes the pidfile if it still holds our pid.
func RemovePidfile(path string) {
	data, err := os.ReadFile(path)
	if err == nil && string(trimSpaceBytes(data)) == strconv.Itoa(os.Getpid()) {
		os.Remove(path)
	}
}

func trimSpaceBytes(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// restoreState loads the jobs of the configuration file merged with the
// state file (MergeState), each one stopped and scaled to its target, and
// returns the second step, which starts the ones meant to run and then
// starts recording changes. Run opens the API in between: with many jobs,
// gafferd answers (GET /jobs lists every job, those not started yet as
// "not_started") while their processes start, and a request that changes
// something waits until the start is over (StateRecorder.Middleware). The
// state is kept when gafferd has a configuration file or a --data-dir;
// without either, the jobs of the (empty) configuration load as before.
func (d *Daemon) restoreState() (func() error, error) {
	if d.opts.ConfigPath == "" && d.opts.DataDir == "" {
		for _, sj := range d.cfg.Jobs {
			if err := d.Manager.Load(sj.Session, sj.Config, nil, sj.Config.Start); err != nil {
				d.log.Error("cannot load job", "job", sj.FullName(), "err", err)
			}
		}
		return func() error { return nil }, nil
	}
	if err := d.Manager.useDataDir(d.DataDir()); err != nil {
		return nil, err
	}
	defer d.Manager.releaseUnclaimed()
	sf, saved, err := OpenState(d.DataDir(), d.log)
	if err != nil {
		return nil, err
	}
	unrestored := false
	var starts []string
	for _, rj := range restoreOrder(d.withinLimits(MergeState(d.cfg.Jobs, saved), &unrestored)) {
		full := rj.FullName()
		// Loaded stopped, scaled, then started: a job that cannot spawn
		// yet stays loaded and retries instead of vanishing from the state.
		if err := d.Manager.Load(rj.Session, rj.Config, nil, false); err != nil {
			d.log.Error("cannot load job", "job", full, "origin", rj.Origin, "err", err)
			unrestored = unrestored || rj.Origin == OriginAPI || !rj.Config.Equal(d.fileJobConfig(full))
			continue
		}
		if rj.Target != rj.Config.NumProcesses {
			d.Manager.setTarget(full, rj.Target)
		}
		if rj.Start {
			starts = append(starts, full)
		}
	}
	if unrestored {
		// Keep what the first save would overwrite.
		if p, err := sf.Backup("unrestored"); err != nil {
			d.log.Error("cannot keep a copy of the state file", "err", err)
		} else if p != "" {
			d.log.Error("some saved jobs could not be restored; the state file was copied", "copy", p)
		}
	}
	d.state = NewStateRecorder(sf, func() []SessionJob {
		d.mu.Lock()
		defer d.mu.Unlock()
		return append([]SessionJob(nil), d.fileJobs...)
	})
	return func() error {
		for _, full := range starts {
			// A job a client started or stopped meanwhile (through a
			// websocket command, say) is left as the client made it.
			if info, err := d.Manager.JobInfo(full, false); err != nil || info.State != JobNotStarted {
				continue
			}
			if err := d.Manager.StartJob(full); err != nil {
				d.log.Error("cannot start job; retrying", "job", full, "err", err)
			}
		}
		return d.state.StartManager(d.Manager)
	}, nil
}

// fileJobConfig returns the file's config of a job (zero when the file
// does not define it).
func (d *Daemon) fileJobConfig(full string) JobConfig {
	for _, sj := range d.fileJobs {
		if sj.FullName() == full {
			return sj.Config
		}
	}
	return JobConfig{}
}
