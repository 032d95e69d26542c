package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/execstub"
	"github.com/sandboxkit/sandbox/internal/oci"
)

// StartDetached starts argv in a new sandbox as defined by s that
// outlives the caller, as an OCI runtime's create does, and returns the
// PID of its process. The sandbox is built and argv found before it
// returns, but the program is executed only once a byte is written to the
// FIFO at gate (an OCI runtime's start); a gate closed by every writer
// without that byte ends the sandbox, exit status 127. The program is the
// sandbox's PID 1 (there is no init, whatever WithInit says).
//
// Nothing of the caller holds the sandbox: it does not die with the
// caller, and its cgroup (WithCgroupPath, which is required) is not
// collected with the caller's. The caller is its parent until the caller
// ends: it must wait for it (wait4 on the PID), or leave that to the
// process that inherits it (a subreaper, or PID 1). Once the sandbox ended,
// the caller removes its cgroup (see RemoveCgroup). Standard I/O must be
// files (nil is /dev/null); the network NoNetwork or HostNetwork; there is
// no timeout. ctx bounds the start only.
//
// It returns Start's errors, and errors.ErrUnsupported on an architecture
// without the gated exec stub (amd64 and arm64 have one).
func (s *Sandbox) StartDetached(ctx context.Context, gate string, argv ...string) (pid int, err error) {
	if err := s.validateStart(ctx, argv, false); err != nil {
		ce, _ := err.(*ConfigError)
		if ce == nil {
			return 0, err
		}
		return 0, &ConfigError{Problems: append(ce.Problems, s.checkDetached(gate)...)}
	}
	if problems := s.checkDetached(gate); len(problems) > 0 {
		return 0, &ConfigError{Problems: problems}
	}
	if _, err := execstub.GateELF(runtime.GOARCH); err != nil {
		return 0, fmt.Errorf("sandbox: start detached on %s: %w", runtime.GOARCH, errors.ErrUnsupported)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("sandbox: start: %w", err)
	}
	c := s.clone()
	pl := c.plan(argv)
	pl.init, pl.detached, pl.gate = false, true, gate
	opened, err := pl.openDevNulls()
	defer closeFiles(opened)
	if err != nil {
		return 0, fmt.Errorf("sandbox: stdio: %w", err)
	}
	r, err := start(ctx, pl)
	if err != nil {
		return 0, err
	}
	pid = r.proc.PID
	r.detach()
	return pid, nil
}

// detach lets go of a detached sandbox once it started: the caller's
// descriptors of it close, and nothing of it is undone.
func (r *running) detach() {
	r.undo.Take() // dropped: the sandbox is no longer the caller's
	closeFD(&r.proc.PIDFD)
	for _, fd := range r.cg.procsFDs() {
		unix.Close(fd)
	}
	if fd := r.cg.cloneFD(); fd >= 0 {
		unix.Close(fd)
	}
	r.io.abort() // the files are the sandbox's now; no pipe was made
}

// RemoveCgroup removes the cgroup path (as given to WithCgroupPath) from
// every cgroup hierarchy it is in: the teardown of a detached sandbox,
// once its process ended. A process still in it is killed first: in a
// PID namespace of its own, a sandbox has none left once its process
// ended, but in one joined by path (a pod's) what its program left runs
// on. A hierarchy without it is no error.
func RemoveCgroup(path string) error {
	if reason := checkCgroupPath(path); reason != "" {
		return &ConfigError{Problems: []*FieldError{{Field: "cgroup path", Value: path, Reason: reason}}}
	}
	dirs, err := cgroupDirs(path)
	if err != nil {
		return fmt.Errorf("sandbox: remove cgroup: %w", err)
	}
	var errs []error
	for _, d := range dirs {
		ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
		errs = append(errs, killProcs(ctx, filepath.Join(d, "cgroup.procs")))
		cancel()
		errs = append(errs, removeCgroupDir(d))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sandbox: remove cgroup: %w", err)
	}
	return nil
}

// cgroupDirs returns the directories of the cgroup path in every
// hierarchy mounted below /sys/fs/cgroup (one on a pure v2 host) that
// has it.
func cgroupDirs(path string) ([]string, error) {
	hs, err := oci.Hierarchies()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, h := range hs {
		if d := filepath.Join(h, path); isDir(d) {
			out = append(out, d)
		}
	}
	return out, nil
}

// isDir reports whether path is a directory.
func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// openGate opens the FIFO at path for the gated stub to read: read and
// write, so that the open does not wait for a writer and the stub never
// sees an end of file while it waits.
func openGate(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		unix.Close(fd)
		return -1, &fs.PathError{Op: "open", Path: path, Err: errors.New("not a FIFO")}
	}
	if fd, err = highFD(fd); err != nil { // the child moves it to GateFD
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}
