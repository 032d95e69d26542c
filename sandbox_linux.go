package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/execstub"
	"github.com/sandboxkit/sandbox/internal/spawn"
	"github.com/sandboxkit/sandbox/internal/state"
)

// run is start, wait, close: what the program did, and what its teardown
// could not do in Result.TeardownErr.
func (s *Sandbox) run(ctx context.Context, argv []string) (*Result, error) {
	r, err := start(ctx, s.plan(argv))
	if err != nil {
		return nil, err
	}
	res, err := r.wait(ctx)
	// The program ran: what its teardown could not do goes with its
	// result, which is valid, rather than in an error beside it that an
	// "if err != nil { return err }" would throw away with the result.
	res.TeardownErr = errors.Join(res.TeardownErr, r.close(ctx))
	return res, err
}

// checkHost reports what the host lacks to run a sandbox.
func checkHost() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("creating namespaces, cgroups and mounts needs root (uid 0): %w", fs.ErrPermission)
	}
	// The scratch directory is only a mount point, and a sandbox in a user
	// namespace must be able to reach it as an unprivileged user.
	for _, d := range []struct {
		path string
		mode fs.FileMode
	}{{state.Dir, 0o711}, {state.ScratchDir, 0o755}} {
		fi, err := os.Stat(d.path)
		if errors.Is(err, fs.ErrNotExist) {
			err = os.Mkdir(d.path, d.mode)
			if err == nil || errors.Is(err, fs.ErrExist) {
				err = os.Chmod(d.path, d.mode) // umask
			}
		} else if err == nil && fi.Mode().Perm() != d.mode {
			err = os.Chmod(d.path, d.mode)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// closeFD closes *fd once and marks it closed.
func closeFD(fd *int) error {
	if *fd < 0 {
		return nil
	}
	err := unix.Close(*fd)
	*fd = -1
	return err
}

// highFD moves fd, close-on-exec, to a number of execstub.MinFD or more,
// and closes fd. Every descriptor the child's program moves to a fixed
// number (0 to 9: stdio, the error pipe, the status pipe, a terminal, a
// gate, a pool's request) must come from there: one below could be
// overwritten by an earlier move.
func highFD(fd int) (int, error) {
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, execstub.MinFD)
	unix.Close(fd)
	if err != nil {
		return -1, err
	}
	return high, nil
}

// startError rewrites the paths of a failed step of the child to those the
// sandbox sees, and says what a failed exec of command meant.
func (pl *plan) startError(err error) error {
	command := pl.name()
	var se *spawn.Error
	if !errors.As(err, &se) {
		return err
	}
	c := *se
	c.Step.Path = sandboxPath(c.Step.Path)
	switch {
	case c.Step.InRoot && (c.Errno == unix.ELOOP || c.Errno == unix.EPERM):
		// A path resolved inside the root met a magic link, or a
		// target landed on /proc or /sys (see addMkdirAll).
		return fmt.Errorf("%w (%w)", &c, ErrUnsafePath)
	case c.Errno == unix.EINVAL && strings.HasPrefix(c.Step.Op, "bind file "):
		// move_mount's EINVAL for a file onto the directory that was there.
		return &fs.PathError{Op: c.Step.Op, Path: c.Step.Path,
			Err: fmt.Errorf("the target is a directory, and a file can only be bound onto a file: %w", c.Errno)}
	case c.Errno == unix.EINVAL && strings.HasPrefix(c.Step.Op, "bind directory "):
		return &fs.PathError{Op: c.Step.Op, Path: c.Step.Path,
			Err: fmt.Errorf("the target is a file, and a directory can only be bound onto a directory: %w", c.Errno)}
	case c.Step.Op == "exec" && c.Exec && c.Errno == unix.ENOENT:
		// The file is there: what is missing is what it names.
		return fmt.Errorf("%w (its #! interpreter or ELF loader is missing)", &c)
	case c.Step.Op == "exec" && !c.Exec && c.Errno == unix.ENOENT && !strings.Contains(command, "/"):
		return fmt.Errorf("%w (%q is in no directory of PATH=%s)", &c, command, pathOf(pl.env))
	}
	return &c
}
