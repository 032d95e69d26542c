package sandbox

import (
	"encoding/binary"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/spawn"
)

// The registers of the console's steps: they run once the mounts are
// done, when no other step holds a register.
const (
	regPTMX  = spawn.Reg(0)
	regSlave = spawn.Reg(1)
)

// consoleName is the data of the message that carries the master.
const consoleName = "/dev/pts/ptmx"

// dialConsole connects to the AF_UNIX socket at path, which the child
// sends the terminal's master to, and returns the socket at a descriptor
// of 10 or above.
func dialConsole(path string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "socket", Path: path, Err: err}
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, &fs.PathError{Op: "connect", Path: path, Err: err}
	}
	if fd, err = highFD(fd); err != nil {
		return -1, &fs.PathError{Op: "connect", Path: path, Err: err}
	}
	return fd, nil
}

// addConsoleNode appends, while /dev is still writable, the empty file
// the terminal is bound onto as /dev/console.
func (pl *plan) addConsoleNode(p *spawn.Program, dev string) {
	if pl.console != nil {
		p.Mknod(dev+"/console", unix.S_IFREG|0o600, 0)
	}
}

// addConsole appends, once the sandbox's mounts are done (with the
// current directory at its root), the steps that give the program a
// terminal of the sandbox's own devpts, as runc does: open /dev/pts/ptmx
// in the root, which must be the ptmx of a devpts (what Exec's openPTY
// checks, in the child's terms: fstatfs says devpts, and TIOCGPTPEER,
// which only a pty master answers, succeeds); unlock it and set its size; take its slave from the master,
// never by a path, owned by the program's user, mode 0620; make it fds 0,
// 1 and 2 and bind it onto /dev/console; without the init, make it the
// controlling terminal of the child's session (the init does that in the
// program's process, see execSetup.ctty); and send the master over the
// socket at sock, then close it.
func (pl *plan) addConsole(p *spawn.Program, sock int) {
	const ptmx = "/dev/pts/ptmx"
	p.OpenInRoot(ptmx, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, regPTMX)
	p.RequireFS(regPTMX, ptmx, unix.DEVPTS_SUPER_MAGIC)
	unlock := make([]byte, 4) // int 0: unlocked
	p.IoctlReg(spawn.Step{Op: "unlock", Path: ptmx}, regPTMX, unix.TIOCSPTLCK, p.Bytes(unlock), nil)
	if sz := pl.console.size; sz.Rows > 0 || sz.Cols > 0 {
		ws := make([]byte, 8) // struct winsize: rows, cols, xpixel, ypixel
		binary.NativeEndian.PutUint16(ws[0:], sz.Rows)
		binary.NativeEndian.PutUint16(ws[2:], sz.Cols)
		p.IoctlReg(spawn.Step{Op: "set window size", Path: ptmx}, regPTMX, unix.TIOCSWINSZ, p.Bytes(ws), nil)
	}
	slave := regSlave
	p.IoctlReg(spawn.Step{Op: "open peer", Path: ptmx}, regPTMX, unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, &slave)
	p.SyscallReg(spawn.Step{Op: "chown", Path: "the terminal"}, unix.SYS_FCHOWN, regSlave, 0, 0, uintptr(pl.uid), uintptr(pl.gid))
	p.SyscallReg(spawn.Step{Op: "chmod", Path: "the terminal"}, unix.SYS_FCHMOD, regSlave, 0, 0, 0o620)
	for i := range 3 {
		p.SyscallReg(spawn.Step{Op: "dup3", Path: "the terminal"}, unix.SYS_DUP3, regSlave, 0, 0, uintptr(i), 0)
	}
	p.Close(regSlave)
	p.Mount("/proc/self/fd/0", "/dev/console", "", unix.MS_BIND, "")
	if !pl.init {
		p.Syscall(spawn.Step{Op: "ioctl TIOCSCTTY", Path: "the terminal"}, unix.SYS_IOCTL, 0, unix.TIOCSCTTY, 0)
	}
	p.SendFD(spawn.Step{Op: "send the terminal to", Path: pl.console.socket}, sock, regPTMX, consoleName)
	p.Close(regPTMX)
	p.CloseFD(sock)
}
