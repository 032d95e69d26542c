package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/cleanup"
	"github.com/sandboxkit/sandbox/internal/execstub"
	"github.com/sandboxkit/sandbox/internal/spawn"
)

// teardownTimeout bounds the cleanup after a run, which must not inherit
// the run's cancellation.
const teardownTimeout = 10 * time.Second

// running is a started sandbox: what it holds, and the one undo stack that
// releases it. Run is start, wait, close; a long-lived sandbox is the same
// value, waited for later.
type running struct {
	pl     *plan
	proc   *spawn.Process
	cg     cgroup
	bridge *bridgeRun
	io     *stdio
	status int       // the init's status pipe, read end; -1 without the init
	start  time.Time // when the program started

	// attached: another process started the sandbox (Attach); this one
	// holds a pidfd and cgroup descriptors, never kills or removes it.
	attached bool

	// exited is closed by watch once PID 1 is reaped; ws and timedOut are
	// set before.
	exited   chan struct{}
	ws       unix.WaitStatus
	timedOut bool

	// undo releases, last first, everything acquired; every acquisition is
	// pushed right after it is made.
	undo cleanup.Stack

	closeOnce sync.Once
	closeErr  error

	freezeMu sync.Mutex
	frozen   bool // guarded by freezeMu; Pause froze the cgroup
	killing  bool // guarded by freezeMu; a kill began: no more freezing
}

// start builds pl's sandbox and starts its program. On error it has
// released everything it acquired; on success the running sandbox holds
// it, and close releases it.
func start(ctx context.Context, pl *plan) (_ *running, err error) {
	if err := checkHost(); err != nil {
		return nil, fmt.Errorf("sandbox: run: %w", err)
	}
	r := &running{pl: pl, status: -1, exited: make(chan struct{})}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.close(ctx))
		}
	}()
	// What the child needs only until it runs: released when start
	// returns, whatever happens.
	var spent cleanup.Stack
	defer spent.Unwind(context.WithoutCancel(ctx))

	c, err := r.acquire(ctx, &spent)
	if err != nil {
		return nil, err
	}
	if c.createHookDone != nil {
		createHookMu.Lock()
	}
	proc, err := pl.startChild(c.program, c.attr, r.bridge, c.pidns)
	if c.createHookDone != nil {
		pl.createPause.closeChildEnds()
		herr := <-c.createHookDone
		createHookMu.Unlock()
		if herr != nil && err == nil {
			// Not reached: a hook that failed never lets the child on.
			unix.PidfdSendSignal(proc.PIDFD, unix.SIGKILL, nil, 0)
			proc.WaitPolled(nil)
			closeFD(&proc.PIDFD)
		}
		if herr != nil {
			err = herr
		}
	}
	pl.report(c.program)
	if err != nil {
		return nil, fmt.Errorf("sandbox: start %s: %w", pl.name(), pl.startError(err))
	}
	r.proc = proc
	r.start = time.Now()
	if !pl.detached { // a detached sandbox is its caller's to release: see detach
		go r.watch()
		r.undo.Push(r.kill)
	}
	// The child holds the bridge's namespace now: it lives exactly as long
	// as the sandbox.
	r.bridge.closeNetns()
	r.io.started()
	return r, nil
}

// childSetup is what acquire prepared for the clone: the child's program
// and how to clone it.
type childSetup struct {
	program *spawn.Program
	attr    spawn.Attr
	pidns   int // the PID namespace the child is born in (joined by path), or -1 for a new one
	// createHookDone receives the create hook's error, with a create
	// hook (see holdForCreateHook); nil without.
	createHookDone <-chan error
}

// acquire makes everything the sandbox holds (pushed on r.undo) and the
// child needs until it runs (pushed on spent), in order: the root, the
// bind trees, the bridge (overlapped), the cgroup, stdio, the init and its
// status pipe, the ID-map handshake and a sysfs for a user namespace.
func (r *running) acquire(ctx context.Context, spent *cleanup.Stack) (_ *childSetup, err error) {
	pl := r.pl
	base, release, err := pl.root.open(ctx, pl.userns != nil)
	if err != nil {
		return nil, fmt.Errorf("sandbox: root: %w", err)
	}
	r.undo.PushErr(release) // an image's layers stay held while the sandbox lives
	spent.PushErr(func() error { return closeFD(&base) })
	if err := checkRoot(pl, base); err != nil {
		return nil, fmt.Errorf("sandbox: root %s: %w", pl.root, err)
	}
	filter, err := pl.seccomp.get()
	if err != nil {
		return nil, fmt.Errorf("sandbox: seccomp filter: %w", err)
	}
	mounts, err := pl.prepareMounts()
	if errors.Is(err, ErrInvalidConfig) {
		return nil, err // a missing bind source, named
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: prepare mounts: %w", err)
	}
	spent.PushErr(func() error { mounts.close(); return nil })

	// A bridge's namespace and veth take the kernel about a millisecond:
	// made on their own goroutine, they overlap the rest of the setup.
	pending := pl.startBridge(ctx)
	r.undo.Push(pending.unwind)

	name := cgroupName(facts().owner)
	if pl.cgroupPath != "" {
		name = strings.TrimPrefix(pl.cgroupPath, "/")
	}
	if r.cg, err = newCgroup(name, pl.limits); err != nil {
		return nil, fmt.Errorf("sandbox: create cgroup: %w", err)
	}
	r.undo.PushErr(func() error {
		if err := r.cg.destroy(); err != nil {
			return fmt.Errorf("sandbox: remove cgroup: %w", err)
		}
		return nil
	})

	if r.io, err = pl.newStdio(); err != nil {
		return nil, fmt.Errorf("sandbox: set up stdio: %w", err)
	}
	r.undo.PushErr(r.io.abort)
	if pl.outputKill {
		r.io.onFull(func() { r.signal(unix.SIGKILL) })
	}

	x := execSetup{stdio: r.io.childFDs(), lastCap: facts().lastCap, filter: filter, statusFD: -1, gateFD: -1}
	if x.stubFD, err = pl.openStub(); err != nil {
		return nil, fmt.Errorf("sandbox: exec stub: %w", err)
	}
	spent.PushErr(func() error { return closeFD(&x.stubFD) })
	if x.joinFDs, err = pl.openJoins(); err != nil {
		return nil, fmt.Errorf("sandbox: join namespace: %w", err)
	}
	spent.PushErr(func() error { return closeFDs(x.joinFDs) })
	if pl.console != nil {
		if x.consoleFD, err = dialConsole(pl.console.socket); err != nil {
			return nil, fmt.Errorf("sandbox: console: %w", err)
		}
		spent.PushErr(func() error { return closeFD(&x.consoleFD) })
	}
	if pl.gate != "" {
		if x.gateFD, err = openGate(pl.gate); err != nil {
			return nil, fmt.Errorf("sandbox: start gate: %w", err)
		}
		spent.PushErr(func() error { return closeFD(&x.gateFD) })
	}
	if pl.init && x.stubFD >= 0 {
		if r.status, x.statusFD, err = statusPipe(); err != nil {
			return nil, fmt.Errorf("sandbox: init status pipe: %w", err)
		}
		r.undo.PushErr(func() error { return closeFD(&r.status) })
		spent.PushErr(func() error { return closeFD(&x.statusFD) })
	}

	if r.bridge, err = pending.wait(); err != nil {
		return nil, fmt.Errorf("sandbox: bridge network: %w", err)
	}
	attr := spawn.Attr{Cloneflags: pl.cloneFlags(), CgroupFD: r.cg.cloneFD(), Release: -1}
	idMapsWritten := -1
	// The child is a copy that waits on a pipe for the parent: in a user
	// namespace, until it has ID maps, which only the parent can write;
	// with a create hook, because a child that waits for its hook must
	// not hold its clone thread in vfork that long (the Go runtime could
	// not stop the world for a collection).
	if pl.userns != nil || pl.createHook != nil {
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
			return nil, fmt.Errorf("sandbox: pipe: %w", err)
		}
		idMapsWritten, attr.Release = fds[0], fds[1]
		spent.PushErr(func() error { return errors.Join(closeFD(&idMapsWritten), closeFD(&attr.Release)) })
		attr.AfterClone = func(int) error { return nil }
		if pl.userns != nil {
			attr.AfterClone = func(pid int) error { return writeIDMaps(pid, pl.userns) }
		}
	}
	sysfs := -1
	if pl.net.parentSysfs {
		if sysfs, err = r.bridge.sysfsOrHost(); err != nil {
			return nil, fmt.Errorf("sandbox: sysfs for the network: %w", err)
		}
		spent.PushErr(func() error { return closeFD(&sysfs) })
	}
	var hookDone <-chan error
	if pl.createHook != nil {
		if hookDone, err = r.holdForCreateHook(spent); err != nil {
			return nil, fmt.Errorf("sandbox: create hook: %w", err)
		}
	}
	return &childSetup{program: pl.program(base, idMapsWritten, sysfs, r.cg, r.bridge, mounts, x), attr: attr, pidns: pl.pidnsFD(x.joinFDs), createHookDone: hookDone}, nil
}

// watch waits for PID 1 to end without holding an OS thread, kills it
// when the plan's timeout passes (which bounds the sandbox's life from its
// start), reaps it, and closes r.exited.
func (r *running) watch() {
	defer close(r.exited)
	var fired atomic.Bool
	if r.pl.timeout > 0 {
		killed := make(chan struct{})
		t := time.AfterFunc(r.pl.timeout-time.Since(r.start), func() {
			defer close(killed)
			fired.Store(true)
			r.killAll()
		})
		// A kill under way uses the pidfd, which close closes once
		// exited is: it must be over first.
		defer func() {
			if !t.Stop() {
				<-killed
			}
		}()
	}
	r.ws = r.proc.WaitPolled(nil)
	if r.pl.joinsPID() {
		// Not the namespace's init: what it leaves runs on (pidns_linux.go).
		r.killLeft()
	}
	// The program may have ended by itself as the timer fired, before the
	// kill could reach it: only a run the kill ended timed out.
	r.timedOut = fired.Load() && r.ws.Signaled() && r.ws.Signal() == unix.SIGKILL
}

// alive reports whether PID 1 still runs (is not reaped yet).
func (r *running) alive() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// stop kills PID 1 if it still runs (its PID namespace takes every other
// process with it) and returns once it is reaped.
func (r *running) stop() {
	if r.alive() && !r.attached {
		r.killAll()
		<-r.exited
	}
}

// wait waits for the program to end, killing the sandbox (and with it
// every process of its PID namespace) when ctx ends first, and returns
// what it did. The error is ctx's, when ctx ended it.
func (r *running) wait(ctx context.Context) (*Result, error) {
	var ctxErr error
	select {
	case <-r.exited:
	case <-ctx.Done():
		r.stop()
		ctxErr = fmt.Errorf("sandbox: run %s: %w", r.pl.name(), ctx.Err())
	}
	return r.result(), ctxErr
}

// result returns what the program did, once PID 1 was reaped: its status
// (the init's report of it), its output, and what its cgroup measured.
// Call it once.
func (r *running) result() *Result {
	if r.attached {
		return r.attachedResult()
	}
	ws, reported := programStatus(r.ws, r.status)
	// The init writes its report only once the program ended, which a
	// kill of the init would have prevented: a run that the timer's kill
	// reached after the program ended did not time out.
	res := &Result{Wall: time.Since(r.start), TimedOut: r.timedOut && !reported, Network: r.bridge.info()}
	r.io.finish(res)
	res.setExit(ws)
	// Every process of the sandbox died with its PID 1, so the cgroup is
	// idle: what it measured is final.
	u, err := r.cg.usage()
	res.CPU, res.MemoryPeak, res.OOMKilled = u.cpu, u.memoryPeak, u.oomKills > 0
	if err != nil {
		res.TeardownErr = fmt.Errorf("sandbox: read usage: %w", err)
	}
	return res
}

// signal sends sig to the sandbox's PID 1 through its pidfd, which a
// recycled PID can never receive.
func (r *running) signal(sig unix.Signal) error {
	return unix.PidfdSendSignal(r.proc.PIDFD, sig, nil, 0)
}

// kill stops the sandbox and closes its pidfd: the undo step of a started
// child.
func (r *running) kill(context.Context) error {
	r.stop()
	return closeFD(&r.proc.PIDFD)
}

// close releases everything the sandbox holds, killing it first if it
// still runs, in the reverse order of acquisition. It is idempotent and
// returns the first call's joined errors. It does not inherit ctx's
// cancellation, which may be what ended the run.
func (r *running) close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
		defer cancel()
		r.closeErr = r.undo.Unwind(tctx)
	})
	return r.closeErr
}

// openStub returns a sealed exec stub for this machine, the init unless
// the plan has none, or -1 (and no error) where there is none; see
// internal/execstub.
func (pl *plan) openStub() (int, error) {
	open := execstub.OpenInit
	switch {
	case pl.gate != "":
		open = execstub.OpenGate
	case !pl.init:
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
	if w, err = highFD(fds[1]); err != nil {
		unix.Close(fds[0])
		return -1, -1, err
	}
	return fds[0], w, nil
}

// programStatus returns the program's own wait status: what the init
// reported on the status pipe (reported is then true), or else the wait
// status of PID 1 itself (no init, or an init that was killed).
func programStatus(pid1 unix.WaitStatus, status int) (ws unix.WaitStatus, reported bool) {
	if program, ok := readStatus(status); ok {
		return program, true
	}
	return pid1, false
}

// setExit records how the program ended: its exit code, or -1 and the
// signal that killed it.
func (res *Result) setExit(ws unix.WaitStatus) {
	if ws.Signaled() {
		res.ExitCode, res.Signal = -1, ws.Signal()
		return
	}
	res.ExitCode = ws.ExitStatus()
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
