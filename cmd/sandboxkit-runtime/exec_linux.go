package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/oci"
)

// execOpts are the flags of exec, runc's.
type execOpts struct {
	process, pidFile, consoleSocket, cwd, user *string
	env, caps                                  *listFlag
	tty, detach, ignorePaused, noNewPrivs      *bool
	preserveFDs                                *int
}

// listFlag is a flag that may be given more than once.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func execFlags(fs *flag.FlagSet) execOpts {
	o := execOpts{
		process:       fs.String("process", "", "file of the process to run, as JSON (the spec's process); then no command is given"),
		pidFile:       fs.String("pid-file", "", "file to write the process's PID to"),
		consoleSocket: fs.String("console-socket", "", "AF_UNIX socket to send the pty master to"),
		cwd:           fs.String("cwd", "", "working directory in the container"),
		user:          fs.String("user", "", "UID[:GID] in the container"),
		env:           &listFlag{},
		caps:          &listFlag{},
		tty:           fs.Bool("tty", false, "a terminal (with --console-socket)"),
		detach:        fs.Bool("detach", false, "return once the process started"),
		ignorePaused:  fs.Bool("ignore-paused", false, "refused: a paused container must be resumed first"),
		noNewPrivs:    fs.Bool("no-new-privs", false, "set no_new_privs"),
		preserveFDs:   fs.Int("preserve-fds", 0, "refused unless 0"),
	}
	fs.StringVar(o.process, "p", "", "short for --process")
	fs.StringVar(o.user, "u", "", "short for --user")
	fs.Var(o.env, "env", "KEY=VALUE added to the environment (repeatable)")
	fs.Var(o.env, "e", "short for --env")
	fs.Var(o.caps, "cap", "a capability added (repeatable)")
	fs.Var(o.caps, "c", "short for --cap")
	fs.BoolVar(o.tty, "t", false, "short for --tty")
	fs.BoolVar(o.detach, "d", false, "short for --detach")
	return o
}

// exec runs a process in the running container id, entering it through
// the package's Attach: with --detach it returns once the process runs
// (its PID in --pid-file), else it waits for it, passing signals on, and
// returns its exit status.
func (g *globals) exec(ctx context.Context, args []string, o execOpts) (int, error) {
	if len(args) == 0 {
		return 2, errors.New("exec: want ID [COMMAND [ARG...]]")
	}
	id, argv := args[0], args[1:]
	if *o.preserveFDs != 0 {
		return 2, errors.New("exec: --preserve-fds: no descriptor beyond stdio is passed on")
	}
	t0 := time.Now()
	c, err := oci.Load(g.root, id)
	if err != nil {
		return 1, err
	}
	switch st := c.Status(); {
	case c.NoProcess || st == oci.Stopped:
		return 1, errNotRunning
	case st == oci.Paused && *o.ignorePaused:
		// The process would join the frozen cgroup, and freeze before
		// it reports that it runs.
		return 1, errors.New("cannot exec in a paused container: --ignore-paused is not supported, resume it first")
	case st == oci.Paused:
		return 1, errors.New("cannot exec in a paused container: resume it first")
	}
	g.debugf("exec %s: state read in %v", id, time.Since(t0))
	t0 = time.Now()
	spec, err := readSpec(c.Bundle)
	if err != nil {
		return 1, err
	}
	g.debugf("exec %s: config.json read in %v", id, time.Since(t0))
	p, err := execProcess(spec.Process, argv, o)
	if err != nil {
		return 2, err
	}
	if p.Terminal && *o.consoleSocket == "" {
		return 2, errors.New("exec: a terminal (process.terminal or --tty) needs --console-socket")
	}
	if !p.Terminal && *o.consoleSocket != "" {
		return 2, errors.New("exec: --console-socket needs a terminal (process.terminal or --tty)")
	}
	size := sandbox.WindowSize{Rows: 24, Cols: 80}
	if p.ConsoleSize != nil && p.ConsoleSize.Height > 0 && p.ConsoleSize.Width > 0 {
		size = sandbox.WindowSize{Rows: uint16(p.ConsoleSize.Height), Cols: uint16(p.ConsoleSize.Width)}
	}
	terminal := p.Terminal
	p.Terminal, p.ConsoleSize = false, nil
	t0 = time.Now()
	in, err := attach(c, spec, p)
	if err != nil {
		return 1, err
	}
	defer in.Close()
	g.debugf("exec %s: spec read and container attached in %v", id, time.Since(t0))
	t0 = time.Now()
	cmd := in.Command(p.Args...).WithStdin(os.Stdin).WithStdout(os.Stdout).WithStderr(os.Stderr)
	if terminal {
		cmd = cmd.WithTTY(size)
	}
	pid, console, err := cmd.StartDetached(ctx)
	if errors.Is(err, sandbox.ErrClosed) {
		return 1, errNotRunning
	}
	if err != nil {
		return 1, err
	}
	g.debugf("exec %s: process %d started in %v", id, pid, time.Since(t0))
	if console != nil {
		err := oci.SendConsole(*o.consoleSocket, console)
		console.Close()
		if err != nil {
			unix.Kill(pid, unix.SIGKILL)
			unix.Wait4(pid, nil, 0, nil)
			return 1, err
		}
	}
	if *o.pidFile != "" {
		if err := writeFileAtomic(*o.pidFile, []byte(strconv.Itoa(pid))); err != nil {
			unix.Kill(pid, unix.SIGKILL)
			unix.Wait4(pid, nil, 0, nil)
			return 1, err
		}
	}
	if *o.detach {
		return 0, nil // the caller, or its subreaper, reaps it
	}
	return waitForwarding(pid)
}

// attach returns the running container c, whose config.json is spec,
// with p as its process: FromSpec gives the process its user,
// environment, directory, capabilities, rlimits and no_new_privs, and
// Attach the container's namespaces, cgroup, seccomp filter and root.
func attach(c *oci.Container, spec *specs.Spec, p *specs.Process) (*sandbox.Instance, error) {
	s := *spec
	s.Process, s.Hooks = p, nil
	l := specs.Linux{}
	if s.Linux != nil {
		l = *s.Linux
	}
	l.CgroupsPath = c.CgroupPath
	s.Linux = &l
	sb, err := sandbox.FromSpec(&s, c.Bundle)
	if err != nil {
		return nil, err
	}
	in, err := sb.Attach(c.PID)
	if errors.Is(err, sandbox.ErrClosed) {
		return nil, errNotRunning
	}
	if err != nil {
		return nil, err
	}
	// The pidfd Attach holds names the process from now on: it must be
	// the container's, not a process that reused its PID.
	if !oci.ProcessAlive(c.PID, c.Start) {
		in.Close()
		return nil, errNotRunning
	}
	return in, nil
}

// runStartContainerHooks runs the spec's startContainer hooks in the
// created container c, before its program (see runHooksInside).
func runStartContainerHooks(ctx context.Context, c *oci.Container, hooks []specs.Hook) error {
	spec, err := readSpec(c.Bundle)
	if err != nil {
		return err
	}
	return runHooksInside(ctx, "startContainer", c, spec, c.State(), hooks)
}

// runHooksInside runs hooks in the container c, whose config.json is
// spec, as the runtime-spec says of createContainer and startContainer
// hooks: in its namespaces, each path found in its root as it is then
// (the host's before the pivot, for createContainer), with the hook's
// args and env, as root with the process's capabilities, the state st on
// stdin and the hook's timeout. The first that fails is the error.
func runHooksInside(ctx context.Context, kind string, c *oci.Container, spec *specs.Spec, st specs.State, hooks []specs.Hook) error {
	state, err := json.Marshal(st)
	if err != nil {
		return err
	}
	for i, h := range hooks {
		args := h.Args
		if len(args) == 0 {
			args = []string{h.Path}
		}
		p := &specs.Process{Args: args, Env: h.Env, Cwd: "/", User: specs.User{UID: 0, GID: 0}}
		if spec.Process != nil {
			p.Capabilities, p.Rlimits, p.NoNewPrivileges = spec.Process.Capabilities, spec.Process.Rlimits, spec.Process.NoNewPrivileges
		}
		in, err := attach(c, spec, p)
		if err != nil {
			return fmt.Errorf("%s hook %d (%s): %w", kind, i, h.Path, err)
		}
		cmd := in.Command(append([]string{h.Path}, args[1:]...)...).WithStdin(bytes.NewReader(state))
		if h.Timeout != nil {
			if *h.Timeout <= 0 {
				in.Close()
				return fmt.Errorf("%s hook %d (%s): timeout must be positive", kind, i, h.Path)
			}
			cmd = cmd.WithTimeout(time.Duration(*h.Timeout) * time.Second)
		}
		res, err := cmd.Run(ctx)
		in.Close()
		switch {
		case err != nil:
			return fmt.Errorf("%s hook %d (%s): %w", kind, i, h.Path, err)
		case res.TimedOut:
			return fmt.Errorf("%s hook %d (%s): timed out after %ds", kind, i, h.Path, *h.Timeout)
		case res.ExitCode != 0 || res.Signal != 0:
			return fmt.Errorf("%s hook %d (%s): %s: %s", kind, i, h.Path, res, bytes.TrimSpace(append(res.Stdout, res.Stderr...)))
		}
	}
	return nil
}

// readSpec reads the bundle's config.json.
func readSpec(bundle string) (*specs.Spec, error) {
	path := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &spec, nil
}

// execProcess returns the process to run: the --process file's, or the
// container's own process with argv and the flags' changes, as runc builds
// it.
func execProcess(base *specs.Process, argv []string, o execOpts) (*specs.Process, error) {
	if *o.process != "" {
		if len(argv) > 0 {
			return nil, errors.New("exec: --process and a command: give one")
		}
		b, err := os.ReadFile(*o.process)
		if err != nil {
			return nil, fmt.Errorf("exec: %w", err)
		}
		var p specs.Process
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("exec: %s: %w", *o.process, err)
		}
		if len(p.Args) == 0 {
			return nil, fmt.Errorf("exec: %s: process.args is empty", *o.process)
		}
		return &p, nil
	}
	if len(argv) == 0 {
		return nil, errors.New("exec: want ID COMMAND [ARG...], or --process FILE")
	}
	p := &specs.Process{Cwd: "/"}
	if base != nil {
		c := *base
		p = &c
		if base.Capabilities != nil {
			caps := *base.Capabilities
			p.Capabilities = &caps
		}
	}
	p.Args, p.Terminal, p.ConsoleSize = argv, *o.tty, nil
	p.Env = append(append([]string(nil), p.Env...), *o.env...)
	if *o.cwd != "" {
		p.Cwd = *o.cwd
	}
	if *o.noNewPrivs {
		p.NoNewPrivileges = true
	}
	if *o.user != "" {
		u, gid, _ := strings.Cut(*o.user, ":")
		uid, err := strconv.ParseUint(u, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("exec: --user %q: want UID[:GID] as numbers", *o.user)
		}
		p.User = specs.User{UID: uint32(uid), GID: p.User.GID}
		if gid != "" {
			g, err := strconv.ParseUint(gid, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("exec: --user %q: want UID[:GID] as numbers", *o.user)
			}
			p.User.GID = uint32(g)
		}
	}
	if len(*o.caps) > 0 {
		if p.Capabilities == nil {
			p.Capabilities = &specs.LinuxCapabilities{}
		}
		for _, c := range *o.caps {
			c = strings.ToUpper(c)
			if !strings.HasPrefix(c, "CAP_") {
				c = "CAP_" + c
			}
			pc := p.Capabilities
			pc.Bounding = append(pc.Bounding, c)
			pc.Effective = append(pc.Effective, c)
			pc.Permitted = append(pc.Permitted, c)
			pc.Inheritable = append(pc.Inheritable, c)
			pc.Ambient = append(pc.Ambient, c)
		}
	}
	return p, nil
}

// waitForwarding waits for the child pid to end, passing on every signal
// this process gets, and returns its exit status, as runc's exec does.
func waitForwarding(pid int) (int, error) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case s := <-sigs:
				if sig, ok := s.(syscall.Signal); ok && sig != unix.SIGCHLD && sig != unix.SIGURG && sig != unix.SIGWINCH {
					unix.Kill(pid, sig)
				}
			case <-done:
				return
			}
		}
	}()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 1, fmt.Errorf("wait for the process: %w", err)
		}
		break
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}
