package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/cleanup"
	"github.com/sandboxkit/sandbox/internal/execstub"
	"github.com/sandboxkit/sandbox/internal/spawn"
)

// execOutputGrace is how long an Exec's output is still read after the
// program ended, for what processes it left in the background write.
const execOutputGrace = 100 * time.Millisecond

// processSys is a Process's program in a running sandbox.
type processSys struct{ e *execProc }

// execProc is a command started in a running sandbox: the init of its own
// that started it (outside the sandbox's PID namespace), its stdio and
// terminal, and what it did once it ended.
type execProc struct {
	name    string
	proc    *spawn.Process
	io      *stdio
	tty     *os.File // the terminal's master; nil without one
	status  int      // the init's status pipe, read end
	start   time.Time
	timeout time.Duration
	network *NetworkInfo

	done chan struct{} // closed once it ended and res is set
	res  *Result

	mu    sync.Mutex
	ended bool // guarded by mu; then proc.PIDFD is closed
}

// commandPlan returns the plan of c in the sandbox: the sandbox's, with
// c's program, environment, directory, user and stdio.
func (x instanceSys) commandPlan(c *Command) (*plan, error) {
	pl := *x.r.pl
	pl.env = mergeEnv(pl.env, c.env)
	pl.argv, pl.paths = c.argv, commandPaths(c.argv[0], pl.env)
	pl.stdin, pl.stdout, pl.stderr = c.stdin, c.stdout, c.stderr
	pl.timeout = c.timeout
	pl.watchOutput = false
	pl.net.bornIn = false // it joins the network with the rest, by setns
	if c.workdir != "" {
		pl.workdir = c.workdir
	}
	if c.user != nil {
		pl.uid, pl.gid = c.user[0], c.user[1]
		if pl.userns != nil && (pl.uid >= pl.userns.size || pl.gid >= pl.userns.size) {
			return nil, &ConfigError{Problems: []*FieldError{{Field: "user", Value: *c.user, Reason: "must be inside the user namespace's ID map"}}}
		}
	}
	return &pl, nil
}

// exec starts c in the running sandbox.
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
//
// A detached command (Command.StartDetached) outlives the caller: it does
// not die with it, nothing reads its status pipe (the init's exit status
// is the program's), its stdio are files, and its terminal's master goes
// to the caller.
func (x instanceSys) exec(ctx context.Context, c *Command, detached bool) (_ processSys, err error) {
	if !x.r.alive() {
		return processSys{}, ErrClosed
	}
	pl, err := x.commandPlan(c)
	if err != nil {
		return processSys{}, err
	}
	if detached {
		opened, err := pl.openDevNulls()
		defer closeFiles(opened)
		if err != nil {
			return processSys{}, fmt.Errorf("sandbox: exec %s: stdio: %w", c.argv[0], err)
		}
	}
	e := &execProc{name: c.argv[0], status: -1, timeout: c.timeout, network: x.r.bridge.info(), done: make(chan struct{})}
	var undo, spent cleanup.Stack
	defer spent.Unwind(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			err = errors.Join(err, undo.Unwind(context.WithoutCancel(ctx)))
		}
	}()
	fail := func(what string, err error) (processSys, error) {
		return processSys{}, fmt.Errorf("sandbox: exec %s: %s: %w", e.name, what, err)
	}

	if c.tty != nil {
		uid, gid := pl.hostIDs()
		master, slave, err := x.openPTY(*c.tty, uid, gid)
		if err != nil {
			return fail("terminal", err)
		}
		if detached {
			// The master is the caller's once the command runs; until
			// then, and on every error, it is this call's to close.
			undo.PushErr(master.Close)
			e.io, err = pl.detachedTTYStdio(master, slave)
		} else {
			e.io, err = newTTYStdio(master, slave, pl.stdin, pl.stdout, pl.outputLimit)
		}
		if err != nil {
			return fail("terminal", err)
		}
		e.tty = master
	} else if e.io, err = pl.newStdio(); err != nil {
		return fail("stdio", err)
	}
	undo.PushErr(e.io.abort)
	x2 := execSetup{stdio: e.io.childFDs(), lastCap: facts().lastCap, statusFD: -1, ctty: c.tty != nil, outlive: detached}
	if x2.filter, err = pl.seccomp.get(); err != nil {
		return fail("seccomp filter", err)
	}
	if x2.stubFD, err = execstub.OpenInit(); err != nil {
		return fail("init", err)
	}
	spent.PushErr(func() error { return closeFD(&x2.stubFD) })
	if !detached { // else the init's exit status is the program's
		if e.status, x2.statusFD, err = statusPipe(); err != nil {
			return fail("status pipe", err)
		}
		undo.PushErr(func() error { return closeFD(&e.status) })
		spent.PushErr(func() error { return closeFD(&x2.statusFD) })
	}

	var p spawn.Program
	attr := spawn.Attr{CgroupFD: x.r.cg.cloneFD(), Release: -1}
	if !detached {
		addDieWithCaller(&p)
	}
	if pl.userns != nil {
		// Entering a user namespace needs a process of its own memory
		// (the kernel refuses one that shares it), so this child is a
		// copy, and waits until it is one.
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
			return fail("pipe", err)
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
	// A session of its own: the process group that a kill of the command
	// reaches, and the session its terminal controls.
	p.Syscall(spawn.Step{Op: "setsid"}, unix.SYS_SETSID)
	// Joining the mount namespace put the child at its root.
	p.OpenInRoot(pl.workdir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, regDir)
	p.Fchdir(regDir, pl.workdir)
	p.Close(regDir)
	pl.addExec(&p, x2)

	proc, err := pl.startChild(&p, attr, nil, -1)
	if errors.Is(err, unix.ESRCH) || !x.r.alive() {
		return processSys{}, errors.Join(ErrClosed, err) // the sandbox ended meanwhile
	}
	if err != nil {
		return processSys{}, fmt.Errorf("sandbox: exec %s: %w", e.name, pl.startError(err))
	}
	e.proc = proc
	spent.Unwind(context.WithoutCancel(ctx))
	e.start = time.Now()
	if detached {
		// The child has its own copies; the process is its parent's to
		// reap from now on, by its PID.
		e.io.abort()
		closeFD(&e.proc.PIDFD)
		return processSys{e}, nil
	}
	e.io.started()
	go e.watch()
	return processSys{e}, nil
}

// pid is the PID of a detached command's init.
func (x processSys) pid() int { return x.e.proc.PID }

// console is a detached command's terminal master, or nil.
func (x processSys) console() *os.File { return x.e.tty }

// openDevNulls sets each of the plan's standard streams that is nil to
// /dev/null, as a detached command gets, and returns the files it opened,
// for the caller to close once the child has its copies.
func (pl *plan) openDevNulls() (opened []*os.File, err error) {
	open := func(flag int) (*os.File, error) {
		f, err := os.OpenFile(os.DevNull, flag, 0)
		if err == nil {
			opened = append(opened, f)
		}
		return f, err
	}
	if pl.stdin == nil {
		if pl.stdin, err = open(os.O_RDONLY); err != nil {
			return opened, err
		}
	}
	for _, w := range []*io.Writer{&pl.stdout, &pl.stderr} {
		if *w == nil {
			f, err := open(os.O_WRONLY)
			if err != nil {
				return opened, err
			}
			*w = f
		}
	}
	return opened, nil
}

// detachedTTYStdio gives the terminal's slave to the child as its three
// streams, and nothing to copy: the master is the caller's.
func (pl *plan) detachedTTYStdio(master, slave *os.File) (*stdio, error) {
	st := &stdio{}
	st.child[0] = slave
	for i := 1; i < 3; i++ {
		f, err := dupFile(slave)
		if err != nil {
			st.abort()
			return nil, err
		}
		st.child[i] = f
	}
	return st, nil
}

// watch waits for the command's init to end, kills the command's process
// group when its timeout passes, and records what it did.
func (e *execProc) watch() {
	defer close(e.done)
	var fired atomic.Bool
	if e.timeout > 0 {
		t := time.AfterFunc(e.timeout, func() {
			fired.Store(true)
			e.killGroup()
		})
		defer t.Stop()
	}
	var ru unix.Rusage
	ws := e.proc.WaitPolled(&ru)
	ws, reported := programStatus(ws, e.status)
	res := &Result{Wall: time.Since(e.start), TimedOut: fired.Load() && !reported, Network: e.network}
	e.mu.Lock()
	e.ended = true
	if err := errors.Join(closeFD(&e.proc.PIDFD), closeFD(&e.status)); err != nil {
		res.TeardownErr = fmt.Errorf("sandbox: exec %s: %w", e.name, err)
	}
	e.mu.Unlock()
	// The terminal closes here: after ended is set, so Resize never
	// reaches a closed one.
	e.io.finishWithin(res, execOutputGrace)
	res.setExit(ws)
	// The init's own time and its waited-for program's.
	res.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	e.res = res
}

// killGroup kills the init and the program, which make a process group of
// their own (setsid) spanning the PID namespaces. The init is not reaped
// before mu is taken, so its PID, the group's, names no other process.
//
// On a terminal the program leads a session, and so a group, of its own
// (see internal/execstub): it is found as the init's child before the
// init dies, and its group is killed after (the init, killed first, does
// not report, which is how a timeout is told from the program's end).
func (e *execProc) killGroup() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ended {
		return
	}
	var leaders []int
	if e.tty != nil {
		leaders = childrenOf(e.proc.PID)
	}
	unix.Kill(-e.proc.PID, unix.SIGKILL)
	for _, fd := range leaders {
		// The pidfd holds the program's PID until it is reaped: the
		// group it names is the program's.
		var pid int
		if _, err := fmt.Sscan(pidOfFD(fd), &pid); err == nil && pid > 0 {
			unix.Kill(-pid, unix.SIGKILL)
		}
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		unix.Close(fd)
	}
}

// childrenOf returns pidfds of the children of the process pid, found in
// /proc by their parent: a scan of every process, but only when a command
// on a terminal is killed, and it needs no CONFIG_PROC_CHILDREN (the
// kernel's own children list). A pidfd is taken, then the parent checked
// again, so that a recycled PID is never taken.
func childrenOf(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var fds []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || parentOf(child) != pid {
			continue
		}
		fd, err := unix.PidfdOpen(child, 0)
		if err != nil {
			continue
		}
		if parentOf(child) != pid {
			unix.Close(fd)
			continue
		}
		fds = append(fds, fd)
	}
	return fds
}

// parentOf returns the parent's PID of the process pid, or -1.
func parentOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// The command name, in parentheses, may hold anything: the fields
	// after its last ')' are "state ppid ...".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	var state string
	var ppid int
	if _, err := fmt.Sscan(string(b[i+1:]), &state, &ppid); err != nil {
		return -1
	}
	return ppid
}

// pidOfFD returns the PID a pidfd names, from its fdinfo.
func pidOfFD(fd int) string {
	b, _ := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// wait returns what the command did once it ended. When ctx ends first, it
// kills the command and returns ctx's error with the result if kill is
// set, and only the error otherwise.
func (x processSys) wait(ctx context.Context, kill bool) (*Result, error) {
	e := x.e
	select {
	case <-e.done:
		return e.res, nil
	case <-ctx.Done():
	}
	if !kill {
		return nil, fmt.Errorf("sandbox: wait: %w", ctx.Err())
	}
	e.killGroup()
	<-e.done
	return e.res, fmt.Errorf("sandbox: exec %s: %w", e.name, ctx.Err())
}

// signal sends sig to the command's init, which passes it on; SIGKILL,
// which the init cannot pass on, goes to the whole group.
func (x processSys) signal(sig syscall.Signal) error {
	e := x.e
	if sig == unix.SIGKILL {
		e.killGroup()
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ended {
		return os.ErrProcessDone
	}
	return unix.PidfdSendSignal(e.proc.PIDFD, sig, nil, 0)
}

// resize sets the size of the command's terminal.
func (x processSys) resize(size WindowSize) error {
	e := x.e
	if e.tty == nil {
		return fmt.Errorf("sandbox: resize %s: %w", e.name, errNoTerminal)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ended {
		return os.ErrProcessDone
	}
	if err := resizePTY(e.tty, size); err != nil {
		return fmt.Errorf("sandbox: resize %s: %w", e.name, err)
	}
	return nil
}

// errNoTerminal: Resize of a command started without WithTTY.
var errNoTerminal = errors.New("the command has no terminal (see Command.WithTTY)")
