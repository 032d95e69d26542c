package sandbox

import (
	"os"
	"runtime"
	"sync"

	"github.com/sandboxkit/sandbox/internal/netsetup"
	"github.com/sandboxkit/sandbox/internal/spawn"
)

// A sandbox's child is set to die with the thread that cloned it
// (PR_SET_PDEATHSIG): a caller that crashes, even by SIGKILL, takes its
// sandboxes along. The threads that clone are therefore the package's own,
// locked to goroutines that never end, so that no sandbox pins a thread of
// the caller for its lifetime: 200 running sandboxes cost no more threads
// than one. This is the one process-wide state of the package: the kernel
// ties the children to these threads, so they must outlive every run.
var cloners = struct {
	once sync.Once
	reqs chan cloneRequest
}{reqs: make(chan cloneRequest)}

// cloneRequest is one clone for a cloner thread: fn runs on it, in netns
// when that is not nil.
type cloneRequest struct {
	netns *os.File
	fn    func() error
	done  chan error
}

// clone runs fn, which clones a sandbox's child, on one of the cloner
// threads, in the network namespace netns when it is not nil (a child in a
// new user namespace is born in its thread's network namespace, as it
// cannot join one made outside it).
func clone(netns *os.File, fn func() error) error {
	cloners.once.Do(func() {
		// Clones run in parallel up to the CPUs the runtime uses: the
		// child's program holds its cloner (vfork) for about 0.6 ms.
		for range max(2, runtime.GOMAXPROCS(0)) {
			go cloner()
		}
	})
	r := cloneRequest{netns: netns, fn: fn, done: make(chan error, 1)}
	cloners.reqs <- r
	return <-r.done
}

// cloner serves clone requests on its own locked thread, forever.
func cloner() {
	runtime.LockOSThread() // never unlocked: the thread lives as long as the process
	for r := range cloners.reqs {
		if r.netns == nil {
			r.done <- r.fn()
			continue
		}
		back, ferr := netsetup.RunInNetns(r.netns, r.fn)
		r.done <- ferr
		if !back {
			// Stuck in another namespace: it must still live, for the
			// children it cloned, but may clone no more. Another takes
			// its place.
			go cloner()
			select {}
		}
	}
}

// startChild clones the child that runs p, on a cloner thread: in the
// bridge's namespace for a user-namespaced sandbox on a bridge (see
// ARCHITECTURE.md), else in the host's.
func (pl *plan) startChild(p *spawn.Program, attr spawn.Attr, bridge *bridgeRun) (proc *spawn.Process, err error) {
	var netns *os.File
	if pl.net.bornIn {
		netns = bridge.netns
	}
	err = clone(netns, func() (err error) {
		proc, err = spawn.Start(p, attr)
		return err
	})
	return proc, err
}
