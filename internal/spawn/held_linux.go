package spawn

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// recordHeld, on the error pipe, says that a held child's init waits for
// its request, and recordRead that it read it (see internal/execstub's
// RequestWaiting and RequestRead).
const (
	recordHeld = 0xfffffffd
	recordRead = 0xfffffffc
)

// ErrNotStarted is Outcome's error when the init ended before it read its
// request: the program never started (the sandbox was killed as it was
// released).
var ErrNotStarted = errors.New("spawn: the held child ended before it read its request")

// Descriptors an ExecOnRequest child's init waits with: the release
// pipe's read end and the request file; the stub is moved to heldStubFD
// (close-on-exec) out of their way.
const (
	heldReleaseFD = 6
	heldRequestFD = 7
	heldStubFD    = 8
)

// ExecOnRequest appends the ops that end a held child's program (see
// StartHeld): it hands the release pipe's read end (releaseFD) and the
// request file (requestFD) to the init as descriptors 6 and 7 (5 is a
// terminal's, see internal/execstub), and
// executes the init (stubFD) with argv ["", ""] and env, which makes it
// report on the error pipe that it waits, then wait for its request (see
// internal/execstub). A held child is thus the init, a fresh image of a
// few hundred bytes: nothing of the host process is left in it while it
// waits, and nothing of it has to be torn down when it is released.
// releaseFD and requestFD must be 10 or above.
func (p *Program) ExecOnRequest(stubFD, releaseFD, requestFD int, env []string) {
	p.held = true
	p.errPipeTo3()
	if stubFD != heldStubFD {
		p.add(op{nr: unix.SYS_DUP3, args: [6]uintptr{uintptr(stubFD), heldStubFD, unix.O_CLOEXEC}}, Step{Op: "dup3", Path: "init"})
	}
	p.add(op{nr: unix.SYS_DUP3, args: [6]uintptr{uintptr(releaseFD), heldReleaseFD, 0}}, Step{Op: "dup3", Path: "release pipe"})
	p.add(op{nr: unix.SYS_DUP3, args: [6]uintptr{uintptr(requestFD), heldRequestFD, 0}}, Step{Op: "dup3", Path: "request file"})
	// The init reports a failed exec of the program as the stub does:
	// the step it names is this one, of the one path a request has.
	chose := make([]byte, 8)
	binary.NativeEndian.PutUint32(chose[0:], recordChose)
	p.add(op{nr: unix.SYS_WRITE, args: [6]uintptr{uintptr(RegErrPipe), p.Bytes(chose), 8}, regIn: 1, want: 8}, Step{Op: "exec", Path: "requested program"})
	p.execs = []int{len(p.ops)}
	av := p.strv([]string{"", ""})
	p.add(op{nr: unix.SYS_EXECVEAT, args: [6]uintptr{heldStubFD, p.str(""), ptrvPtr(av), ptrvPtr(p.strv(env)), unix.AT_EMPTY_PATH}},
		Step{Op: "exec", Path: "requested program"})
}

// Held is a child started by StartHeld, waiting for its request.
type Held struct {
	// Process is the child; its pidfd is the caller's to close.
	Process
	p    *Program
	errR int
}

// StartHeld is Start for a program that ends in ExecOnRequest: it
// returns once the child's init waits for its request. Release it by
// writing the request (execstub.Request) to its request file and a byte
// to its release pipe, and learn with Outcome whether the program could
// be executed; or end it with Abandon.
func StartHeld(p *Program, attr Attr) (*Held, error) {
	if !p.held {
		return nil, fmt.Errorf("spawn: held start of a program that does not end in ExecOnRequest")
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("spawn: pipe: %w", err)
	}
	proc, err := start(p, attr, fds, true)
	if err != nil {
		unix.Close(fds[0])
		return nil, err
	}
	return &Held{Process: *proc, p: p, errR: fds[0]}, nil
}

// Outcome returns once the released child's program has been executed,
// or an *Error naming what failed (its exec, or the init's reading of the
// request), or ErrNotStarted. Called once the program has ended, it does
// not block. It neither reaps the child nor closes its pidfd. Call it
// once.
func (h *Held) Outcome() error {
	defer h.closeErrPipe()
	read, err := awaitExec(h.p, h.errR, false, 0) // a request has one path
	if err == nil && !read {
		return ErrNotStarted
	}
	return err
}

// Abandon kills the child that was never released, reaps it and closes
// its pidfd.
func (h *Held) Abandon() {
	h.closeErrPipe()
	if h.PIDFD < 0 {
		return
	}
	unix.PidfdSendSignal(h.PIDFD, unix.SIGKILL, nil, 0)
	reap(h.PID, nil)
	unix.Close(h.PIDFD)
	h.PIDFD = -1
}

func (h *Held) closeErrPipe() {
	if h.errR >= 0 {
		unix.Close(h.errR)
		h.errR = -1
	}
}
