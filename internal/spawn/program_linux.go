package spawn

import (
	"fmt"
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// Reg names one of the program's registers: a slot that an [Op] can store
// its system call's return value in (a file descriptor, usually) and a later
// Op can read as an argument.
type Reg uint8

// NumRegs is how many registers a program has.
const NumRegs = 8

// Op is one system call of a [Program]. Build Ops with the Program's methods.
type op struct {
	nr     uintptr
	args   [6]uintptr
	regIn  uint8 // bit i set: args[i] holds a register number, not a value
	regOut int8  // 1 + the register to store the return value in; 0 for none
	okErr  syscall.Errno
	skip   uint8 // ops to skip when okErr happens
	next   bool  // on ENOENT, ENOTDIR or EACCES go on with the next op
	want   int64 // required return value; -1 for any
}

// Step describes an op for error messages: the operation and the path or
// name it acted on, as in [fs.PathError].
type Step struct {
	Op   string
	Path string
}

// Program is the list of system calls a child runs between clone and exec.
// It is built by the parent, is not safe for concurrent use, and must not be
// changed while [Start] runs it.
type Program struct {
	ops   []op
	steps []Step
	keep  [][]byte // memory the ops point into
	ptrs  [][]*byte
	regs  [NumRegs]uintptr
	fail  [2]uint32 // op index and errno, written by a failing child
}

// Len reports how many ops p has.
func (p *Program) Len() int { return len(p.ops) }

// Step reports the description of op i.
func (p *Program) Step(i int) Step { return p.steps[i] }

func (p *Program) add(o op, s Step) *op {
	if o.want == 0 {
		o.want = -1
	}
	p.ops = append(p.ops, o)
	p.steps = append(p.steps, s)
	return &p.ops[len(p.ops)-1]
}

// Syscall appends a raw system call with plain integer arguments. It is the
// escape hatch for calls without a helper.
func (p *Program) Syscall(s Step, nr uintptr, args ...uintptr) {
	o := op{nr: nr}
	copy(o.args[:], args)
	p.add(o, s)
}

// Mount appends mount(2). An empty source, fstype or data passes NULL.
func (p *Program) Mount(source, target, fstype string, flags uintptr, data string) {
	p.add(op{nr: unix.SYS_MOUNT, args: [6]uintptr{
		p.strOrNil(source), p.str(target), p.strOrNil(fstype), flags, p.strOrNil(data),
	}}, Step{"mount " + fstypeOr(fstype, source), target})
}

func fstypeOr(fstype, source string) string {
	if fstype != "" {
		return fstype
	}
	if source != "" {
		return "bind " + source
	}
	return "propagation"
}

// Mkdir appends mkdir(2); an existing directory is not an error when
// existOK is set.
func (p *Program) Mkdir(path string, mode uint32, existOK bool) {
	o := op{nr: unix.SYS_MKDIRAT, args: [6]uintptr{atFDCWD(), p.str(path), uintptr(mode)}}
	if existOK {
		o.okErr = syscall.EEXIST
	}
	p.add(o, Step{"mkdir", path})
}

// MkdirOwned appends mkdir(2) and, only if it created the directory,
// chown(2) to uid and gid. An existing directory is left as it is.
func (p *Program) MkdirOwned(path string, mode uint32, uid, gid int) {
	p.add(op{nr: unix.SYS_MKDIRAT, args: [6]uintptr{atFDCWD(), p.str(path), uintptr(mode)}, okErr: syscall.EEXIST, skip: 1},
		Step{"mkdir", path})
	p.add(op{nr: unix.SYS_FCHOWNAT, args: [6]uintptr{atFDCWD(), p.str(path), uintptr(uid), uintptr(gid), unix.AT_SYMLINK_NOFOLLOW}},
		Step{"chown", path})
}

// Mknod appends mknod(2) for a device or other special file.
func (p *Program) Mknod(path string, mode uint32, dev uint64) {
	p.add(op{nr: unix.SYS_MKNODAT, args: [6]uintptr{atFDCWD(), p.str(path), uintptr(mode), uintptr(dev)}},
		Step{"mknod", path})
}

// Symlink appends symlink(2): a link at path that points to target.
func (p *Program) Symlink(target, path string) {
	p.add(op{nr: unix.SYS_SYMLINKAT, args: [6]uintptr{p.str(target), atFDCWD(), p.str(path)}},
		Step{"symlink", path})
}

// Chdir appends chdir(2).
func (p *Program) Chdir(path string) {
	p.add(op{nr: unix.SYS_CHDIR, args: [6]uintptr{p.str(path)}}, Step{"chdir", path})
}

// PivotRoot appends pivot_root(new, old).
func (p *Program) PivotRoot(newRoot, putOld string) {
	p.add(op{nr: unix.SYS_PIVOT_ROOT, args: [6]uintptr{p.str(newRoot), p.str(putOld)}},
		Step{"pivot_root", newRoot})
}

// Unmount appends umount2(2).
func (p *Program) Unmount(path string, flags uintptr) {
	p.add(op{nr: unix.SYS_UMOUNT2, args: [6]uintptr{p.str(path), flags}}, Step{"umount", path})
}

// Sethostname appends sethostname(2).
func (p *Program) Sethostname(name string) {
	b := []byte(name)
	p.keep = append(p.keep, b)
	p.add(op{nr: unix.SYS_SETHOSTNAME, args: [6]uintptr{bytesPtr(b), uintptr(len(b))}},
		Step{"sethostname", name})
}

// Write appends write(2) of data to fd, which must write all of it.
func (p *Program) Write(s Step, fd int, data []byte) {
	b := append([]byte(nil), data...)
	p.keep = append(p.keep, b)
	p.add(op{nr: unix.SYS_WRITE, args: [6]uintptr{uintptr(fd), bytesPtr(b), uintptr(len(b))}, want: int64(len(b))}, s)
}

// WriteFile appends the ops that create path (truncating it) with mode and
// write data to it, using register r for the file descriptor.
func (p *Program) WriteFile(path string, data []byte, mode uint32, r Reg) {
	p.add(op{nr: unix.SYS_OPENAT, args: [6]uintptr{atFDCWD(), p.str(path),
		unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC | unix.O_CLOEXEC | unix.O_NOFOLLOW, uintptr(mode)},
		regOut: int8(r) + 1}, Step{"open", path})
	b := append([]byte(nil), data...)
	p.keep = append(p.keep, b)
	p.add(op{nr: unix.SYS_WRITE, args: [6]uintptr{uintptr(r), bytesPtr(b), uintptr(len(b))}, regIn: 1, want: int64(len(b))},
		Step{"write", path})
	p.add(op{nr: unix.SYS_CLOSE, args: [6]uintptr{uintptr(r)}, regIn: 1}, Step{"close", path})
}

// WaitByte appends a read of exactly one byte from fd: the child blocks
// there until the parent writes it, and fails if the parent closes fd first.
func (p *Program) WaitByte(s Step, fd int) {
	b := make([]byte, 1)
	p.keep = append(p.keep, b)
	p.add(op{nr: unix.SYS_READ, args: [6]uintptr{uintptr(fd), bytesPtr(b), 1}, want: 1}, s)
}

// Dup3 appends dup3(oldfd, newfd, 0), or, when the two are equal, the fcntl
// that clears close-on-exec so the descriptor survives exec.
func (p *Program) Dup3(oldfd, newfd int) {
	if oldfd == newfd {
		p.add(op{nr: unix.SYS_FCNTL, args: [6]uintptr{uintptr(oldfd), unix.F_SETFD, 0}},
			Step{"fcntl", fmt.Sprint("fd ", oldfd)})
		return
	}
	p.add(op{nr: unix.SYS_DUP3, args: [6]uintptr{uintptr(oldfd), uintptr(newfd), 0}},
		Step{"dup3", fmt.Sprint("fd ", oldfd, " to ", newfd)})
}

// Exec appends execve(path, argv, env). With tryNext, a missing or
// unexecutable path moves on to the next op instead of failing, as a PATH
// search does; the last candidate must not set it.
func (p *Program) Exec(path string, argv, env []string, tryNext bool) {
	av := p.strv(argv)
	ev := p.strv(env)
	p.add(op{nr: unix.SYS_EXECVE, args: [6]uintptr{p.str(path), ptrvPtr(av), ptrvPtr(ev)}, next: tryNext},
		Step{"exec", path})
}

// Socket appends socket(2) and stores the descriptor in r.
func (p *Program) Socket(domain, typ, proto int, r Reg) {
	p.add(op{nr: unix.SYS_SOCKET, args: [6]uintptr{uintptr(domain), uintptr(typ | unix.SOCK_CLOEXEC), uintptr(proto)}, regOut: int8(r) + 1},
		Step{"socket", ""})
}

// SyscallReg appends a system call whose argument argIdx is the value held
// in register r.
func (p *Program) SyscallReg(s Step, nr uintptr, r Reg, argIdx int, args ...uintptr) {
	o := op{nr: nr, regIn: 1 << argIdx}
	copy(o.args[:], args)
	o.args[argIdx] = uintptr(r)
	p.add(o, s)
}

// Bytes keeps b alive for the program's lifetime and returns its address,
// for ops whose arguments point to structures.
func (p *Program) Bytes(b []byte) uintptr {
	p.keep = append(p.keep, b)
	return bytesPtr(b)
}

func (p *Program) str(s string) uintptr {
	b, err := unix.ByteSliceFromString(s)
	if err != nil {
		// A NUL inside a path: callers validate paths, so this is a bug.
		// Pass an empty string, which the kernel rejects with ENOENT.
		b = []byte{0}
	}
	p.keep = append(p.keep, b)
	return bytesPtr(b)
}

func (p *Program) strOrNil(s string) uintptr {
	if s == "" {
		return 0
	}
	return p.str(s)
}

func (p *Program) strv(ss []string) []*byte {
	v := make([]*byte, len(ss)+1)
	for i, s := range ss {
		b, err := unix.ByteSliceFromString(s)
		if err != nil {
			b = []byte{0}
		}
		p.keep = append(p.keep, b)
		v[i] = &b[0]
	}
	p.ptrs = append(p.ptrs, v)
	return v
}

// Error is returned by [Start] when an op of the program failed in the
// child: the step it was and the errno.
type Error struct {
	Step  Step
	Index int
	Errno syscall.Errno
}

func (e *Error) Error() string {
	return (&fs.PathError{Op: e.Step.Op, Path: e.Step.Path, Err: e.Errno}).Error()
}

// Unwrap returns the errno, so errors.Is(err, fs.ErrNotExist) and the like
// work.
func (e *Error) Unwrap() error { return e.Errno }
