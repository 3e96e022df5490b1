package gaffer

import (
	"fmt"
	"runtime"
	"sync"
)

// The spawner is the one goroutine that forks every child, locked to an
// OS thread that never exits.
//
// On Linux a child that is not detached gets PR_SET_PDEATHSIG(SIGKILL):
// the kernel kills it when its parent dies, so a kill -9 of gafferd leaves
// no child behind. The "parent" the kernel watches is the *thread* that
// forked, not the process: a child forked from a thread that the Go
// runtime later retires would be killed at that moment. So every fork runs
// here, on a thread the runtime can never retire (runtime.LockOSThread is
// never undone and the goroutine never returns, so the thread lives as
// long as the process).
//
// A process that re-executes itself (an upgrade in place) must do the
// execve on this thread too (through spawner.do): execve ends every other
// thread, and the children of an ended thread get their death signal.
type spawner struct {
	once sync.Once
	reqs chan func()
}

var theSpawner = &spawner{reqs: make(chan func())}

func (s *spawner) loop() {
	runtime.LockOSThread() // never unlocked: see above
	for fn := range s.reqs {
		fn()
	}
}

// do runs fn on the spawner's thread and waits for it. A panic of fn is
// raised again in the caller, never on the spawner's thread.
func (s *spawner) do(fn func()) {
	s.once.Do(func() { go s.loop() })
	var perr any
	done := make(chan struct{})
	s.reqs <- func() {
		defer close(done)
		defer func() { perr = recover() }()
		fn()
	}
	<-done
	if perr != nil {
		panic(fmt.Sprintf("spawner: %v", perr))
	}
}
