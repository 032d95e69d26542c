package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// ptyDevice is the device number of ptmx: major 5, minor 2.
var ptyDevice = unix.Mkdev(5, 2)

// openPTY opens a new pseudo-terminal of the sandbox's own devpts (the
// one its /dev/pts shows, so that the program finds its terminal there)
// and returns its master, non-blocking for the runtime's poller, and its
// slave, owned by uid and gid. The sandbox could have put anything at
// /dev/pts/ptmx: only the ptmx of a devpts is taken, and the slave is
// reached from the master (TIOCGPTPEER), never by a path.
func (x instanceSys) openPTY(size WindowSize, uid, gid int) (master, slave *os.File, err error) {
	root, err := x.openRoot()
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(root)
	const name = "/dev/pts/ptmx"
	fd, err := inRoot(root, name, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK)
	if err != nil {
		return nil, nil, err
	}
	master = os.NewFile(uintptr(fd), name)
	defer func() {
		if err != nil {
			master.Close()
		}
	}()
	var st unix.Stat_t
	var sfs unix.Statfs_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return nil, nil, &fs.PathError{Op: "statfs", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != ptyDevice || sfs.Type != unix.DEVPTS_SUPER_MAGIC {
		return nil, nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("not the ptmx of a devpts: %w", ErrUnsafePath)}
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return nil, nil, &fs.PathError{Op: "unlock", Path: name, Err: err}
	}
	ws := &unix.Winsize{Row: size.Rows, Col: size.Cols}
	if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws); err != nil {
		return nil, nil, &fs.PathError{Op: "set window size", Path: name, Err: err}
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		return nil, nil, &fs.PathError{Op: "open peer", Path: name, Err: errno}
	}
	slave = os.NewFile(sfd, "pty")
	// The program, which may not be root, owns its terminal, as login
	// gives it one.
	if err := slave.Chown(uid, gid); err != nil {
		slave.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// newTTYStdio connects a program to the terminal whose ends are master and
// slave: the slave is its stdin, stdout and stderr; what it writes is
// copied from the master to stdout (captured when nil), and stdin to the
// master. It takes both files, and closes them on every path.
func newTTYStdio(master, slave *os.File, stdin io.Reader, stdout io.Writer, limit int64) (_ *stdio, err error) {
	st := &stdio{pipes: []*os.File{master}}
	st.child[0] = slave
	defer func() {
		if err != nil {
			st.abort()
		}
	}()
	for i := 1; i < 3; i++ {
		if st.child[i], err = dupFile(slave); err != nil {
			return nil, err
		}
	}
	dst := stdout
	if dst == nil {
		st.out[0] = &capture{limit: limit}
		dst = st.out[0]
	}
	st.copies = append(st.copies, func() {
		// EIO once the last process holding the slave closed it: the
		// end of the output.
		io.Copy(dst, master)
	})
	if stdin != nil {
		st.feed = func() { io.Copy(master, stdin) }
	}
	return st, nil
}

// resizePTY sets the window size of the terminal whose master is f; the
// kernel sends SIGWINCH to its foreground process group. Preconditions:
// f is open.
func resizePTY(f *os.File, size WindowSize) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: size.Rows, Col: size.Cols})
	})
	return errors.Join(err, serr)
}
