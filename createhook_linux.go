package sandbox

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/cleanup"
	"github.com/sandboxkit/sandbox/internal/spawn"
)

// createHookMu runs starts with a create hook one at a time: the clone
// thread that started the child is held until the child executes, and the
// hook's own commands clone on another one.
var createHookMu sync.Mutex

// addCreateHookPause appends, where the root is assembled and not yet
// pivoted into, the ops that tell the parent and wait for it to let the
// child go on: a hook that failed closes the pipe instead, and the child
// fails at this step.
func (pl *plan) addCreateHookPause(p *spawn.Program) {
	if pl.createPause == nil {
		return
	}
	// The child is a copy (see acquire), holding the parent's ends too:
	// without them, a hook that failed is an end of file here.
	p.CloseFD(pl.createPause.pausedR)
	p.CloseFD(pl.createPause.resumeW)
	p.Write(spawn.Step{Op: "write", Path: "ready for the create hook"}, pl.createPause.paused, []byte{0})
	p.WaitByte(spawn.Step{Op: "wait", Path: "the create hook"}, pl.createPause.resume)
	p.CloseFD(pl.createPause.paused)
	p.CloseFD(pl.createPause.resume)
}

// holdForCreateHook makes the plan's pause pipes and starts the goroutine
// that calls the create hook once the child waits; done receives its
// error (nil when the child never got there). The caller closes the
// child's ends (closeChildEnds) once the child started or failed, before
// it reads done; the goroutine closes the parent's ends.
func (r *running) holdForCreateHook(spent *cleanup.Stack) (done <-chan error, err error) {
	pl := r.pl
	var paused, resume [2]int
	if err := unix.Pipe2(paused[:], unix.O_CLOEXEC); err != nil {
		return nil, os.NewSyscallError("pipe2", err)
	}
	if err := unix.Pipe2(resume[:], unix.O_CLOEXEC); err != nil {
		unix.Close(paused[0])
		unix.Close(paused[1])
		return nil, os.NewSyscallError("pipe2", err)
	}
	cp := &createPause{pausedR: paused[0], resumeW: resume[1], paused: -1, resume: -1}
	defer func() {
		if err != nil {
			closeFD(&cp.pausedR)
			closeFD(&cp.resumeW)
		}
	}()
	spent.PushErr(func() error { cp.closeChildEnds(); return nil })
	if cp.paused, err = highFD(paused[1]); err != nil { // highFD closes paused[1]
		unix.Close(resume[0])
		return nil, err
	}
	if cp.resume, err = highFD(resume[0]); err != nil {
		return nil, err
	}
	pl.createPause = cp
	ch := make(chan error, 1)
	procs := r.cg.procsFile()
	go func() {
		defer closeFD(&cp.pausedR)
		defer closeFD(&cp.resumeW) // a hook that failed leaves the child an end of file
		var b [1]byte
		n, _ := readRetry(cp.pausedR, b[:])
		if n != 1 {
			ch <- nil // the child ended before: its own error says why
			return
		}
		herr := callCreateHook(pl.createHook, procs)
		if herr == nil {
			if _, err := unix.Write(cp.resumeW, []byte{0}); err != nil {
				herr = fmt.Errorf("resume the sandbox after its create hook: %w", err)
			}
		}
		ch <- herr
	}()
	return ch, nil
}

// closeChildEnds closes the parent's copies of the child's ends, once the
// child has its own or is gone: a child that ended before it paused then
// leaves the hook's goroutine an end of file.
func (cp *createPause) closeChildEnds() {
	closeFD(&cp.paused)
	closeFD(&cp.resume)
}

// callCreateHook calls fn with the PID of the sandbox's first process:
// the one process of its cgroup (procs, its cgroup.procs) while it waits.
func callCreateHook(fn func(pid int) error, procs string) error {
	b, err := os.ReadFile(procs)
	if err != nil {
		return fmt.Errorf("find the sandbox for its create hook: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		return fmt.Errorf("find the sandbox for its create hook: %s lists %d processes, not one", procs, len(f))
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return fmt.Errorf("find the sandbox for its create hook: %s: %w", procs, err)
	}
	if err := fn(pid); err != nil {
		return fmt.Errorf("create hook: %w", err)
	}
	return nil
}

// readRetry is read(2), again after EINTR.
func readRetry(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Read(fd, b)
		if err != unix.EINTR {
			return n, err
		}
	}
}
