package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/cleanup"
	"github.com/sandboxkit/sandbox/internal/execstub"
	"github.com/sandboxkit/sandbox/internal/spawn"
	"github.com/sandboxkit/sandbox/internal/state"
)

// teardownTimeout bounds the cleanup after a run, which must not inherit
// the run's cancellation.
const teardownTimeout = 10 * time.Second

func (s *Sandbox) run(ctx context.Context, argv []string) (res *Result, err error) {
	if err := checkHost(); err != nil {
		return nil, fmt.Errorf("sandbox: run: %w", err)
	}
	base, err := s.root.open(s.userns != nil)
	if err != nil {
		return nil, fmt.Errorf("sandbox: root: %w", err)
	}
	defer closeFD(&base)
	if err := checkMountPoints(base); err != nil {
		return nil, fmt.Errorf("sandbox: root %s: %w", s.root, err)
	}
	if s.userns != nil && s.network.kind == networkBridge {
		if err := checkEtcDir(base); err != nil {
			return nil, fmt.Errorf("sandbox: root: %w", err)
		}
	}
	filter, err := s.seccomp.get()
	if err != nil {
		return nil, fmt.Errorf("sandbox: seccomp filter: %w", err)
	}

	mounts, err := s.prepareMounts()
	if errors.Is(err, ErrInvalidConfig) {
		return nil, err // a missing bind source, named
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: prepare mounts: %w", err)
	}
	defer mounts.close()

	var undo cleanup.Stack
	defer func() {
		if err != nil {
			tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
			err = errors.Join(err, undo.Unwind(tctx))
			cancel()
		}
	}()

	// A bridge's namespace and veth take the kernel about a millisecond:
	// made on their own goroutine, they overlap the rest of the setup.
	pending := s.startBridge(ctx)
	undo.Push(pending.unwind)

	cg, err := newCgroup(cgroupName(facts().owner), s.limits())
	if err != nil {
		return nil, fmt.Errorf("sandbox: create cgroup: %w", err)
	}
	undo.PushErr(cg.destroy)

	io, err := s.newStdio()
	if err != nil {
		return nil, fmt.Errorf("sandbox: set up stdio: %w", err)
	}
	undo.PushErr(io.abort)

	x := execSetup{stdio: io.childFDs(), lastCap: facts().lastCap, filter: filter, statusFD: -1}
	if x.stubFD, err = s.openStub(); err != nil {
		return nil, fmt.Errorf("sandbox: exec stub: %w", err)
	}
	defer closeFD(&x.stubFD)
	status := -1 // the init's status pipe, read end
	if s.init && x.stubFD >= 0 {
		if status, x.statusFD, err = statusPipe(); err != nil {
			return nil, fmt.Errorf("sandbox: init status pipe: %w", err)
		}
		defer closeFD(&status)
		defer closeFD(&x.statusFD)
	}

	bridge, err := pending.wait()
	if err != nil {
		return nil, fmt.Errorf("sandbox: bridge network: %w", err)
	}

	attr := spawn.Attr{Cloneflags: s.cloneFlags(), CgroupFD: cg.cloneFD(), Release: -1}
	wait := -1
	if s.userns != nil {
		// The child waits on a pipe until its user namespace has ID maps,
		// which only the parent can write.
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
			return nil, fmt.Errorf("sandbox: pipe: %w", err)
		}
		wait, attr.Release = fds[0], fds[1]
		defer closeFD(&attr.Release)
		defer closeFD(&wait)
		attr.AfterClone = func(pid int) error { return writeIDMaps(pid, s.userns) }
	}

	joinNetns, sysfs := bridge.netnsFD(), -1
	switch {
	case s.userns != nil && bridge != nil:
		joinNetns = -1 // born in it instead: see startInNetns
		if sysfs, err = bridge.sysfs(); err != nil {
			return nil, fmt.Errorf("sandbox: bridge network: %w", err)
		}
	case s.userns != nil && s.network.kind == networkHost:
		if sysfs, err = newSysfs(); err != nil {
			return nil, fmt.Errorf("sandbox: host network: %w", err)
		}
	}
	defer closeFD(&sysfs)
	etc := bridge.etcFiles()
	var p spawn.Program
	reopen := s.root.path
	if s.userns != nil {
		reopen = "" // base is a detached mount, mounted by addRoot
	}
	addPrelude(&p, cg.procsFDs(), wait, reopen, base, joinNetns)
	s.addRoot(&p, base, sysfs, etc)
	p.Sethostname(s.hostname)
	if s.network.kind == networkNone {
		addLoopbackUp(&p) // a bridge's namespace has lo up already
	}
	s.addMounts(&p, mounts)
	s.addFiles(&p, etc)
	s.addWorkdir(&p)
	s.addReadOnlyRoot(&p)
	s.addExec(&p, x, argv)

	if s.trace != nil {
		p.Trace = make([]int64, p.Len()+1)
	}
	proc, err := s.startChild(&p, attr, bridge)
	if s.trace != nil {
		steps := make([]string, p.Len())
		for i := range steps {
			st := p.Step(i)
			steps[i] = st.Op + " " + sandboxPath(st.Path)
		}
		s.trace(steps, p.Trace)
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: start %s: %w", argv[0], s.startError(err, argv[0]))
	}
	// The child has what it needed of these; the network namespace now
	// lives exactly as long as the sandbox.
	mounts.close()
	for _, fd := range []*int{&x.stubFD, &x.statusFD, &base, &sysfs, &wait, &attr.Release} {
		closeFD(fd)
	}
	bridge.closeNetns()
	start := time.Now()
	io.started()

	ws, ctxErr, timedOut := s.wait(ctx, proc)
	if program, ok := readStatus(status); ok {
		ws = program // the init's report of the program's own end
	}
	res = &Result{Wall: time.Since(start), TimedOut: timedOut, Network: bridge.info()}
	io.finish(res)
	switch {
	case ws.Signaled():
		res.ExitCode, res.Signal = -1, ws.Signal()
	default:
		res.ExitCode = ws.ExitStatus()
	}

	// Every process of the sandbox died with its PID 1, so the cgroup is
	// idle: read what it measured, then remove it.
	u, uerr := cg.usage()
	res.CPU, res.MemoryPeak, res.OOMKilled = u.cpu, u.memoryPeak, u.oomKills > 0
	undo = cleanup.Stack{}
	derr := cg.destroy()
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
	nerr := bridge.detach(tctx)
	cancel()
	if uerr != nil {
		uerr = fmt.Errorf("sandbox: read usage: %w", uerr)
	}
	if derr != nil {
		derr = fmt.Errorf("sandbox: remove cgroup: %w", derr)
	}
	if ctxErr != nil {
		ctxErr = fmt.Errorf("sandbox: run %s: %w", argv[0], ctxErr)
	}
	// The program ran: what its teardown could not do goes with its
	// result, which is valid, rather than in an error beside it that an
	// "if err != nil { return err }" would throw away with the result.
	res.TeardownErr = errors.Join(uerr, derr, nerr)
	return res, ctxErr
}

// wait waits for the sandbox's PID 1 to end, killing it (and with it every
// process of its PID namespace) when the timeout passes or ctx ends.
func (s *Sandbox) wait(ctx context.Context, proc *spawn.Process) (ws unix.WaitStatus, ctxErr error, timedOut bool) {
	defer unix.Close(proc.PIDFD)
	done := make(chan unix.WaitStatus, 1)
	go func() {
		ws, err := proc.WaitPolled()
		if err != nil {
			// Not pollable (it should be, since Linux 5.3): wait in a thread.
			ws = proc.Wait()
		}
		done <- ws
	}()
	var timeout <-chan time.Time
	if s.timeout > 0 {
		t := time.NewTimer(s.timeout)
		defer t.Stop()
		timeout = t.C
	}
	kill := func() { unix.PidfdSendSignal(proc.PIDFD, unix.SIGKILL, nil, 0) }
	select {
	case ws = <-done:
		return ws, nil, false
	case <-timeout:
		kill()
		// The program may have ended by itself as the timer fired, before
		// the kill could reach it: only a run the kill ended timed out.
		ws = <-done
		return ws, nil, ws.Signaled() && ws.Signal() == unix.SIGKILL
	case <-ctx.Done():
		kill()
		return <-done, ctx.Err(), false
	}
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

// open opens the root's directory (O_PATH, close-on-exec) to check it and
// to reserve a descriptor number: the child opens the root again, in its
// own mount namespace, at that number, and names it to overlayfs as
// /proc/self/fd/N. The path's characters then never clash with the mount
// options.
//
// detached, for a user namespace, opens instead a detached copy of the
// mount the root is on, without the mounts under it, which addRoot mounts
// in the child's namespace. overlayfs refuses a lower layer with mounts
// under it that a user namespace may not uncover (the host's / has
// /proc, /sys and more), and it never showed those mounts anyway. The
// copy is reached without any path lookup, even below directories the
// namespace's root could not search.
func (r Root) open(detached bool) (int, error) {
	if detached {
		fd, err := unix.OpenTree(unix.AT_FDCWD, r.path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return -1, &fs.PathError{Op: "open_tree", Path: r.path, Err: err}
		}
		return fd, nil
	}
	fd, err := unix.Open(r.path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: r.path, Err: err}
	}
	return fd, nil
}

// openStub returns a sealed exec stub for this machine, the init unless
// WithInit(false), or -1 (and no error) where there is none; see
// internal/execstub.
func (s *Sandbox) openStub() (int, error) {
	open := execstub.OpenInit
	if !s.init {
		open = execstub.Open
	}
	fd, err := open()
	if errors.Is(err, execstub.ErrUnsupportedArch) {
		return -1, nil
	}
	return fd, err
}

// statusPipe returns the pipe the init writes the program's wait status
// to. The write end is numbered above the descriptors the child sets up
// (0 to 4), so that moving it to 4 never overwrites another.
func statusPipe() (r, w int, err error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return -1, -1, err
	}
	w, err = unix.FcntlInt(uintptr(fds[1]), unix.F_DUPFD_CLOEXEC, 10)
	unix.Close(fds[1])
	if err != nil {
		unix.Close(fds[0])
		return -1, -1, err
	}
	return fds[0], w, nil
}

// readStatus returns the program's wait status as the init wrote it on
// the pipe r, once the init has ended; ok is false when it wrote none (it
// was killed, or r is -1).
func readStatus(r int) (ws unix.WaitStatus, ok bool) {
	if r < 0 {
		return 0, false
	}
	var b [4]byte
	n, err := unix.Read(r, b[:])
	for err == unix.EINTR {
		n, err = unix.Read(r, b[:])
	}
	if err != nil || n != len(b) {
		return 0, false
	}
	return unix.WaitStatus(binary.NativeEndian.Uint32(b[:])), true
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

// startError rewrites the paths of a failed step of the child to those the
// sandbox sees, and says what a failed exec of command meant.
func (s *Sandbox) startError(err error, command string) error {
	var se *spawn.Error
	if !errors.As(err, &se) {
		return err
	}
	c := *se
	c.Step.Path = sandboxPath(c.Step.Path)
	switch {
	case c.Errno == unix.ELOOP || c.Step.Op == "check file system of":
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
		return fmt.Errorf("%w (%q is in no directory of PATH=%s)", &c, command, s.pathVar())
	}
	return &c
}

// randomID returns 16 random hex digits.
func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
