//go:build !linux

package gaffer

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
)

// Without Linux there are no cgroups: processes are contained by their
// process groups and environment markers only, and the limits are
// refused at load.

type cgRoot struct {
	v2      string
	noClone atomic.Bool
}

type cgLeaf struct {
	key    escapeKey
	job    string
	detach bool
	v2     string
}

type cgLimits struct {
	memory int64
	cpu    float64
	pids   int
}

func jobCgLimits(c *JobConfig) cgLimits {
	return cgLimits{memory: c.MemoryMax, cpu: c.CPUMax, pids: c.PidsMax}
}

func (l cgLimits) each(fn func(ctl string, v2 [2]string, v1 [][2]string)) {
	if l.memory > 0 {
		fn("memory", [2]string{}, nil)
	}
	if l.cpu > 0 {
		fn("cpu", [2]string{}, nil)
	}
	if l.pids > 0 {
		fn("pids", [2]string{}, nil)
	}
}

func newCgRoot(instance string, log *slog.Logger) (*cgRoot, string) {
	return nil, "cgroups exist on Linux only"
}

func (r *cgRoot) describe() string { return "process-groups" }

func (r *cgRoot) limitSource(ctl string) (string, error) {
	return "", errors.New("cgroups exist on Linux only")
}

func (r *cgRoot) limitsInfo() map[string]string { return nil }

func (r *cgRoot) newLeaf(inst, id, job string, lim cgLimits, detach bool) (*cgLeaf, error) {
	return nil, errors.New("cgroups exist on Linux only")
}

func (r *cgRoot) leafOf(inst, id string) *cgLeaf { return nil }

func (r *cgRoot) jobLeaves(job string) []*cgLeaf { return nil }

func (r *cgRoot) register(l *cgLeaf) {}

func (r *cgRoot) close() {}

func (l *cgLeaf) openDir() int { return -1 }

func (l *cgLeaf) procs() []int { return nil }

func (l *cgLeaf) kill() {}

func (l *cgLeaf) holds(pid int) bool { return false }

func (l *cgLeaf) remove() bool { return true }

func (l *cgLeaf) cpuSeconds() (float64, bool) { return 0, false }

func (l *cgLeaf) memory() (int64, bool) { return 0, false }

type cgLeftovers struct {
	victims []leftover
	spared  map[escapeKey]*cgLeaf
}

// cgroupLeftovers finds nothing without cgroups.
func cgroupLeftovers(insts map[string]bool, spare func(inst, job, id string) bool) cgLeftovers {
	return cgLeftovers{}
}

func (c cgLeftovers) end(wait time.Duration) {}
