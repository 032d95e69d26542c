package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/cleanup"
	"github.com/sandboxkit/sandbox/internal/execstub"
	"github.com/sandboxkit/sandbox/internal/spawn"
)

// execOutputGrace is how long an Exec's output is still read after the
// program ended, for what processes it left in the background write.
const execOutputGrace = 100 * time.Millisecond

// exec runs argv in the running sandbox and returns its Result.
//
// The child that enters is cloned outside the sandbox's PID namespace, so
// no process of the sandbox ever sees it, let alone the host memory it
// starts with: it joins the sandbox's user, mount, network, IPC, UTS and
// cgroup namespaces through PID 1's pidfd, and the PID namespace for its
// children; joins the cgroup; takes the sandbox's hardening; and executes
// an init of its own, a fresh image of a few hundred bytes, still outside.
// That init forks the program, which is born in the sandbox's PID namespace
// and executes at once (the class of CVE-2016-9962), forwards signals to
// it and reports its status.
func (x instanceSys) exec(ctx context.Context, argv []string) (res *Result, err error) {
	if !x.r.alive() {
		return nil, ErrClosed
	}
	pl := *x.r.pl // the sandbox's plan, for this program
	pl.argv, pl.paths = argv, commandPaths(argv[0], pl.env)
	pl.stdin, pl.stdout, pl.stderr = nil, nil, nil
	pl.net.bornIn = false // it joins the network with the rest, by setns

	var undo, spent cleanup.Stack
	defer spent.Unwind(context.WithoutCancel(ctx))
	defer func() { err = errors.Join(err, undo.Unwind(context.WithoutCancel(ctx))) }()

	io, err := pl.newStdio()
	if err != nil {
		return nil, fmt.Errorf("sandbox: exec: stdio: %w", err)
	}
	undo.PushErr(io.abort)
	x2 := execSetup{stdio: io.childFDs(), lastCap: facts().lastCap, statusFD: -1}
	if x2.filter, err = pl.seccomp.get(); err != nil {
		return nil, fmt.Errorf("sandbox: exec: seccomp filter: %w", err)
	}
	if x2.stubFD, err = execstub.OpenInit(); err != nil {
		return nil, fmt.Errorf("sandbox: exec: init: %w", err)
	}
	spent.PushErr(func() error { return closeFD(&x2.stubFD) })
	status := -1
	if status, x2.statusFD, err = statusPipe(); err != nil {
		return nil, fmt.Errorf("sandbox: exec: status pipe: %w", err)
	}
	undo.PushErr(func() error { return closeFD(&status) })
	spent.PushErr(func() error { return closeFD(&x2.statusFD) })

	var p spawn.Program
	attr := spawn.Attr{CgroupFD: x.r.cg.cloneFD(), Release: -1}
	addDieWithCaller(&p)
	if pl.userns != nil {
		// Entering a user namespace needs a process of its own memory
		// (the kernel refuses one that shares it), so this child is a
		// copy, and waits until it is one.
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
			return nil, fmt.Errorf("sandbox: exec: pipe: %w", err)
		}
		wait := fds[0]
		attr.Release = fds[1]
		spent.PushErr(func() error { return errors.Join(closeFD(&wait), closeFD(&attr.Release)) })
		attr.AfterClone = func(int) error { return nil }
		p.WaitByte(spawn.Step{Op: "wait for the parent"}, wait)
	}
	join := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWPID)
	if pl.userns != nil {
		join |= unix.CLONE_NEWUSER
	}
	p.Syscall(spawn.Step{Op: "setns", Path: "the sandbox's namespaces"}, unix.SYS_SETNS, uintptr(x.r.proc.PIDFD), join)
	for _, fd := range x.r.cg.procsFDs() {
		p.Write(spawn.Step{Op: "join cgroup", Path: fmt.Sprint("fd ", fd)}, fd, []byte("0"))
	}
	p.Syscall(spawn.Step{Op: "setsid"}, unix.SYS_SETSID)
	// Joining the mount namespace put the child at its root.
	p.OpenInRoot(pl.workdir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, regDir)
	p.Fchdir(regDir, pl.workdir)
	p.Close(regDir)
	pl.addExec(&p, x2)

	proc, err := pl.startChild(&p, attr, nil)
	if errors.Is(err, unix.ESRCH) || !x.r.alive() {
		return nil, errors.Join(ErrClosed, err) // the sandbox ended meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: exec %s: %w", argv[0], pl.startError(err))
	}
	undo.PushErr(func() error { return closeFD(&proc.PIDFD) })
	spent.Unwind(context.WithoutCancel(ctx))
	start := time.Now()
	io.started()

	done := make(chan unix.WaitStatus, 1)
	var ru unix.Rusage
	go func() { done <- proc.WaitPolled(&ru) }()
	var ws unix.WaitStatus
	var ctxErr error
	select {
	case ws = <-done:
	case <-ctx.Done():
		// The init and the program make a process group of their own
		// (setsid), which spans the PID namespaces: the kill reaches the
		// program inside too. The pidfd keeps the init unreaped, so its
		// PID, the group's, names no other process.
		unix.Kill(-proc.PID, unix.SIGKILL)
		ws = <-done
		ctxErr = fmt.Errorf("sandbox: exec %s: %w", argv[0], ctx.Err())
	}
	ws, _ = programStatus(ws, status)
	res = &Result{Wall: time.Since(start), Network: x.r.bridge.info()}
	io.finishWithin(res, execOutputGrace)
	res.setExit(ws)
	// The init's own time and its waited-for program's.
	res.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return res, ctxErr
}
