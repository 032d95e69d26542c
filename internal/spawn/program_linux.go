package spawn

import (
	"encoding/binary"
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

// RegErrPipe holds, from the program's start, the descriptor of the pipe
// the child reports a failure on (close-on-exec). Ops may read it, as
// ExecSearch does; none may store into it.
const RegErrPipe = Reg(NumRegs - 1)

// Records on the error pipe besides a failing op's index: the path an
// ExecSearch chose, and the exec stub's own failure (see internal/execstub).
const (
	recordChose      = 0xfffffffe
	recordExecFailed = 0xffffffff
)

// Op is one system call of a [Program]. Build Ops with the Program's methods.
type op struct {
	nr     uintptr
	args   [6]uintptr
	regIn  uint8 // bit i set: args[i] holds a register number, not a value
	regOut int8  // 1 + the register to store the return value in; 0 for none
	okErr  syscall.Errno
	skip   uint8 // ops to skip when okErr happens
	jump   int32 // on success continue at op jump-1; 0 for the next op
	next   bool  // on ENOENT, ENOTDIR or EACCES go on with the next op
	again  bool  // on EAGAIN run the op again, up to maxAgain times in all
	want   int64 // required return value; -1 for any
	// deny, when set, fails the op with EPERM if the int64 at deny.addr
	// holds one of deny.values once the call succeeded: a check of what a
	// call wrote, such as the file system type fstatfs reports.
	deny *denyCheck
	// put, when set, writes the value of a register into memory the op's
	// call reads, just before the call: a descriptor the child got (in a
	// register) sent in an SCM_RIGHTS message, say.
	put *regPut
}

type denyCheck struct {
	st     *unix.Statfs_t // written by the op's fstatfs; kept alive by the op
	values [2]int64
	allow  bool // fail unless the type is one of values, rather than if it is
}

type regPut struct {
	reg Reg
	at  *int32 // into memory the program keeps alive
}

// Step describes an op for error messages: the operation and the path or
// name it acted on, as in [fs.PathError].
type Step struct {
	Op   string
	Path string
	// InRoot marks a resolution inside the root (OpenInRoot) or the check
	// that a target is not on procfs or sysfs (DenyFS): its ELOOP or
	// EPERM means a path tried to lead out.
	InRoot bool
}

// Program is the list of system calls a child runs between clone and exec.
// It is built by the parent, is not safe for concurrent use, and must not be
// changed while [Start] runs it.
type Program struct {
	ops   []op
	steps []Step
	keep  [][]byte // memory the ops point into
	objs  []any    // structures the ops point into (a msghdr and its iovec)
	ptrs  [][]*byte
	regs  [NumRegs]uintptr
	fail  [2]uint32 // op index and errno, written by a failing child
	execs []int     // the exec op of each path of ExecSearch, by index
	held  bool      // ends in ExecOnRequest

	// Trace, when it holds Len()+1 elements, receives CLOCK_MONOTONIC
	// nanoseconds before the first op and after each op that the child
	// ran (the last op, an exec, leaves its slot zero when it succeeds).
	// The child writes it in the parent's memory, so it is only filled
	// where the child shares it (vfork, on amd64 and arm64). For profiling.
	Trace []int64
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
	}}, Step{Op: "mount " + fstypeOr(fstype, source), Path: target})
}

// MountIfExists is Mount, but a target that does not exist (ENOENT) is
// no error: the op is skipped.
func (p *Program) MountIfExists(source, target, fstype string, flags uintptr, data string) {
	p.add(op{nr: unix.SYS_MOUNT, args: [6]uintptr{
		p.strOrNil(source), p.str(target), p.strOrNil(fstype), flags, p.strOrNil(data),
	}, okErr: syscall.ENOENT}, Step{Op: "mount " + fstypeOr(fstype, source), Path: target})
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

// MknodExistOK appends mknod(2) of a file that may already exist, such as
// an empty regular file to mount a file on.
func (p *Program) MknodExistOK(path string, mode uint32) {
	p.add(op{nr: unix.SYS_MKNODAT, args: [6]uintptr{atFDCWD(), p.str(path), uintptr(mode)}, okErr: syscall.EEXIST},
		Step{Op: "mknod", Path: path})
}

// maxAgain bounds how often a child retries ops that fail with EAGAIN.
const maxAgain = 1000

// OpenInRoot appends openat2(2) of path with flags, resolved as if the
// process's current directory were the root (RESOLVE_IN_ROOT) and never
// through a /proc magic link, and stores the descriptor in r. Run it with
// the current directory at the sandbox's root. openat2 fails with EAGAIN
// when a mount or rename anywhere on the host raced a ".." it resolved
// (it cannot then vouch for the result), which other sandboxes starting
// make common: the op is tried again.
func (p *Program) OpenInRoot(path string, flags int, r Reg) {
	how := make([]byte, unix.SizeofOpenHow)
	binary.NativeEndian.PutUint64(how[0:], uint64(flags))
	binary.NativeEndian.PutUint64(how[16:], unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS)
	p.add(op{nr: unix.SYS_OPENAT2, args: [6]uintptr{atFDCWD(), p.str(path), p.Bytes(how), unix.SizeofOpenHow},
		regOut: int8(r) + 1, again: true}, Step{Op: "open", Path: path, InRoot: true})
}

// OpenAs appends the ops that open path with flags and move the
// descriptor to number fd (close-on-exec), replacing what the child had
// there: a descriptor of the child's own mount namespace, at a number the
// parent chose (and keeps open, so that nothing else takes it).
func (p *Program) OpenAs(path string, flags int, fd int, r Reg) {
	p.add(op{nr: unix.SYS_OPENAT, args: [6]uintptr{atFDCWD(), p.str(path), uintptr(flags | unix.O_CLOEXEC)}, regOut: int8(r) + 1},
		Step{Op: "open", Path: path})
	p.add(op{nr: unix.SYS_DUP3, args: [6]uintptr{uintptr(r), uintptr(fd), unix.O_CLOEXEC}, regIn: 1}, Step{Op: "dup3", Path: path})
	p.Close(r)
}

// MoveMount appends move_mount(2) of the detached mount tree fromFD onto
// the directory or file open in register to; s names the step in errors.
func (p *Program) MoveMount(fromFD int, to Reg, s Step) {
	empty := p.str("")
	p.add(op{nr: unix.SYS_MOVE_MOUNT, args: [6]uintptr{uintptr(fromFD), empty, uintptr(to), empty,
		unix.MOVE_MOUNT_F_EMPTY_PATH | unix.MOVE_MOUNT_T_EMPTY_PATH}, regIn: 1 << 2}, s)
}

// MoveMountTo appends move_mount(2) of the detached mount tree fromFD onto
// the absolute path target.
func (p *Program) MoveMountTo(fromFD int, target string) {
	p.add(op{nr: unix.SYS_MOVE_MOUNT, args: [6]uintptr{uintptr(fromFD), p.str(""), atFDCWD(), p.str(target),
		unix.MOVE_MOUNT_F_EMPTY_PATH}}, Step{Op: "mount", Path: target})
}

// MoveMountReg is MoveMount for a mount held in register from.
func (p *Program) MoveMountReg(from, to Reg, path string) {
	empty := p.str("")
	p.add(op{nr: unix.SYS_MOVE_MOUNT, args: [6]uintptr{uintptr(from), empty, uintptr(to), empty,
		unix.MOVE_MOUNT_F_EMPTY_PATH | unix.MOVE_MOUNT_T_EMPTY_PATH}, regIn: 1<<0 | 1<<2}, Step{Op: "mount", Path: path})
}

// Fsopen appends fsopen(2) of the file system type fstype into r.
func (p *Program) Fsopen(fstype string, r Reg) {
	p.add(op{nr: unix.SYS_FSOPEN, args: [6]uintptr{p.str(fstype), unix.FSOPEN_CLOEXEC}, regOut: int8(r) + 1},
		Step{Op: "fsopen", Path: fstype})
}

// FsconfigString appends fsconfig(FSCONFIG_SET_STRING, key, value) on the
// file system context in r.
func (p *Program) FsconfigString(r Reg, key, value string) {
	p.add(op{nr: unix.SYS_FSCONFIG, args: [6]uintptr{uintptr(r), unix.FSCONFIG_SET_STRING, p.str(key), p.str(value)}, regIn: 1},
		Step{Op: "fsconfig", Path: key + "=" + value})
}

// FsconfigCreate appends fsconfig(FSCONFIG_CMD_CREATE) on the context in r.
func (p *Program) FsconfigCreate(r Reg) {
	p.add(op{nr: unix.SYS_FSCONFIG, args: [6]uintptr{uintptr(r), unix.FSCONFIG_CMD_CREATE}, regIn: 1},
		Step{Op: "fsconfig", Path: "create"})
}

// Fsmount appends fsmount(2) of the context in r with the mount attributes
// attrs, storing the detached mount in out.
func (p *Program) Fsmount(r Reg, attrs uintptr, out Reg) {
	p.add(op{nr: unix.SYS_FSMOUNT, args: [6]uintptr{uintptr(r), unix.FSMOUNT_CLOEXEC, attrs}, regIn: 1, regOut: int8(out) + 1},
		Step{Op: "fsmount", Path: ""})
}

// MkdirAt appends mkdirat(2) of name in the directory open in register
// dir; an existing entry of that name is not an error. display names the
// directory in errors.
func (p *Program) MkdirAt(dir Reg, name string, mode uint32, display string) {
	p.add(op{nr: unix.SYS_MKDIRAT, args: [6]uintptr{uintptr(dir), p.str(name), uintptr(mode)}, regIn: 1, okErr: syscall.EEXIST},
		Step{Op: "mkdir", Path: display})
}

// MkdirOwnedAt is MkdirAt followed, only if it created the directory, by
// fchownat(2) of it to uid and gid, never through a symbolic link.
func (p *Program) MkdirOwnedAt(dir Reg, name string, mode uint32, uid, gid int, display string) {
	p.add(op{nr: unix.SYS_MKDIRAT, args: [6]uintptr{uintptr(dir), p.str(name), uintptr(mode)}, regIn: 1, okErr: syscall.EEXIST, skip: 1},
		Step{Op: "mkdir", Path: display})
	p.add(op{nr: unix.SYS_FCHOWNAT, args: [6]uintptr{uintptr(dir), p.str(name), uintptr(uid), uintptr(gid), unix.AT_SYMLINK_NOFOLLOW}, regIn: 1},
		Step{Op: "chown", Path: display})
}

// MknodAt appends mknodat(2) of name in the directory open in register
// dir, for a file that may already exist (such as an empty regular file to
// mount a file on).
func (p *Program) MknodAt(dir Reg, name string, mode uint32, display string) {
	p.add(op{nr: unix.SYS_MKNODAT, args: [6]uintptr{uintptr(dir), p.str(name), uintptr(mode)}, regIn: 1, okErr: syscall.EEXIST},
		Step{Op: "mknod", Path: display})
}

// Fchdir appends fchdir(2) to the directory open in register r.
func (p *Program) Fchdir(r Reg, display string) {
	p.add(op{nr: unix.SYS_FCHDIR, args: [6]uintptr{uintptr(r)}, regIn: 1}, Step{Op: "chdir", Path: display})
}

// DenyFS appends fstatfs(2) of the descriptor in r and fails with EPERM
// when its file system is of one of the types (magic numbers) given, one
// or two: a check that a path resolved inside the root did not lead onto
// procfs or sysfs. display names the path in errors.
func (p *Program) DenyFS(r Reg, display string, types ...int64) {
	d := &denyCheck{st: new(unix.Statfs_t)}
	copy(d.values[:], types)
	if len(types) == 1 {
		d.values[1] = types[0]
	}
	p.add(op{nr: unix.SYS_FSTATFS, args: [6]uintptr{uintptr(r), statfsPtr(d.st)}, regIn: 1, deny: d},
		Step{Op: "check file system of", Path: display, InRoot: true})
}

// RequireFS appends fstatfs(2) of the descriptor in r and fails with
// EPERM unless its file system is of the type (magic number) given: a
// check that what a path led to is the file system the child mounted
// there, such as a devpts. display names the path in errors.
func (p *Program) RequireFS(r Reg, display string, fsType int64) {
	d := &denyCheck{st: new(unix.Statfs_t), values: [2]int64{fsType, fsType}, allow: true}
	p.add(op{nr: unix.SYS_FSTATFS, args: [6]uintptr{uintptr(r), statfsPtr(d.st)}, regIn: 1, deny: d},
		Step{Op: "check file system of", Path: display, InRoot: true})
}

// IoctlReg appends ioctl(2) of request on the descriptor in r, with arg
// (a value, or the address of memory kept with Bytes), storing the
// result in out when out is not nil: TIOCGPTPEER returns a descriptor.
func (p *Program) IoctlReg(s Step, r Reg, request, arg uintptr, out *Reg) {
	o := op{nr: unix.SYS_IOCTL, args: [6]uintptr{uintptr(r), request, arg}, regIn: 1}
	if out != nil {
		o.regOut = int8(*out) + 1
	}
	p.add(o, s)
}

// SendFD appends sendmsg(2) on the connected AF_UNIX socket sock of one
// SCM_RIGHTS message that carries the descriptor held in register r and,
// as its data, name (not empty): what runc's --console-socket sends. A
// peer that has gone fails the op (EPIPE), never with SIGPIPE.
func (p *Program) SendFD(s Step, sock int, r Reg, name string) {
	data := []byte(name)
	oob := unix.UnixRights(-1) // the descriptor is written in at run time
	m := &unix.Msghdr{}
	iov := &unix.Iovec{Base: &data[0]}
	iov.SetLen(len(data))
	m.Iov = iov
	m.SetIovlen(1)
	m.Control = &oob[0]
	m.SetControllen(len(oob))
	p.objs = append(p.objs, m, iov)
	p.keep = append(p.keep, data, oob)
	p.add(op{nr: unix.SYS_SENDMSG, args: [6]uintptr{uintptr(sock), msghdrPtr(m), unix.MSG_NOSIGNAL}, want: int64(len(data)),
		put: &regPut{reg: r, at: int32At(oob, unix.CmsgLen(0))}}, s)
}

// CloseFD appends close(2) of the descriptor number fd, one the child got
// from the parent and needs no longer.
func (p *Program) CloseFD(fd int) {
	p.add(op{nr: unix.SYS_CLOSE, args: [6]uintptr{uintptr(fd)}}, Step{Op: "close", Path: fmt.Sprint("fd ", fd)})
}

// Close appends close(2) of the descriptor in r.
func (p *Program) Close(r Reg) {
	p.add(op{nr: unix.SYS_CLOSE, args: [6]uintptr{uintptr(r)}, regIn: 1}, Step{Op: "close", Path: ""})
}

// WriteFileAt appends the ops that create (or truncate) name in the
// directory open in register dir, without following a symbolic link,
// write data, and set its owner and mode. display names the file in
// errors; r holds the file's descriptor.
func (p *Program) WriteFileAt(dir Reg, name, display string, data []byte, mode uint32, uid, gid int, r Reg) {
	p.add(op{nr: unix.SYS_OPENAT, args: [6]uintptr{uintptr(dir), p.str(name),
		unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC | unix.O_NOFOLLOW | unix.O_CLOEXEC, uintptr(mode)},
		regIn: 1, regOut: int8(r) + 1}, Step{Op: "open", Path: display})
	if len(data) > 0 {
		b := append([]byte(nil), data...)
		p.keep = append(p.keep, b)
		p.add(op{nr: unix.SYS_WRITE, args: [6]uintptr{uintptr(r), bytesPtr(b), uintptr(len(b))}, regIn: 1, want: int64(len(b))},
			Step{Op: "write", Path: display})
	}
	p.add(op{nr: unix.SYS_FCHOWN, args: [6]uintptr{uintptr(r), uintptr(uid), uintptr(gid)}, regIn: 1}, Step{Op: "chown", Path: display})
	p.add(op{nr: unix.SYS_FCHMOD, args: [6]uintptr{uintptr(r), uintptr(mode)}, regIn: 1}, Step{Op: "chmod", Path: display})
	p.Close(r)
}

// Mkdir appends mkdir(2); an existing directory is not an error when
// existOK is set.
func (p *Program) Mkdir(path string, mode uint32, existOK bool) {
	o := op{nr: unix.SYS_MKDIRAT, args: [6]uintptr{atFDCWD(), p.str(path), uintptr(mode)}}
	if existOK {
		o.okErr = syscall.EEXIST
	}
	p.add(o, Step{Op: "mkdir", Path: path})
}

// MkdirOwned appends mkdir(2) and, only if it created the directory,
// chown(2) to uid and gid. An existing directory is left as it is.
func (p *Program) MkdirOwned(path string, mode uint32, uid, gid int) {
	p.add(op{nr: unix.SYS_MKDIRAT, args: [6]uintptr{atFDCWD(), p.str(path), uintptr(mode)}, okErr: syscall.EEXIST, skip: 1},
		Step{Op: "mkdir", Path: path})
	p.add(op{nr: unix.SYS_FCHOWNAT, args: [6]uintptr{atFDCWD(), p.str(path), uintptr(uid), uintptr(gid), unix.AT_SYMLINK_NOFOLLOW}},
		Step{Op: "chown", Path: path})
}

// Mknod appends mknod(2) for a device or other special file.
func (p *Program) Mknod(path string, mode uint32, dev uint64) {
	p.add(op{nr: unix.SYS_MKNODAT, args: [6]uintptr{atFDCWD(), p.str(path), uintptr(mode), uintptr(dev)}},
		Step{Op: "mknod", Path: path})
}

// Symlink appends symlink(2): a link at path that points to target.
func (p *Program) Symlink(target, path string) {
	p.add(op{nr: unix.SYS_SYMLINKAT, args: [6]uintptr{p.str(target), atFDCWD(), p.str(path)}},
		Step{Op: "symlink", Path: path})
}

// Chdir appends chdir(2).
func (p *Program) Chdir(path string) {
	p.add(op{nr: unix.SYS_CHDIR, args: [6]uintptr{p.str(path)}}, Step{Op: "chdir", Path: path})
}

// PivotRoot appends pivot_root(new, old).
func (p *Program) PivotRoot(newRoot, putOld string) {
	p.add(op{nr: unix.SYS_PIVOT_ROOT, args: [6]uintptr{p.str(newRoot), p.str(putOld)}},
		Step{Op: "pivot_root", Path: newRoot})
}

// Unmount appends umount2(2).
func (p *Program) Unmount(path string, flags uintptr) {
	p.add(op{nr: unix.SYS_UMOUNT2, args: [6]uintptr{p.str(path), flags}}, Step{Op: "umount", Path: path})
}

// Sethostname appends sethostname(2).
func (p *Program) Sethostname(name string) {
	b := []byte(name)
	p.keep = append(p.keep, b)
	p.add(op{nr: unix.SYS_SETHOSTNAME, args: [6]uintptr{bytesPtr(b), uintptr(len(b))}},
		Step{Op: "sethostname", Path: name})
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
		regOut: int8(r) + 1}, Step{Op: "open", Path: path})
	b := append([]byte(nil), data...)
	p.keep = append(p.keep, b)
	p.add(op{nr: unix.SYS_WRITE, args: [6]uintptr{uintptr(r), bytesPtr(b), uintptr(len(b))}, regIn: 1, want: int64(len(b))},
		Step{Op: "write", Path: path})
	p.Close(r)
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
			Step{Op: "fcntl", Path: fmt.Sprint("fd ", oldfd)})
		return
	}
	p.add(op{nr: unix.SYS_DUP3, args: [6]uintptr{uintptr(oldfd), uintptr(newfd), 0}},
		Step{Op: "dup3", Path: fmt.Sprint("fd ", oldfd, " to ", newfd)})
}

// Exec appends execve(path, argv, env). With tryNext, a missing or
// unexecutable path moves on to the next op instead of failing, as a PATH
// search does; the last candidate must not set it.
func (p *Program) Exec(path string, argv, env []string, tryNext bool) {
	av := p.strv(argv)
	ev := p.strv(env)
	p.add(op{nr: unix.SYS_EXECVE, args: [6]uintptr{p.str(path), ptrvPtr(av), ptrvPtr(ev)}, next: tryNext},
		Step{Op: "exec", Path: path})
}

// ExecSearch appends the ops that execute the first of paths that is
// executable (a PATH search), with argv and env. When stubFD is a
// descriptor of an execstub, the child executes the stub, which then
// executes the path, so that the host program is never the child's
// /proc/self/exe while the payload is executed; with stubFD < 0 the
// child executes the path itself. If no path is executable, the step
// reported is the last path's check.
func (p *Program) ExecSearch(paths, argv, env []string, stubFD int) {
	if stubFD < 0 {
		for i, path := range paths {
			p.Exec(path, argv, env, i < len(paths)-1)
		}
		return
	}
	// The stub reports a failed exec of the payload on descriptor 3,
	// which it makes close-on-exec first (see internal/execstub).
	p.errPipeTo3()
	// checks[i] jumps to the record of paths[i]'s choice when it is
	// executable; the exec of the stub follows it.
	first := len(p.ops)
	for i, path := range paths {
		p.add(op{nr: unix.SYS_FACCESSAT, args: [6]uintptr{atFDCWD(), p.str(path), unix.X_OK},
			next: i < len(paths)-1, jump: int32(first+len(paths)+2*i) + 1}, Step{Op: "exec", Path: path})
	}
	empty := p.str("")
	ev := p.strv(env)
	p.execs = make([]int, len(paths))
	for i, path := range paths {
		rec := make([]byte, 8)
		binary.NativeEndian.PutUint32(rec[0:], recordChose)
		binary.NativeEndian.PutUint32(rec[4:], uint32(i))
		p.add(op{nr: unix.SYS_WRITE, args: [6]uintptr{uintptr(RegErrPipe), p.Bytes(rec), 8}, regIn: 1, want: 8}, Step{Op: "exec", Path: path})
		av := p.strv(append([]string{path}, argv...))
		p.execs[i] = len(p.ops)
		p.add(op{nr: unix.SYS_EXECVEAT, args: [6]uintptr{uintptr(stubFD), empty, ptrvPtr(av), ptrvPtr(ev), unix.AT_EMPTY_PATH}},
			Step{Op: "exec", Path: path})
	}
}

// errPipeTo3 appends the dup3 that hands the exec stub or init the error
// pipe as descriptor 3, where it reports a failed execve of the payload
// (see internal/execstub).
func (p *Program) errPipeTo3() {
	p.add(op{nr: unix.SYS_DUP3, args: [6]uintptr{uintptr(RegErrPipe), 3, 0}, regIn: 1}, Step{Op: "dup3", Path: "error pipe to fd 3"})
}

// ExecIdle appends the ops that execute the init stub at stubFD with no
// program (an empty argv[0], see internal/execstub), with env: a sandbox
// that idles until it is killed.
func (p *Program) ExecIdle(stubFD int, env []string) {
	p.errPipeTo3()
	av := p.strv([]string{""})
	p.add(op{nr: unix.SYS_EXECVEAT, args: [6]uintptr{uintptr(stubFD), p.str(""), ptrvPtr(av), ptrvPtr(p.strv(env)), unix.AT_EMPTY_PATH}},
		Step{Op: "exec", Path: "init"})
}

// Socket appends socket(2) and stores the descriptor in r.
func (p *Program) Socket(domain, typ, proto int, r Reg) {
	p.add(op{nr: unix.SYS_SOCKET, args: [6]uintptr{uintptr(domain), uintptr(typ | unix.SOCK_CLOEXEC), uintptr(proto)}, regOut: int8(r) + 1},
		Step{Op: "socket", Path: ""})
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
	// Exec reports that the exec of the path an ExecSearch chose failed
	// in the exec stub: the path was there and executable, and the kernel
	// refused it (ENOEXEC, EACCES, ENOENT for a missing interpreter).
	Exec bool
}

// Error reads like an fs.PathError: the step, its path and the errno.
func (e *Error) Error() string {
	return (&fs.PathError{Op: e.Step.Op, Path: e.Step.Path, Err: e.Errno}).Error()
}

// Unwrap returns the errno, so errors.Is(err, fs.ErrNotExist) and the like
// work.
func (e *Error) Unwrap() error { return e.Errno }
