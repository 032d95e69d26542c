//go:build linux

package spawn

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The runtime hooks that the standard library's fork path uses. They are
// kept available to packages outside the standard library on purpose (see
// go.dev/issue/67401).

//go:linkname runtime_BeforeFork syscall.runtime_BeforeFork
func runtime_BeforeFork()

//go:linkname runtime_AfterFork syscall.runtime_AfterFork
func runtime_AfterFork()

//go:linkname runtime_AfterForkInChild syscall.runtime_AfterForkInChild
func runtime_AfterForkInChild()

func bytesPtr(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }

func statfsPtr(st *unix.Statfs_t) uintptr { return uintptr(unsafe.Pointer(st)) }

func ptrvPtr(v []*byte) uintptr { return uintptr(unsafe.Pointer(&v[0])) }

func msghdrPtr(m *unix.Msghdr) uintptr { return uintptr(unsafe.Pointer(m)) }

// int32At returns the address of the 32-bit word at offset off of b.
func int32At(b []byte, off int) *int32 { return (*int32)(unsafe.Pointer(&b[off])) }

func atFDCWD() uintptr {
	fd := unix.AT_FDCWD
	return uintptr(fd)
}

// cloneArgs is struct clone_args of clone3(2), version 2 (with cgroup).
type cloneArgs struct {
	flags      uint64
	pidfd      uint64
	childTID   uint64
	parentTID  uint64
	exitSignal uint64
	stack      uint64
	stackSize  uint64
	tls        uint64
	setTID     uint64
	setTIDSize uint64
	cgroup     uint64
}

// Attr says how to create the child.
type Attr struct {
	// Cloneflags are the CLONE_NEW* flags for the child's namespaces.
	Cloneflags uintptr
	// CgroupFD, when not negative, is an open cgroup v2 directory the
	// child is born in (CLONE_INTO_CGROUP).
	CgroupFD int
	// AfterClone, when set, is called with the child's PID right after the
	// clone, before Start waits for the exec. The child then gets a copy of
	// the parent's memory instead of sharing it (no vfork), so that the
	// parent runs while the child waits: the program must begin with a
	// WaitByte on a pipe that AfterClone, or Start after it, writes to.
	// A user namespace needs this: its ID maps are written from outside.
	AfterClone func(pid int) error
	// Release, with AfterClone, is written one byte after AfterClone
	// returned nil, to let the child go on.
	Release int
}

// Process is a started child.
type Process struct {
	// PID is the child's process ID in the caller's PID namespace.
	PID int
	// PIDFD refers to the child and stays valid after it exits, until
	// closed; signal through it so that a recycled PID is never hit.
	PIDFD int
}

// Start clones a child with attr, runs p in it and returns once the child
// has executed its payload. If an op of p fails, the child exits, is reaped,
// and Start returns an *Error naming the op.
func Start(p *Program, attr Attr) (*Process, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("spawn: pipe: %w", err)
	}
	defer unix.Close(fds[0])
	return start(p, attr, fds, false)
}

// start is Start with the error pipe fds made; with held it returns once
// the child's init waits for its request (see StartHeld).
func start(p *Program, attr Attr, fds [2]int, held bool) (*Process, error) {
	if len(p.ops) == 0 {
		unix.Close(fds[1])
		return nil, fmt.Errorf("spawn: empty program")
	}
	errR, errW := fds[0], fds[1]
	// The child moves its end to descriptor 3 for the exec stub (see
	// ExecSearch), after the program set up 0 to 4: keep it above them.
	if errW < 10 {
		high, err := unix.FcntlInt(uintptr(errW), unix.F_DUPFD_CLOEXEC, 10)
		unix.Close(errW)
		if err != nil {
			return nil, fmt.Errorf("spawn: pipe: %w", err)
		}
		errW = high
	}

	// clone3 writes the pidfd to args.pidfd, an address it holds as an
	// integer, which the stack copier does not update: forkAndRun takes
	// it only once the stack can no longer move (see there).
	var pidfd int32 = -1
	args := &cloneArgs{
		flags:      uint64(attr.Cloneflags) | unix.CLONE_PIDFD,
		exitSignal: uint64(syscall.SIGCHLD),
	}
	if attr.AfterClone == nil {
		args.flags |= vforkFlags
	}
	if attr.CgroupFD >= 0 {
		args.flags |= unix.CLONE_INTO_CGROUP
		args.cgroup = uint64(attr.CgroupFD)
	}

	syscall.ForkLock.Lock()
	pid, errno := forkAndRun(p, args, &pidfd, uintptr(errW))
	if errno == 0 {
		runtime_AfterFork()
	}
	syscall.ForkLock.Unlock()
	unix.Close(errW)
	if errno != 0 {
		return nil, fmt.Errorf("spawn: clone3: %w", errno)
	}

	if attr.AfterClone != nil {
		err := attr.AfterClone(int(pid))
		if err == nil {
			_, err = unix.Write(attr.Release, []byte{0})
		}
		if err != nil {
			unix.PidfdSendSignal(int(pidfd), unix.SIGKILL, nil, 0)
			reap(int(pid), nil)
			unix.Close(int(pidfd))
			return nil, err
		}
	}
	proc := &Process{PID: int(pid), PIDFD: int(pidfd)}
	if _, err := awaitExec(p, errR, held, -1); err != nil {
		// The child failed before it executed its payload; it has
		// exited or is about to.
		reap(proc.PID, nil)
		unix.Close(proc.PIDFD)
		return nil, err
	}
	return proc, nil
}

// awaitExec reads the child's error pipe errR until the child has
// executed its payload (the pipe's end) or, with held, until it waits
// for its request (see ExecOnRequest). When the child failed instead, the
// error names the op. chosen is the path an ExecSearch chose, if the
// child said so before, or -1. read reports that a held child's init
// said it read its request.
func awaitExec(p *Program, errR int, held bool, chosen int) (read bool, err error) {
	for {
		var buf [8]byte
		n, err := readFull(errR, buf[:])
		if err == nil && n == 0 && !held {
			return read, nil
		}
		idx := binary.NativeEndian.Uint32(buf[0:4])
		e := syscall.Errno(binary.NativeEndian.Uint32(buf[4:8]))
		if err == nil && n == len(buf) && idx == recordChose {
			chosen = int(e)
			continue
		}
		if err == nil && n == len(buf) && idx == recordRead {
			read = true
			continue
		}
		if err == nil && n == len(buf) && idx == recordHeld && held {
			return read, nil
		}
		switch {
		case err != nil || n != len(buf):
			return read, fmt.Errorf("spawn: read child status: got %d bytes: %w", n, err)
		case idx == recordExecFailed && chosen >= 0 && chosen < len(p.execs):
			i := p.execs[chosen]
			return read, &Error{Step: p.steps[i], Index: i, Errno: e, Exec: true}
		case int(idx) >= len(p.ops):
			return read, fmt.Errorf("spawn: child reported op %d: %w", idx, e)
		}
		return read, &Error{Step: p.steps[idx], Index: int(idx), Errno: e}
	}
}

// reap waits for pid to exit and returns how it ended; ru, when not nil,
// receives what it and its waited-for descendants used.
func reap(pid int, ru *unix.Rusage) unix.WaitStatus {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, ru)
		if err != unix.EINTR {
			return ws
		}
	}
}

// Wait waits for the process to exit, reaps it and returns how it ended.
// Its PIDFD stays open for the caller to close. The calling thread blocks
// in wait4 meanwhile; WaitPolled does not.
func (p *Process) Wait() unix.WaitStatus { return reap(p.PID, nil) }

// WaitPolled is Wait without holding an OS thread while the process runs:
// the runtime's poller watches a duplicate of its pidfd, which becomes
// readable when the process exits, and only then is it reaped. Many
// sandboxes can wait at once at the cost of goroutines alone. Where the
// pidfd cannot be polled (it can since Linux 5.3), it waits as Wait does.
// ru, when not nil, receives what the process and its waited-for
// descendants used.
func (p *Process) WaitPolled(ru *unix.Rusage) unix.WaitStatus {
	ws, err := p.waitPolled(ru)
	if err != nil {
		return reap(p.PID, ru)
	}
	return ws
}

func (p *Process) waitPolled(ru *unix.Rusage) (unix.WaitStatus, error) {
	fd, err := unix.FcntlInt(uintptr(p.PIDFD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("spawn: dup pidfd: %w", err)
	}
	// O_NONBLOCK, which the duplicate shares with PIDFD, lets os.NewFile
	// give the descriptor to the poller; it changes nothing else of a
	// pidfd that is only polled and signalled.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return 0, fmt.Errorf("spawn: pidfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("spawn: pidfd: %w", err)
	}
	var ws unix.WaitStatus
	var werr error
	err = rc.Read(func(uintptr) bool {
		pid, err := unix.Wait4(p.PID, &ws, unix.WNOHANG, ru)
		switch {
		case err == unix.EINTR:
			return false
		case err != nil:
			werr = err
			return true
		}
		return pid == p.PID // 0: still running; wait for the pidfd
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return 0, fmt.Errorf("spawn: wait for pid %d: %w", p.PID, err)
	}
	return ws, nil
}

func readFull(fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Read(fd, b[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// forkAndRun clones the child and, in the child, runs the program.
//
// In the child this function shares the parent's memory and stack
// (CLONE_VM|CLONE_VFORK), so it must not allocate, grow the stack, take a
// lock or return: it only makes raw system calls, on values prepared by the
// parent, and ends in execve or exit_group. The parent is suspended until
// then and returns at once, reading nothing of the frame but its results.
//
//go:nosplit
//go:norace
func forkAndRun(p *Program, args *cloneArgs, pidfd *int32, errfd uintptr) (pid uintptr, errno syscall.Errno) {
	var (
		i       int
		j       int
		o       *op
		a       [6]uintptr
		r1      uintptr
		e       syscall.Errno
		fail    uintptr
		tracing bool
		ts      syscall.Timespec
		again   int
	)
	runtime_BeforeFork()
	// From here to the clone nothing can grow the stack (this function
	// and the runtime's hooks are nosplit), so the address of *pidfd, on
	// the caller's stack perhaps, stays the one the kernel writes.
	args.pidfd = uint64(uintptr(unsafe.Pointer(pidfd)))
	pid, errno = rawVfork(unix.SYS_CLONE3, uintptr(unsafe.Pointer(args)), unsafe.Sizeof(*args), 0)
	if errno != 0 || pid != 0 {
		if errno != 0 {
			runtime_AfterFork()
		}
		return
	}

	// Child.
	runtime_AfterForkInChild()
	p.regs[RegErrPipe] = errfd
	tracing = len(p.Trace) == len(p.ops)+1
	if tracing {
		syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
		p.Trace[0] = int64(ts.Sec)*1e9 + int64(ts.Nsec)
	}
	for i = 0; i < len(p.ops); i++ {
		o = &p.ops[i]
		a = o.args
		for j = 0; j < 6; j++ {
			if o.regIn&(1<<j) != 0 {
				a[j] = p.regs[a[j]&(NumRegs-1)]
			}
		}
		if o.put != nil {
			*o.put.at = int32(p.regs[o.put.reg&(NumRegs-1)])
		}
		r1, _, e = syscall.RawSyscall6(o.nr, a[0], a[1], a[2], a[3], a[4], a[5])
		if e != 0 {
			if e == o.okErr {
				i += int(o.skip)
				continue
			}
			if o.next && (e == syscall.ENOENT || e == syscall.ENOTDIR || e == syscall.EACCES) {
				continue
			}
			if o.again && e == syscall.EAGAIN && again < maxAgain {
				again++
				i-- // the loop adds one
				continue
			}
			goto failed
		}
		if o.want >= 0 && int64(r1) != o.want {
			e = syscall.EPIPE
			goto failed
		}
		if o.deny != nil && (o.deny.st.Type == o.deny.values[0] || o.deny.st.Type == o.deny.values[1]) != o.deny.allow {
			e = syscall.EPERM
			goto failed
		}
		if o.regOut > 0 {
			p.regs[(o.regOut-1)&(NumRegs-1)] = r1
		}
		if tracing {
			syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
			p.Trace[i+1] = int64(ts.Sec)*1e9 + int64(ts.Nsec)
		}
		if o.jump > 0 {
			i = int(o.jump) - 2 // the loop adds one
		}
	}
	// The program ended without exec.
	i = len(p.ops) - 1
	e = syscall.ENOEXEC

failed:
	p.fail[0] = uint32(i)
	p.fail[1] = uint32(e)
	fail = uintptr(unsafe.Pointer(&p.fail[0]))
	syscall.RawSyscall(syscall.SYS_WRITE, errfd, fail, 8)
	for {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 127, 0, 0)
	}
}
