package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"syscall"
	"time"
)

// Command is a program to run in a running sandbox, made by
// [Instance.Command]. Like a [Sandbox] it is an immutable definition:
// every With method returns a changed copy, so one Command can be run many
// times and from many goroutines. Unless changed, it runs as the sandbox's
// program would: with its user, working directory and environment, empty
// stdin, and stdout and stderr captured in the [Result] up to the
// sandbox's output limit.
type Command struct {
	in       *Instance
	argv     []string
	env      []string      // added to the sandbox's; a later key wins
	workdir  string        // "": the sandbox's
	user     *[2]int       // nil: the sandbox's
	timeout  time.Duration // 0: none
	stdin    io.Reader
	stdout   io.Writer
	stderr   io.Writer
	tty      *WindowSize // nil: no terminal
	problems []*FieldError
}

// WindowSize is a terminal's size in character cells.
type WindowSize struct {
	Rows, Cols uint16
}

// Command returns a definition of argv run in the instance; Run or Start
// runs it. argv[0] is looked up in the PATH of the command's environment
// unless it contains a slash.
func (in *Instance) Command(argv ...string) *Command {
	return &Command{in: in, argv: slices.Clone(argv)}
}

// Exec runs argv in the running sandbox and returns what it did: it is
// in.Command(argv...).Run(ctx), see [Command.Run].
func (in *Instance) Exec(ctx context.Context, argv ...string) (*Result, error) {
	return in.Command(argv...).Run(ctx)
}

func (c *Command) clone() *Command {
	d := *c
	d.argv = slices.Clone(c.argv)
	d.env = slices.Clone(c.env)
	d.problems = slices.Clone(c.problems)
	return &d
}

func (c *Command) invalid(field string, value any, reason string) {
	c.problems = append(c.problems, &FieldError{Field: field, Value: value, Reason: reason})
}

// WithEnv returns a copy of c whose environment is the sandbox's with kv,
// each "KEY=value", added; a later value for a key wins, over the
// sandbox's too. List setting: calls append.
func (c *Command) WithEnv(kv ...string) *Command {
	d := c.clone()
	for _, e := range kv {
		if reason := checkEnvEntry(e); reason != "" {
			d.invalid("env", e, reason)
			continue
		}
		d.env = append(d.env, e)
	}
	return d
}

// WithWorkdir returns a copy of c that starts in dir, an absolute path
// inside the sandbox, which must exist (unlike the sandbox's own working
// directory, it is not made). The last call wins; by default it is the
// sandbox's.
func (c *Command) WithWorkdir(dir string) *Command {
	d := c.clone()
	if reason := checkSandboxPath(dir); reason != "" {
		d.invalid("workdir", dir, reason)
		return d
	}
	d.workdir = path.Clean(dir)
	return d
}

// WithUser returns a copy of c that runs as uid and gid (as the sandbox
// sees them) with no supplementary groups; with a user namespace both must
// lie in its ID map. The last call wins; by default it is the sandbox's
// user.
func (c *Command) WithUser(uid, gid int) *Command {
	d := c.clone()
	if reason := checkID(uid); reason != "" {
		d.invalid("uid", uid, reason)
		return d
	}
	if reason := checkID(gid); reason != "" {
		d.invalid("gid", gid, reason)
		return d
	}
	d.user = &[2]int{uid, gid}
	return d
}

// WithTimeout returns a copy of c that is killed, with every process it
// started, after d of wall-clock time; hitting it sets Result.TimedOut and
// is not an error. d must be positive; the last call wins. By default only
// the sandbox's life and the ctx of Run bound it.
func (c *Command) WithTimeout(d time.Duration) *Command {
	e := c.clone()
	if d <= 0 {
		e.invalid("timeout", d, "must be positive")
		return e
	}
	e.timeout = d
	return e
}

// WithStdin returns a copy of c whose program reads r as its standard
// input, as [Sandbox.WithStdin] says: an *os.File is handed over
// directly, any other reader is copied as the program reads. The last call
// wins; by default stdin is empty.
func (c *Command) WithStdin(r io.Reader) *Command {
	d := c.clone()
	d.stdin = r
	return d
}

// WithStdout returns a copy of c whose standard output goes to w as the
// program writes it (then Result.Stdout stays empty), as
// [Sandbox.WithStdout] says. The last call wins; by default it is
// captured in the Result.
func (c *Command) WithStdout(w io.Writer) *Command {
	d := c.clone()
	d.stdout = w
	return d
}

// WithStderr is WithStdout for the standard error, a stream of its own:
// the two are never mixed, except on a terminal (see WithTTY).
func (c *Command) WithStderr(w io.Writer) *Command {
	d := c.clone()
	d.stderr = w
	return d
}

// WithTTY returns a copy of c whose program runs on a terminal of size
// (a pseudo-terminal of the sandbox's own /dev/pts, and its controlling
// terminal): its stdin, stdout and stderr are that terminal, so what it
// writes to either comes out on the command's stdout, and its stderr
// writer is unused. [Process.Resize] changes the size while it runs. By
// default there is no terminal.
func (c *Command) WithTTY(size WindowSize) *Command {
	d := c.clone()
	if size.Rows == 0 || size.Cols == 0 {
		d.invalid("tty", size, "rows and columns must be positive")
		return d
	}
	d.tty = &size
	return d
}

// Process is a command started in a sandbox by [Command.Start]. Its
// methods are safe for concurrent use. It needs no closing: what it holds
// is freed once it ended (or its sandbox was closed), whether or not Wait
// is called.
type Process struct {
	sys processSys // per OS
}

// Run runs the command in the sandbox and returns what it did, as
// [Sandbox.Run] does: its exit status, its output, its wall and CPU time
// (its own; MemoryPeak is not measured per process and stays zero). It is
// another process in the sandbox's namespaces, cgroup and root, with its
// capabilities, seccomp filter, no_new_privs and rlimits. ctx bounds it:
// when ctx ends first the process is killed, with every process it
// started, and the error matches ctx.Err(). Errors: a *ConfigError for a
// bad definition, [ErrClosed] once the sandbox has ended, else an error
// naming what failed (a command not found among them).
func (c *Command) Run(ctx context.Context) (*Result, error) {
	p, err := c.start(ctx)
	if err != nil {
		return nil, err
	}
	return p.sys.wait(ctx, true)
}

// Start starts the command in the sandbox and returns once it runs. ctx
// bounds the start only: the process runs until it ends, its timeout
// passes, [Process.Signal] ends it or its sandbox is closed. The errors
// are Run's.
func (c *Command) Start(ctx context.Context) (*Process, error) {
	return c.start(ctx)
}

// StartDetached starts the command so that it outlives the caller, as an
// OCI runtime's exec --detach does, and returns the PID of its init: the
// process that passes every signal on to the program, dies with SIGKILL
// taking the program along, and ends with the program's exit code, or 128
// plus the signal that killed it. The caller is its parent until the
// caller ends: it waits for it (wait4 on the PID), or leaves that to the
// process that inherits it (a subreaper). Its standard I/O must be files
// (nil is /dev/null); there is no timeout. With WithTTY, console is the
// terminal's master (of the sandbox's own devpts), which the caller owns
// and closes; without, it is nil. ctx bounds the start only.
func (c *Command) StartDetached(ctx context.Context) (pid int, console *os.File, err error) {
	if problems := checkOutliving(c.timeout, c.stdin, c.stdout, c.stderr); len(problems) > 0 {
		return 0, nil, &ConfigError{Problems: append(problems, c.problems...)}
	}
	sys, err := c.startSys(ctx, true)
	if err != nil {
		return 0, nil, err
	}
	return sys.pid(), sys.console(), nil
}

func (c *Command) start(ctx context.Context) (*Process, error) {
	sys, err := c.startSys(ctx, false)
	if err != nil {
		return nil, err
	}
	return &Process{sys: sys}, nil
}

func (c *Command) startSys(ctx context.Context, detached bool) (processSys, error) {
	problems := append(checkCall(ctx, c.argv, false), c.problems...)
	if len(problems) > 0 {
		return processSys{}, &ConfigError{Problems: problems}
	}
	if err := c.in.usable(); err != nil {
		return processSys{}, err
	}
	if err := ctx.Err(); err != nil {
		return processSys{}, fmt.Errorf("sandbox: exec %s: %w", c.argv[0], err)
	}
	return c.in.sys.exec(ctx, c, detached)
}

// Wait waits for the process to end and returns what it did, as Run does.
// ctx bounds the wait only: when it ends first, Wait returns its error and
// the process runs on. Later calls return the same result.
func (p *Process) Wait(ctx context.Context) (*Result, error) {
	return p.sys.wait(ctx, false)
}

// Signal sends sig to the process (through the small init that started
// it, which passes it on; SIGKILL ends every process it started). It
// returns [os.ErrProcessDone] once the process has ended.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := p.sys.signal(sig); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return err
		}
		return fmt.Errorf("sandbox: signal %s: %w", signalName(sig), err)
	}
	return nil
}

// Resize changes the size of the process's terminal (see
// [Command.WithTTY]); the program gets SIGWINCH. It returns an error for
// a process with no terminal, and [os.ErrProcessDone] once it has ended.
func (p *Process) Resize(size WindowSize) error {
	if size.Rows == 0 || size.Cols == 0 {
		return &ConfigError{Problems: []*FieldError{{Field: "size", Value: size, Reason: "rows and columns must be positive"}}}
	}
	return p.sys.resize(size)
}
