package gaffer

import (
	"fmt"
	"os"
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
	once   sync.Once
	reqs   chan func()
	onMain bool // the loop runs on the process's main thread (RunWithSpawner)
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

// RunWithSpawner runs main in a goroutine while the calling goroutine
// serves the spawner, then exits with main's status. gafferd calls it
// from its main function, with runtime.LockOSThread in an init function
// (so that main runs on the main thread): the spawner thread is then the
// main thread, which is what a second upgrade in place needs (the thread
// that execs becomes the main thread, and it must be the parent of every
// child, those spawned before the first upgrade included).
func RunWithSpawner(main func() int) {
	s := theSpawner
	started := false
	s.once.Do(func() { started = true })
	if !started {
		panic("gaffer.RunWithSpawner: the spawner already runs")
	}
	s.onMain = onMainThread()
	go func() { os.Exit(main()) }()
	s.loop()
}
