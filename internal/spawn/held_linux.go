package spawn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"golang.org/x/sys/unix"
)

// recordHeld, on the error pipe, says that a child reached the wait of
// ExecOnRequest.
const recordHeld = 0xfffffffd

// Descriptors an ExecOnRequest program holds while it waits: the exec
// stub, the release pipe's read end and the request file, all
// close-on-exec; 0 to 4 are the program's (see ExecSearch), and every
// other descriptor is closed.
const (
	heldStubFD    = 5
	heldReleaseFD = 6
	heldRequestFD = 7
)

// ErrRequestTooLarge is returned by Request for an argv and environment
// that do not fit the capacity given to ExecOnRequest.
var ErrRequestTooLarge = errors.New("spawn: request larger than the held child's buffer")

// ExecOnRequest appends the ops that end a held child's program (see
// StartHeld): it moves the stub (stubFD), the release pipe's read end
// (releaseFD) and the request file (requestFD) to descriptors 5, 6 and 7,
// closes every other descriptor above 4 (a child held for long must hold
// no copy of the parent's other descriptors, such as another run's
// output pipe), reports on the error pipe that it is ready, and blocks
// reading one byte from the release pipe. Released, it reads the request
// (see Request) from the request file into a buffer of capacity bytes of
// its own memory, and executes the stub with the request's path, argv and
// environment, as ExecSearch does with one path. The child must be a copy
// of the parent's memory (StartHeld), never a vfork. releaseFD and
// requestFD must be 10 or above.
func (p *Program) ExecOnRequest(stubFD, releaseFD, requestFD, capacity int) {
	// The error pipe to 3, for the stub, and its register with it: the
	// failures after the close below are reported there.
	p.add(op{nr: unix.SYS_DUP3, args: [6]uintptr{uintptr(RegErrPipe), 3, 0}, regIn: 1, regOut: int8(RegErrPipe) + 1},
		Step{Op: "dup3", Path: "error pipe to fd 3"})
	if stubFD != heldStubFD { // already there, close-on-exec: nothing to do
		p.add(op{nr: unix.SYS_DUP3, args: [6]uintptr{uintptr(stubFD), heldStubFD, unix.O_CLOEXEC}}, Step{Op: "dup3", Path: "exec stub"})
	}
	p.add(op{nr: unix.SYS_DUP3, args: [6]uintptr{uintptr(releaseFD), heldReleaseFD, unix.O_CLOEXEC}}, Step{Op: "dup3", Path: "release pipe"})
	p.add(op{nr: unix.SYS_DUP3, args: [6]uintptr{uintptr(requestFD), heldRequestFD, unix.O_CLOEXEC}}, Step{Op: "dup3", Path: "request file"})
	p.Syscall(Step{Op: "close_range", Path: "fd 8 and above"}, unix.SYS_CLOSE_RANGE, heldRequestFD+1, math.MaxUint32, 0)

	rec := make([]byte, 8)
	binary.NativeEndian.PutUint32(rec[0:], recordHeld)
	p.add(op{nr: unix.SYS_WRITE, args: [6]uintptr{uintptr(RegErrPipe), p.Bytes(rec), 8}, regIn: 1, want: 8}, Step{Op: "report", Path: "held"})
	p.WaitByte(Step{Op: "wait for the request"}, heldReleaseFD)
	// The request's header, the addresses of its argv and environment
	// vectors, goes to registers 0 and 1; the rest to the buffer, where
	// those addresses point.
	p.add(op{nr: unix.SYS_PREAD64, args: [6]uintptr{heldRequestFD, regsPtr(p), 16, 0}, want: 16}, Step{Op: "read", Path: "request header"})
	p.buf = make([]byte, capacity)
	p.add(op{nr: unix.SYS_PREAD64, args: [6]uintptr{heldRequestFD, p.Bytes(p.buf), uintptr(capacity), 16}}, Step{Op: "read", Path: "request"})
	chose := make([]byte, 8)
	binary.NativeEndian.PutUint32(chose[0:], recordChose)
	p.add(op{nr: unix.SYS_WRITE, args: [6]uintptr{uintptr(RegErrPipe), p.Bytes(chose), 8}, regIn: 1, want: 8}, Step{Op: "exec", Path: "requested program"})
	p.execs = []int{len(p.ops)}
	p.add(op{nr: unix.SYS_EXECVEAT, args: [6]uintptr{heldStubFD, p.str(""), 0, 1, unix.AT_EMPTY_PATH}, regIn: 1<<2 | 1<<3},
		Step{Op: "exec", Path: "requested program"})
}

// Request encodes path (what the stub executes), argv and env for the
// child of p, an ExecOnRequest program, to be written at offset 0 of its
// request file before it is released. The addresses it holds are those of
// the child's copy of p's buffer.
func (p *Program) Request(path string, argv, env []string) ([]byte, error) {
	if p.buf == nil {
		return nil, fmt.Errorf("spawn: request for a program that does not wait for one")
	}
	vec := append([]string{path}, argv...)
	ptrs := len(vec) + 1 + len(env) + 1
	size := 8 * ptrs
	for _, s := range vec {
		size += len(s) + 1
	}
	for _, s := range env {
		size += len(s) + 1
	}
	if size > len(p.buf) {
		return nil, ErrRequestTooLarge
	}
	base := uint64(bytesPtr(p.buf))
	out := make([]byte, 16+size)
	body := out[16:]
	binary.NativeEndian.PutUint64(out[0:], base)                        // argv vector
	binary.NativeEndian.PutUint64(out[8:], base+uint64(8*(len(vec)+1))) // env vector
	str := 8 * ptrs
	slot := 0
	put := func(ss []string) {
		for _, s := range ss {
			binary.NativeEndian.PutUint64(body[8*slot:], base+uint64(str))
			slot++
			str += copy(body[str:], s) + 1 // the buffer is zeroed: the NUL is there
		}
		slot++ // NULL
	}
	put(vec)
	put(env)
	return out, nil
}

// Held is a child started by StartHeld, waiting for its request.
type Held struct {
	// Process is the child; its pidfd is the caller's to close once it
	// is no longer needed (Proceed closes it when the child fails).
	Process
	p    *Program
	errR int
}

// StartHeld is Start for a program that ends in ExecOnRequest: the child
// is a copy of the parent's memory (never a vfork), and StartHeld returns
// once it waits for its request. Release it by writing the request to its
// request file and a byte to its release pipe, then call Proceed; or end
// it with Abandon.
func StartHeld(p *Program, attr Attr) (*Held, error) {
	if p.buf == nil {
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

// Proceed returns once the released child has executed its payload, or
// an *Error naming what failed (the child is then reaped and its pidfd
// closed). Call it once.
func (h *Held) Proceed() (*Process, error) {
	defer h.closeErrPipe()
	if err := awaitExec(h.p, &h.Process, h.errR, false); err != nil {
		return nil, err
	}
	return &h.Process, nil
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
