package gaffer

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The ledger is gafferd's record of what it runs, for the gafferd that
// starts next on the same data directory: DataDir/instance.json holds
// this gafferd's instance id (the GAFFER_INSTANCE marker of its
// children), its own pid, and every live process with its OS pid and
// start time (a pid plus its start time names one process for good). It
// is written when gafferd starts, before any job, then after changes
// (coalesced, atomically: temporary file and rename), and once more when
// gafferd stops, with the detached processes it leaves running.
//
// While gafferd runs it holds an exclusive flock on the data directory,
// so a second gafferd on the same directory refuses to start instead of
// taking the first one's processes for leftovers.

// instanceFileName is the ledger's file in the data directory.
const instanceFileName = "instance.json"

// ledgerDelay coalesces the writes of a burst of spawns and exits.
const ledgerDelay = 100 * time.Millisecond

type ledgerDoc struct {
	Format    int           `json:"format"`
	Instance  string        `json:"instance"`
	Pid       int           `json:"pid"`
	StartTime uint64        `json:"start_time"`
	Saved     string        `json:"saved"`
	Processes []ledgerEntry `json:"processes"`
}

// ledgerEntry is one process. Instance and MarkerPid are the markers of
// its environment (an adopted process keeps those of the gafferd that
// spawned it).
type ledgerEntry struct {
	Job        string `json:"job"`
	Pid        int    `json:"pid"`
	OSPid      int    `json:"os_pid"`
	StartTime  uint64 `json:"start_time"`
	Detach     bool   `json:"detach"`
	Instance   string `json:"instance"`
	MarkerPid  string `json:"marker_pid"`
	GracefulNS int64  `json:"graceful_ns"`
}

type ledger struct {
	path string
	dir  *os.File // holds the flock
	m    *Manager
	log  *slog.Logger
	kick chan struct{}
	quit chan struct{}
	done chan struct{}
	once sync.Once
}

// lockDataDir takes the data directory's lock and reads the previous
// gafferd's ledger (nil when there is none or it is unreadable).
func lockDataDir(dataDir string, log *slog.Logger) (*os.File, *ledgerDoc, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dataDir, instanceFileName)
	prev, rerr := readLedger(path)
	if rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		log.Error("cannot read the previous gafferd's process record; its leftovers are found by their markers only",
			"path", path, "err", rerr)
	}
	dir, err := os.Open(dataDir)
	if err != nil {
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	if err := unix.Flock(int(dir.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		dir.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := ""
			if prev != nil {
				who = fmt.Sprintf(" (pid %d)", prev.Pid)
			}
			return nil, nil, fmt.Errorf("data directory %s is in use by another gafferd%s", dataDir, who)
		}
		return nil, nil, fmt.Errorf("data directory %s: lock: %w", dataDir, err)
	}
	return dir, prev, nil
}

func readLedger(path string) (*ledgerDoc, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc ledgerDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Format != 1 {
		return nil, fmt.Errorf("unknown format %d", doc.Format)
	}
	return &doc, nil
}

// startLedger attaches a ledger to m and writes it at once (no process
// yet: the instance id is on disk before the first spawn).
func startLedger(dataDir string, dir *os.File, m *Manager, log *slog.Logger) (*ledger, error) {
	l := &ledger{path: filepath.Join(dataDir, instanceFileName), dir: dir, m: m, log: log,
		kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	if err := l.write(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.ledger = l
	m.mu.Unlock()
	go l.run()
	return l, nil
}

// changed schedules a write (Manager's lock held or not).
func (l *ledger) changed() {
	if l == nil {
		return
	}
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

func (l *ledger) run() {
	defer close(l.done)
	for {
		select {
		case <-l.kick:
		case <-l.quit:
			l.writeLogged()
			return
		}
		select {
		case <-time.After(ledgerDelay):
		case <-l.quit:
		}
		l.writeLogged()
	}
}

func (l *ledger) writeLogged() {
	if err := l.write(); err != nil {
		l.log.Error("cannot write the process record", "path", l.path, "err", err)
	}
}

// close writes the ledger a last time and releases the data directory.
func (l *ledger) close() {
	if l == nil {
		return
	}
	l.once.Do(func() {
		close(l.quit)
		<-l.done
		l.dir.Close()
	})
}

func (l *ledger) write() error {
	doc := ledgerDoc{Format: 1, Instance: l.m.instance, Pid: os.Getpid(), Saved: time.Now().UTC().Format(time.RFC3339Nano),
		Processes: l.m.ledgerEntries()}
	if st, ok := readProcStat(doc.Pid); ok {
		doc.StartTime = st.startTime
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	tmp := l.path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, l.path)
}

// ledgerEntries lists the live processes for the ledger.
func (m *Manager) ledgerEntries() []ledgerEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ledgerEntry, 0, len(m.procs)+len(m.stopping)+len(m.released))
	sets := []map[int]*Process{m.procs, m.stopping, m.released}
	for _, list := range m.adoptable {
		// Offered but their job has not loaded yet: recorded from the
		// first write on, so that a kill -9 now does not lose them.
		set := map[int]*Process{}
		for _, p := range list {
			set[p.OSPid] = p
		}
		sets = append(sets, set)
	}
	for _, set := range sets {
		for _, p := range set {
			if p.exited {
				continue
			}
			out = append(out, ledgerEntry{Job: p.Job, Pid: p.ID, OSPid: p.OSPid, StartTime: p.startTicks,
				Detach: p.detach, Instance: p.markInst, MarkerPid: p.markID, GracefulNS: int64(p.graceful)})
		}
	}
	return out
}

// closeLedger writes the ledger a last time and releases the data
// directory (gafferd stopping, after Shutdown).
func (m *Manager) closeLedger() {
	m.mu.Lock()
	l := m.ledger
	m.mu.Unlock()
	l.close()
}

// useDataDir locks dataDir for this manager, ends what a previous
// gafferd of the same directory left behind, offers its detached
// processes for adoption and starts the ledger: all of it before any job
// loads.
func (m *Manager) useDataDir(dataDir string) error {
	dir, prev, err := lockDataDir(dataDir, m.log)
	if err != nil {
		return err
	}
	m.offerAdoption(endLeftovers(prev, m.log))
	if _, err := startLedger(dataDir, dir, m, m.log); err != nil {
		dir.Close()
		return fmt.Errorf("process record: %w", err)
	}
	return nil
}
