package gaffer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// StateFileName is the name of gafferd's runtime state file in its data
// directory.
const StateFileName = "state.json"

// StateUnloaded is the State of a StateJob recording that a job of the
// configuration file was unloaded through the API.
const StateUnloaded = "unloaded"

// Origins of a StateJob.
const (
	OriginAPI  = "api"  // loaded through the API (or the CLI, or an app)
	OriginFile = "file" // defined by the configuration file
)

// stFormat is the version written in the state file.
const stFormat = 1

// StateJob is one job as recorded in the state file.
type StateJob struct {
	Session string
	Config  JobConfig
	Target  int    // numprocesses in force (after scaling)
	State   string // a job state (JobRunning…), or StateUnloaded
	Origin  string // OriginAPI or OriginFile
	// APIChanged: a file job whose config, target or started/stopped
	// state differs from the file's (or that was unloaded).
	APIChanged bool
	// FileHash is, for a file job, the hash of the file's version of the
	// job when it was last applied (fileJobHash); "" in state files of
	// earlier versions. At start, a file job whose hash differs is one
	// the file changed since: the file wins over the API change.
	FileHash string
}

// FullName returns "session.job".
func (j StateJob) FullName() string { return j.Session + "." + j.Config.Name }

// stJob is StateJob on disk. The config is the object of the API (as
// JobConfig.Map with secrets shown); graceful_timeout_ns keeps the exact
// duration the seconds may round.
type stJob struct {
	Session    string         `json:"session"`
	Origin     string         `json:"origin"`
	APIChanged bool           `json:"api_changed"`
	Target     int            `json:"numprocesses"`
	State      string         `json:"state"`
	Config     map[string]any `json:"config"`
	GracefulNS int64          `json:"graceful_timeout_ns"`
	FileHash   string         `json:"file_hash,omitempty"`
}

type stDoc struct {
	Format int     `json:"format"`
	Saved  string  `json:"saved"`
	Jobs   []stJob `json:"jobs"`
}

// StateFile is gafferd's runtime state file (DataDir/state.json): the jobs
// loaded, updated, scaled, started, stopped or unloaded through the API,
// so that a restart of gafferd finds them as they were. It holds the jobs'
// environment, secrets included, so it is written with mode 0600. Saves
// are atomic (temporary file, fsync, rename, fsync of the directory): the
// file on disk is always a complete earlier or later state, whatever the
// moment gafferd is killed. It is safe for concurrent use.
type StateFile struct {
	mu   sync.Mutex
	dir  string
	path string
	log  *slog.Logger
}

// OpenState opens the state file of dataDir (creating the directory, mode
// 0700, when missing) and returns what it holds. A missing file is an
// empty state. A file that cannot be read back (truncated, corrupt, of an
// unknown format, or holding an invalid job) is renamed to
// state.json.corrupt-<time>, logged as an error naming both paths, and
// gives an empty state: gafferd starts with its configuration file alone
// and the old state is kept for a person to look at. Leftover temporary
// files of an interrupted save are removed.
func OpenState(dataDir string, logger *slog.Logger) (*StateFile, []StateJob, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if dataDir == "" {
		dataDir = "."
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("state: data directory: %w", err)
	}
	sf := &StateFile{dir: dataDir, path: filepath.Join(dataDir, StateFileName), log: logger}
	if olds, _ := filepath.Glob(filepath.Join(dataDir, "."+StateFileName+".tmp-*")); len(olds) > 0 {
		for _, p := range olds {
			os.Remove(p)
		}
	}
	jobs, refused, err := stReadJobs(sf.path)
	if err == nil {
		if len(refused) > 0 {
			for _, r := range refused {
				logger.Error("a saved job is refused by the checks of this gafferd; it is not restored", "path", sf.path, "job", r)
			}
			if p, berr := sf.Backup("unrestored"); berr != nil {
				logger.Error("cannot keep a copy of the state file", "err", berr)
			} else {
				logger.Error("the state file was copied before it is rewritten without the refused jobs", "copy", p)
			}
		}
		return sf, jobs, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return sf, nil, nil
	}
	var ce *stCorrupt
	if !errors.As(err, &ce) {
		return nil, nil, fmt.Errorf("state: %w", err)
	}
	aside := sf.path + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000000000Z")
	if rerr := os.Rename(sf.path, aside); rerr != nil {
		return nil, nil, fmt.Errorf("state: %s is unreadable (%v) and cannot be moved aside: %w", sf.path, err, rerr)
	}
	stSyncDir(dataDir)
	logger.Error("state file is unreadable; moved aside, starting from the configuration file alone",
		"path", sf.path, "moved_to", aside, "err", ce.msg)
	return sf, nil, nil
}

// Path returns the state file's path.
func (sf *StateFile) Path() string { return sf.path }

type stCorrupt struct{ msg string }

func (e *stCorrupt) Error() string { return e.msg }

// stReadFile reads and checks a state file; a content problem is a
// *stCorrupt, and so is a job that today's checks refuse.
func stReadFile(path string) ([]StateJob, error) {
	jobs, refused, err := stReadJobs(path)
	if err == nil && len(refused) > 0 {
		return nil, &stCorrupt{msg: refused[0]}
	}
	return jobs, err
}

// stReadJobs reads and checks a state file. A job whose session or config
// today's checks refuse (a name or a limit an earlier version accepted) is
// left out and described in refused; a problem of the file itself is a
// *stCorrupt.
func stReadJobs(path string) (jobs []StateJob, refused []string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	corrupt := func(format string, args ...any) error {
		return &stCorrupt{msg: fmt.Sprintf(format, args...)}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, corrupt("empty file")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var doc stDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, corrupt("invalid JSON: %v", err)
	}
	if dec.More() {
		return nil, nil, corrupt("data after the JSON document")
	}
	if doc.Format != stFormat {
		return nil, nil, corrupt("unknown format %d (want %d)", doc.Format, stFormat)
	}
	jobs = make([]StateJob, 0, len(doc.Jobs))
	seen := map[string]bool{}
	for i, sj := range doc.Jobs {
		where := fmt.Sprintf("jobs[%d]", i)
		if err := ValidateSession(sj.Session); err != nil {
			refused = append(refused, fmt.Sprintf("%s: %v", where, err))
			continue
		}
		if sj.Origin != OriginAPI && sj.Origin != OriginFile {
			return nil, nil, corrupt("%s: unknown origin %q", where, sj.Origin)
		}
		switch sj.State {
		case JobRunning, JobStopped, JobNotStarted, JobFlapping, JobGaveUp, StateUnloaded:
		default:
			return nil, nil, corrupt("%s: unknown state %q", where, sj.State)
		}
		if sj.Target < 0 {
			return nil, nil, corrupt("%s: negative numprocesses", where)
		}
		cfg, err := JobConfigFromMap(sj.Config)
		if err != nil {
			refused = append(refused, fmt.Sprintf("%s (%s.%v): config: %v", where, sj.Session, sj.Config["name"], err))
			continue
		}
		if sj.GracefulNS > 0 {
			cfg.GracefulTimeout = time.Duration(sj.GracefulNS)
		}
		j := StateJob{Session: sj.Session, Config: cfg, Target: sj.Target, State: sj.State,
			Origin: sj.Origin, APIChanged: sj.APIChanged, FileHash: sj.FileHash}
		if seen[j.FullName()] {
			return nil, nil, corrupt("%s: job %s appears twice", where, j.FullName())
		}
		seen[j.FullName()] = true
		jobs = append(jobs, j)
	}
	return jobs, refused, nil
}

// Save replaces the state file with jobs, atomically: the data goes to a
// temporary file in the same directory (mode 0600) which is fsynced and
// renamed over the state file, then the directory is fsynced.
func (sf *StateFile) Save(jobs []StateJob) error {
	doc := stDoc{Format: stFormat, Saved: time.Now().UTC().Format(time.RFC3339Nano), Jobs: make([]stJob, 0, len(jobs))}
	for _, j := range jobs {
		doc.Jobs = append(doc.Jobs, stJob{Session: j.Session, Origin: j.Origin, APIChanged: j.APIChanged,
			Target: j.Target, State: j.State, Config: j.Config.Map(true), GracefulNS: int64(j.Config.GracefulTimeout),
			FileHash: j.FileHash})
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("state: encode: %w", err)
	}
	data = append(data, '\n')
	sf.mu.Lock()
	defer sf.mu.Unlock()
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(sf.dir, "."+StateFileName+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, sf.path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("state: write %s: %w", sf.path, werr)
	}
	if err := stSyncDir(sf.dir); err != nil {
		return fmt.Errorf("state: sync %s: %w", sf.dir, err)
	}
	return nil
}

// Backup copies the state file, as it is on disk, to
// state.json.<suffix>-<time> and returns that path ("" when there is no
// state file). gafferd uses it to keep jobs it could not restore.
func (sf *StateFile) Backup(suffix string) (string, error) {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	data, err := os.ReadFile(sf.path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	dst := sf.path + "." + suffix + "-" + time.Now().UTC().Format("20060102T150405.000000000Z")
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		return "", err
	}
	return dst, nil
}

func stSyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// RestoreJob is a job gafferd loads at start: its config, the target to
// scale it to, and whether to start it.
type RestoreJob struct {
	Session string
	Config  JobConfig
	Target  int
	Start   bool
	Origin  string // OriginAPI or OriginFile
}

// FullName returns "session.job".
func (j RestoreJob) FullName() string { return j.Session + "." + j.Config.Name }

// stWantsRun reports whether a job in state s is meant to run: running,
// and also flapping or given up (stopped by crashes, not by a person).
func stWantsRun(s string) bool {
	return s == JobRunning || s == JobFlapping || s == JobGaveUp
}

// MergeState combines the jobs of the configuration file with the saved
// state into the jobs to load at start, file jobs first (in file order),
// then the jobs loaded through the API (in their saved order). The rule:
//
//   - A job loaded through the API (not in the file) is restored with its
//     saved config, target and started/stopped state.
//   - A file job never changed through the API (or absent from the
//     state) loads as the file says: its config, numprocesses and start.
//   - A file job changed through the API (its config, target or
//     started/stopped state differed from the file's when last saved)
//     loads with the saved config, target and state: the API change wins
//     over the file. A file job unloaded through the API stays unloaded.
//   - Unless the file changed that job since: the state records the hash
//     of the file's version of each file job as last applied (at start or
//     by a reload); when the file's job now hashes differently, the file
//     wins, at start as a reload (SIGHUP) would make it win.
//   - A job of the state that the file no longer defines and that came
//     from the file is not restored, API changes or not: removing a job
//     from the file removes it, as a reload would.
//   - A job loaded through the API whose name the file now also defines
//     is restored from the state (the API change is the later one).
func MergeState(fileJobs []SessionJob, saved []StateJob) []RestoreJob {
	byName := make(map[string]StateJob, len(saved))
	for _, s := range saved {
		byName[s.FullName()] = s
	}
	inFile := make(map[string]bool, len(fileJobs))
	var out []RestoreJob
	for _, fj := range fileJobs {
		full := fj.FullName()
		inFile[full] = true
		s, ok := byName[full]
		edited := ok && s.Origin == OriginFile && s.FileHash != "" && s.FileHash != fileJobHash(fj)
		if ok && (s.Origin == OriginAPI || s.APIChanged) && !edited {
			if s.State == StateUnloaded {
				continue
			}
			out = append(out, RestoreJob{Session: fj.Session, Config: s.Config.Clone(), Target: s.Target,
				Start: stWantsRun(s.State), Origin: OriginFile})
			continue
		}
		out = append(out, RestoreJob{Session: fj.Session, Config: fj.Config.Clone(), Target: fj.Config.NumProcesses,
			Start: fj.Config.Start, Origin: OriginFile})
	}
	for _, s := range saved {
		if inFile[s.FullName()] || s.Origin != OriginAPI || s.State == StateUnloaded {
			continue
		}
		out = append(out, RestoreJob{Session: s.Session, Config: s.Config.Clone(), Target: s.Target,
			Start: stWantsRun(s.State), Origin: OriginAPI})
	}
	return out
}

// StateRecorder keeps the state file up to date: a daemon App that saves
// the manager's jobs after every load, unload, update (scale included),
// start and stop. A burst of changes may be saved in one write, but the
// last change is always written before the recorder goes idle, and Sync
// waits until every change made so far is on disk.
type StateRecorder struct {
	sf       *StateFile
	fileJobs func() []SessionJob
	log      *slog.Logger

	mu      sync.Mutex
	m       *Manager
	running chan struct{} // closed by StartManager: changes may proceed (Middleware)
	sub     *Subscription
	syncs   chan chan error
	quit    chan struct{}
	done    chan struct{}
	started bool
	lastErr error
}

// stEvents are the manager events after which the state is saved.
var stEvents = []string{"load", "unload", "update", "start", "stop"}

// NewStateRecorder returns a recorder writing to sf. fileJobs returns the
// jobs the configuration file defines at the time of the call (nil: none):
// a job it names is recorded with origin "file", and marked APIChanged
// when its runtime config, target or started/stopped state differs from
// the file's; a file job missing from the manager is recorded as
// unloaded. It is called from the recorder's goroutine, after the
// manager's state was read, so that a reload in progress is seen once it
// is complete.
func NewStateRecorder(sf *StateFile, fileJobs func() []SessionJob) *StateRecorder {
	if fileJobs == nil {
		fileJobs = func() []SessionJob { return nil }
	}
	return &StateRecorder{sf: sf, fileJobs: fileJobs, log: sf.log, running: make(chan struct{})}
}

// Start subscribes to d.Manager's events, saves the current state and
// keeps saving until Stop.
func (r *StateRecorder) Start(ctx context.Context, d *Daemon) error {
	if d == nil || d.Manager == nil {
		return errors.New("state recorder: no manager")
	}
	return r.StartManager(d.Manager)
}

// StartManager is Start for a Manager used without a Daemon.
func (r *StateRecorder) StartManager(m *Manager) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return errors.New("state recorder: already started")
	}
	r.started = true
	r.m = m
	r.sub = m.Events().Subscribe(DefaultSubscriptionSize, stEvents...)
	r.syncs = make(chan chan error, 64)
	r.quit = make(chan struct{})
	r.done = make(chan struct{})
	err := r.save()
	go r.run(r.quit)
	close(r.running)
	return err
}

// Restart does nothing: the recorder follows the manager, whatever
// changed it.
func (r *StateRecorder) Restart() error { return nil }

// Stop saves what is pending and stops recording. Changes made after
// Stop are not recorded (the daemon stops its apps before it stops the
// jobs, so that a shutdown is not recorded as every job stopped).
func (r *StateRecorder) Stop() error {
	r.mu.Lock()
	if !r.started || r.quit == nil {
		r.mu.Unlock()
		return nil
	}
	quit, done := r.quit, r.done
	r.quit = nil
	r.mu.Unlock()
	close(quit)
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// Sync waits until every change the manager made before the call is saved,
// and returns the error of that save. gafferd calls it before it answers
// an API request that changes something, so that an answered change
// survives a kill -9.
func (r *StateRecorder) Sync(ctx context.Context) error {
	r.mu.Lock()
	syncs, quit := r.syncs, r.quit
	r.mu.Unlock()
	if quit == nil {
		return errors.New("state recorder: not running")
	}
	reply := make(chan error, 1)
	select {
	case syncs <- reply:
	case <-quit:
		return errors.New("state recorder: stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stSyncTimeout bounds how long an API answer waits for the state file.
const stSyncTimeout = 5 * time.Second

// stStartTimeout bounds how long a change waits for the recorder to start
// (gafferd starting its restored jobs).
const stStartTimeout = 2 * time.Minute

// Middleware wraps an API handler so that a request that may change
// something (any method but GET, HEAD and OPTIONS) is answered only once
// the changes it made are in the state file: an answered change survives
// a kill -9 of gafferd. The wait is bounded (5 s); a failed save is logged
// by the recorder, and the answer goes out anyway. Until the recorder
// starts (gafferd answers reads while its restored jobs start), such a
// request waits for it, at most 2 minutes, then gets 503 unavailable: a
// change made during the restore would not be recorded, or would be
// undone by it. A nil recorder returns h unchanged.
func (r *StateRecorder) Middleware(h http.Handler) http.Handler {
	if r == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			h.ServeHTTP(w, req)
			return
		}
		if err := r.waitRunning(req.Context(), stStartTimeout); err != nil {
			writeError(w, err)
			return
		}
		h.ServeHTTP(w, req)
		// The answer of a small JSON handler is still buffered here: the
		// client sees it after the save.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(req.Context()), stSyncTimeout)
		r.Sync(ctx)
		cancel()
	})
}

// waitRunning waits until StartManager was called, ctx ends or limit
// passes.
func (r *StateRecorder) waitRunning(ctx context.Context, limit time.Duration) error {
	select {
	case <-r.running:
		return nil
	default:
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-r.running:
		return nil
	case <-ctx.Done():
		return Errorf(CodeUnavailable, 503, "gafferd is still starting its jobs: %v", ctx.Err())
	case <-t.C:
		return Errorf(CodeUnavailable, 503, "gafferd is still starting its jobs after %s; try again", limit)
	}
}

func (r *StateRecorder) run(quit chan struct{}) {
	defer close(r.done)
	for {
		var waiting []chan error
		dirty := false
		select {
		case _, ok := <-r.sub.C:
			dirty = true
			if !ok {
				r.resubscribe()
			}
		case reply := <-r.syncs:
			waiting = append(waiting, reply)
		case <-quit:
			// Final save of whatever is pending.
			if r.drain() {
				r.saveLogged()
			}
			r.sub.Unsubscribe()
			return
		}
		// Coalesce: take every event and sync request already queued.
		if r.drain() {
			dirty = true
		}
	more:
		for {
			select {
			case reply := <-r.syncs:
				waiting = append(waiting, reply)
			default:
				break more
			}
		}
		if len(waiting) > 0 && r.drain() {
			dirty = true
		}
		var err error
		if dirty {
			err = r.saveLogged()
		}
		for _, w := range waiting {
			w <- err
		}
	}
}

// drain consumes the queued events; it reports whether there were any.
func (r *StateRecorder) drain() bool {
	got := false
	for {
		select {
		case _, ok := <-r.sub.C:
			got = true
			if !ok {
				r.resubscribe()
			}
		default:
			return got
		}
	}
}

// resubscribe replaces a subscription the bus cut off: the next save
// snapshots the whole state, so nothing is lost but the coalescing.
func (r *StateRecorder) resubscribe() {
	r.log.Warn("state recorder fell behind the event bus; resubscribing")
	r.sub = r.m.Events().Subscribe(DefaultSubscriptionSize, stEvents...)
}

func (r *StateRecorder) saveLogged() error {
	err := r.save()
	if err != nil {
		r.log.Error("cannot save the runtime state", "path", r.sf.path, "err", err)
	}
	r.mu.Lock()
	r.lastErr = err
	r.mu.Unlock()
	return err
}

// save writes the manager's jobs as StateJobs.
func (r *StateRecorder) save() error {
	return r.sf.Save(StateFromSnapshot(r.m.Snapshot(), r.fileJobs()))
}

// StateFromSnapshot turns the manager's jobs into state records, given the
// jobs of the configuration file: file jobs get origin "file" and are
// marked APIChanged when their config, target or started/stopped state
// differ from the file's; file jobs missing from the snapshot are recorded
// as unloaded.
func StateFromSnapshot(snap []JobSnapshot, fileJobs []SessionJob) []StateJob {
	files := make(map[string]SessionJob, len(fileJobs))
	for _, fj := range fileJobs {
		files[fj.FullName()] = fj
	}
	loaded := make(map[string]bool, len(snap))
	out := make([]StateJob, 0, len(snap))
	for _, s := range snap {
		full := s.Session + "." + s.Config.Name
		loaded[full] = true
		sj := StateJob{Session: s.Session, Config: s.Config.Clone(), Target: s.Target, State: s.State, Origin: OriginAPI}
		if fj, ok := files[full]; ok {
			sj.Origin, sj.FileHash = OriginFile, fileJobHash(fj)
			want := fj.Config.Clone()
			normalizeLogConfig(&want)
			sj.APIChanged = !want.Equal(s.Config) || s.Target != fj.Config.NumProcesses ||
				stWantsRun(s.State) != fj.Config.Start
		}
		out = append(out, sj)
	}
	for _, fj := range fileJobs {
		full := fj.FullName()
		if loaded[full] {
			continue
		}
		out = append(out, StateJob{Session: fj.Session, Config: fj.Config.Clone(), Target: fj.Config.NumProcesses,
			State: StateUnloaded, Origin: OriginFile, APIChanged: true, FileHash: fileJobHash(fj)})
	}
	return out
}

// fileJobHash is the hash of a job as the configuration file defines it:
// SHA-256 of its session, its config (JobConfig.Map with secrets, so that
// an env edit counts) and its start setting. It changes exactly when an
// edit of the file changes what the job would load as.
func fileJobHash(fj SessionJob) string {
	data, _ := json.Marshal(map[string]any{"session": fj.Session, "config": fj.Config.Map(true),
		"start": fj.Config.Start, "graceful_timeout_ns": int64(fj.Config.GracefulTimeout)})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
}

var _ App = (*StateRecorder)(nil)
