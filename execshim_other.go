//go:build !linux

package gaffer

import (
	"os"
)

// Outside Linux there is no exec shim: a job that sets a resource limit,
// nice, umask, oom_score_adj or sockets is refused at load.

const (
	shimSupported = false
	shimEnv       = "GAFFER_EXEC_SHIM"
)

type shimSpec struct{}

// shimSettings reports whether the job sets what needs the shim.
func shimSettings(cfg *JobConfig, s *shimSpec) bool {
	return cfg.LimitNofile != "" || cfg.LimitNproc != "" || cfg.LimitCore != "" || cfg.LimitMemlock != "" ||
		cfg.LimitAS != "" || cfg.Nice != nil || cfg.Umask != "" || cfg.OOMScoreAdj != nil
}

func waitShim(r *os.File) error { return nil }

func prepareExec(s *spawnSpec, leaf *cgLeaf, path string, argv, env []string, files []uintptr, uid, gid *int, pidfd *int) (*execPlan, error) {
	x := &execPlan{path: path, argv: argv, env: env, files: files, cgfd: -1}
	x.sys = sysProcAttr(s.cfg.Detach, uid, gid)
	setDeathSignal(x.sys, s.cfg.Detach, pidfd)
	return x, nil
}

func cloneIntoUnsupported(err error) bool { return false }
