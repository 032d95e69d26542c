package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// openRoot opens the sandbox's root as its processes see it, through its
// PID 1's /proc entry. A pidfd never names another process, so checking
// through it after the open that PID 1 still runs proves the entry was
// the sandbox's, not a later process's with the same PID.
func (x instanceSys) openRoot() (int, error) {
	fd, err := unix.Open("/proc/"+strconv.Itoa(x.r.proc.PID)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil && x.running() && x.r.signal(0) == nil {
		return fd, nil
	}
	if err == nil {
		unix.Close(fd)
	}
	return -1, ErrClosed
}

// inRoot opens path inside the root at rootFD with flags, resolved as
// the sandbox would resolve it but never out of its root: a symbolic link
// it planted, absolute or with "..", stays inside, and a /proc magic link
// fails (openat2 RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS).
func inRoot(rootFD int, path string, flags int) (int, error) {
	how := &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for {
		fd, err := unix.Openat2(rootFD, path, how)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue // a mount or rename raced a "..": try again
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// readFile reads the regular file path of the sandbox.
func (x instanceSys) readFile(name string) ([]byte, error) {
	root, err := x.openRoot()
	if err != nil {
		return nil, err
	}
	defer unix.Close(root)
	// O_NONBLOCK: a FIFO planted at name must not hold the caller up.
	fd, err := inRoot(root, name, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if err := requireRegular(f, name); err != nil {
		return nil, err
	}
	if err := refuseKernelFS(fd, name); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// writeFile creates or replaces the regular file name of the sandbox with
// data and mode as the sandbox's user (see asUser).
func (x instanceSys) writeFile(name string, data []byte, mode fs.FileMode) error {
	uid, gid := x.r.pl.hostIDs()
	return asUser(uid, gid, func() error { return x.writeFileAs(name, data, mode) })
}

// asUser runs fn on a thread of its own whose file-system IDs are uid and
// gid: what it creates belongs to them, and it may write only where they
// may, as the sandbox's own processes. (A user namespace's file systems
// also refuse files of an ID they do not map, such as the host's root.)
// The thread goes back to root afterwards, or is discarded.
func asUser(uid, gid int, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		unix.Setfsgid(gid) // these return the old IDs, never an error
		unix.Setfsuid(uid)
		done <- fn()
		unix.Setfsuid(0)
		unix.Setfsgid(0)
		if cur, _ := unix.SetfsuidRetUid(-1); cur == 0 {
			runtime.UnlockOSThread()
		} // else exit still locked: the runtime discards the thread
	}()
	return <-done
}

// writeFileAs is writeFile on asUser's thread.
func (x instanceSys) writeFileAs(name string, data []byte, mode fs.FileMode) error {
	root, err := x.openRoot()
	if err != nil {
		return err
	}
	defer unix.Close(root)
	dir, err := inRoot(root, path.Dir(name), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	// The host writes as root: through a link onto /proc/sys it would
	// change the host's own kernel settings.
	if err := refuseKernelFS(dir, name); err != nil {
		return err
	}
	// O_NOFOLLOW: a link at name is not followed; O_NONBLOCK: a FIFO
	// there fails (ENXIO) instead of waiting for a reader.
	fd, err := unix.Openat(dir, path.Base(name), unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, uint32(mode.Perm()))
	if err != nil {
		return &fs.PathError{Op: "open", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if err := requireRegular(f, name); err != nil {
		return err
	}
	if err := f.Chmod(mode.Perm()); err != nil { // not masked by a umask
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Close()
}

// requireRegular returns an error unless f is a regular file.
func requireRegular(f *os.File, name string) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("not a regular file (%s): %w", fi.Mode().Type(), errors.ErrUnsupported)}
	}
	return nil
}

// refuseKernelFS returns ErrUnsafePath when fd lies on procfs or sysfs,
// where a link in the sandbox could carry the host's read or write.
func refuseKernelFS(fd int, name string) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return &fs.PathError{Op: "statfs", Path: name, Err: err}
	}
	if st.Type == procfsMagic || st.Type == sysfsMagic {
		return &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("on /proc or /sys: %w", ErrUnsafePath)}
	}
	return nil
}
