package netsetup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// threadNetnsPath names the calling thread's network namespace.
const threadNetnsPath = "/proc/thread-self/ns/net"

// makeNetns creates a fresh network namespace, holding only a loopback device
// that is down, and returns it as an open file (read-only, close-on-exec)
// that the caller owns and must close. The namespace lives while the file is
// open or a process (or socket) uses it: a sandbox's child joins it with
// setns(fd, CLONE_NEWNET) and, once the child runs, the caller closes the
// file so that the namespace ends with the sandbox's last process.
//
// The calling goroutine's namespace is never changed: the namespace is made on
// a separate goroutine locked to its OS thread, which unshares, opens the new
// namespace and returns to its original namespace; if returning fails, the
// thread is discarded (its goroutine exits still locked) and newNetns fails.
//
// It needs CAP_SYS_ADMIN. Errors are *fs.PathError values naming the
// syscall; a missing privilege matches fs.ErrPermission.
func makeNetns() (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, err := unshareNetns(nil)
		done <- result{f, err}
	}()
	r := <-done
	return r.f, r.err
}

// unshareNetns does newNetns's work on the calling goroutine, which must
// be one of its own: it locks the goroutine to its thread and leaves it
// locked, so that its end discards the thread, when the thread cannot
// return to its namespace. Every descriptor but the result is closed
// before it returns. fn, if not nil, runs in the new namespace, and its
// error fails the call.
func unshareNetns(fn func() error) (*os.File, error) {
	runtime.LockOSThread()
	orig, err := os.Open(threadNetnsPath)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread() // unshare failed, the thread is unchanged
		return nil, &fs.PathError{Op: "unshare", Path: "CLONE_NEWNET", Err: err}
	}
	f, err := openNetns(threadNetnsPath)
	if err == nil && fn != nil {
		if err = fn(); err != nil {
			f.Close()
			f = nil
		}
	}
	if rerr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); rerr != nil {
		if f != nil {
			f.Close()
		}
		return nil, errors.Join(err, &fs.PathError{Op: "setns", Path: orig.Name(), Err: rerr})
	}
	runtime.UnlockOSThread()
	return f, err
}

// openNetns opens the namespace file path (O_RDONLY|O_CLOEXEC) and names
// the *os.File as the kernel does in /proc/PID/fd, e.g. "net:[4026532297]".
func openNetns(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("net:[%d]", st.Ino)), nil
}

// withFd calls fn with the descriptor of f, keeping f from being closed
// meanwhile. It returns os.ErrClosed if f is closed.
func withFd(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return os.ErrClosed // Control fails only on a closed file
	}
	return ferr
}

// isOpen reports whether f has not been closed.
func isOpen(f *os.File) bool {
	return withFd(f, func(int) error { return nil }) == nil
}

// checkNetns returns an error unless f is an open network namespace file.
func checkNetns(f *os.File) error {
	if f == nil {
		return &FieldError{Field: "netns", Value: nil, Reason: "must be an open network namespace"}
	}
	err := withFd(f, func(fd int) error { return CheckNamespace(fd, f.Name(), unix.CLONE_NEWNET) })
	if errors.Is(err, ErrNotNamespace) {
		return &FieldError{Field: "netns", Value: f.Name(), Reason: "not a network namespace"}
	}
	if errors.Is(err, os.ErrClosed) {
		return &FieldError{Field: "netns", Value: f.Name(), Reason: "is closed"}
	}
	return err
}

// ErrNotNamespace is CheckNamespace's error for a file that is not a
// namespace of the type asked for.
var ErrNotNamespace = errors.New("not a namespace of that type")

// CheckNamespace returns an error unless fd is a namespace file (of nsfs,
// such as /proc/PID/ns/pid) of the type nstype, a CLONE_NEW* flag: an
// *fs.PathError naming name, matching ErrNotNamespace for another file
// or another type. The kernel answers NS_GET_NSTYPE only for namespaces.
func CheckNamespace(fd int, name string, nstype int) error {
	t, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err == unix.ENOTTY || err == unix.EINVAL {
		return &fs.PathError{Op: "check namespace", Path: name, Err: ErrNotNamespace}
	}
	if err != nil {
		return &fs.PathError{Op: "ioctl NS_GET_NSTYPE", Path: name, Err: err}
	}
	if t != nstype {
		return &fs.PathError{Op: "check namespace", Path: name, Err: fmt.Errorf("%w: its type is %#x, not %#x", ErrNotNamespace, t, nstype)}
	}
	return nil
}

// InNetns runs fn on a goroutine locked to an OS thread that has joined the
// network namespace netns, and returns fn's error. Sockets fn creates stay in
// that namespace. The thread returns to its namespace afterwards; if it
// cannot, its goroutine exits still locked, so the runtime discards it.
func InNetns(netns *os.File, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		back, err := RunInNetns(netns, fn)
		done <- err
		if back {
			runtime.UnlockOSThread()
		} // else exit still locked: the runtime discards the thread
	}()
	return <-done
}

// RunInNetns joins netns on the calling thread, which must be locked to its
// goroutine, runs fn, and returns the thread to its namespace. back reports
// whether the thread is in its own namespace again (or never left it); a
// thread that is not must not serve anything else.
func RunInNetns(netns *os.File, fn func() error) (back bool, err error) {
	orig, err := os.Open(threadNetnsPath)
	if err != nil {
		return true, err
	}
	defer orig.Close()
	err = withFd(netns, func(fd int) error { return unix.Setns(fd, unix.CLONE_NEWNET) })
	if err != nil {
		return true, &fs.PathError{Op: "setns", Path: netns.Name(), Err: err} // the thread did not move
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		return false, errors.Join(ferr, &fs.PathError{Op: "setns", Path: orig.Name(), Err: fmt.Errorf("return: %w", err)})
	}
	return true, ferr
}
