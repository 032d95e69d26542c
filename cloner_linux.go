package sandbox

import (
	"errors"
	"io/fs"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

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
// when that is not nil, with pidns (when not -1) the PID namespace of the
// thread's children.
type cloneRequest struct {
	netns *os.File
	pidns int
	fn    func() error
	done  chan error
}

// clone runs fn, which clones a sandbox's child, on one of the cloner
// threads, in the network namespace netns when it is not nil (a child in a
// new user namespace is born in its thread's network namespace, as it
// cannot join one made outside it), and with the PID namespace open at
// pidns (-1: none) as the one the thread's children are born in: a
// process cannot move into a PID namespace, only be born in one.
func clone(netns *os.File, pidns int, fn func() error) error {
	cloners.once.Do(func() {
		// Clones run in parallel up to the CPUs the runtime uses: the
		// child's program holds its cloner (vfork) for about 0.6 ms.
		for range max(2, runtime.GOMAXPROCS(0)) {
			go cloner()
		}
	})
	r := cloneRequest{netns: netns, pidns: pidns, fn: fn, done: make(chan error, 1)}
	cloners.reqs <- r
	return <-r.done
}

// cloner serves clone requests on its own locked thread, forever.
func cloner() {
	runtime.LockOSThread() // never unlocked: the thread lives as long as the process
	for r := range cloners.reqs {
		fn := r.fn
		if r.pidns >= 0 {
			fn = func() error { return forChildren(r.pidns, r.fn) }
		}
		if r.netns == nil {
			err := fn()
			r.done <- err
			if errors.Is(err, errStuck) {
				go cloner()
				select {}
			}
			continue
		}
		back, ferr := netsetup.RunInNetns(r.netns, fn)
		r.done <- ferr
		if !back || errors.Is(ferr, errStuck) {
			// Stuck in another namespace: it must still live, for the
			// children it cloned, but may clone no more. Another takes
			// its place.
			go cloner()
			select {}
		}
	}
}

// errStuck: a cloner thread could not return to its own PID namespace
// for children, and must clone no more.
var errStuck = errors.New("the cloner thread could not return to its PID namespace")

// forChildren runs fn with the PID namespace open at pidns as the one the
// calling thread's children are born in (setns(CLONE_NEWPID) changes
// nothing else of the thread), then returns the thread to its own. The
// thread must be locked, and is stuck (errStuck, joined to fn's error)
// if it cannot return. The kernel lets a thread name only its own PID
// namespace or one below it; the Go runtime never clones its threads
// from a locked one (its template thread does), which would fail there.
func forChildren(pidns int, fn func() error) error {
	own, err := unix.Open("/proc/thread-self/ns/pid", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: "/proc/thread-self/ns/pid", Err: err}
	}
	defer unix.Close(own)
	if err := unix.Setns(pidns, unix.CLONE_NEWPID); err != nil {
		return &fs.PathError{Op: "setns", Path: "PID namespace for the sandbox", Err: err}
	}
	err = fn()
	if berr := unix.Setns(own, unix.CLONE_NEWPID); berr != nil {
		return errors.Join(err, errStuck, berr)
	}
	return err
}

// startChild clones the child that runs p, on a cloner thread: in the
// bridge's namespace for a user-namespaced sandbox on a bridge (see
// ARCHITECTURE.md), else in the host's; in the PID namespace open at pidns
// when that is not -1 (an OCI spec's, joined by path), else in a new one.
func (pl *plan) startChild(p *spawn.Program, attr spawn.Attr, bridge *bridgeRun, pidns int) (proc *spawn.Process, err error) {
	var netns *os.File
	if pl.net.bornIn {
		netns = bridge.netns
	}
	err = clone(netns, pidns, func() (err error) {
		proc, err = spawn.Start(p, attr)
		return err
	})
	return proc, err
}
