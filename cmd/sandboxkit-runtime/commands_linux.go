package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/oci"
)

const defaultRoot = oci.DefaultRoot

// defaultCgroupParent is the cgroup below which a container whose spec
// names no cgroupsPath gets one named after its ID.
const defaultCgroupParent = "/oci.sandboxkit/"

// errNotRunning is the error of a command that needs a live container.
// Its text is runc's, which containerd matches.
var errNotRunning = errors.New("container not running")

// command runs one subcommand and returns the exit status.
func (g *globals) command(ctx context.Context, name string, args []string, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch name {
	case "create":
		o := createFlags(fs)
		pos, err := parse(fs, args, 1)
		if err != nil {
			return 2, err
		}
		_, err = g.create(ctx, pos[0], o)
		return exitOf(err), err
	case "run":
		o := createFlags(fs)
		detach := fs.Bool("detach", false, "return once the container started")
		fs.BoolVar(detach, "d", false, "short for --detach")
		pos, err := parse(fs, args, 1)
		if err != nil {
			return 2, err
		}
		return g.runContainer(ctx, pos[0], o, *detach)
	case "start":
		pos, err := parse(fs, args, 1)
		if err != nil {
			return 2, err
		}
		err = g.start(ctx, pos[0])
		return exitOf(err), err
	case "state":
		pos, err := parse(fs, args, 1)
		if err != nil {
			return 2, err
		}
		c, err := oci.Load(g.root, pos[0])
		if err != nil {
			return 1, err
		}
		return 0, printJSON(g.stdout, c.State())
	case "kill":
		all := fs.Bool("all", false, "signal every process of the container")
		fs.BoolVar(all, "a", false, "short for --all")
		pos, err := parseRange(fs, args, 1, 2)
		if err != nil {
			return 2, err
		}
		sig := "SIGTERM"
		if len(pos) == 2 {
			sig = pos[1]
		}
		err = g.kill(pos[0], sig, *all)
		return exitOf(err), err
	case "delete":
		force := fs.Bool("force", false, "kill a running container first")
		fs.BoolVar(force, "f", false, "short for --force")
		pos, err := parse(fs, args, 1)
		if err != nil {
			return 2, err
		}
		err = g.delete(ctx, pos[0], *force)
		return exitOf(err), err
	case "list":
		format := fs.String("format", "table", "table or json")
		fs.StringVar(format, "f", "table", "short for --format")
		quiet := fs.Bool("quiet", false, "IDs only")
		fs.BoolVar(quiet, "q", false, "short for --quiet")
		if _, err := parse(fs, args, 0); err != nil {
			return 2, err
		}
		err := g.list(*format, *quiet)
		return exitOf(err), err
	case "ps":
		format := fs.String("format", "table", "table or json")
		fs.StringVar(format, "f", "table", "short for --format")
		pos, err := parse(fs, args, 1)
		if err != nil {
			return 2, err
		}
		err = g.ps(pos[0], *format)
		return exitOf(err), err
	case "pause", "resume":
		pos, err := parse(fs, args, 1)
		if err != nil {
			return 2, err
		}
		err = g.freeze(pos[0], name == "pause")
		return exitOf(err), err
	case "events":
		stats := fs.Bool("stats", false, "print the container's stats once")
		interval := fs.Duration("interval", 5*time.Second, "how often to print stats")
		pos, err := parse(fs, args, 1)
		if err != nil {
			return 2, err
		}
		err = g.events(ctx, pos[0], *stats, *interval)
		return exitOf(err), err
	case "update":
		resources := fs.String("resources", "", "file of linux resources as JSON, - for stdin")
		memory := fs.String("memory", "", "memory limit in bytes")
		pids := fs.Int64("pids-limit", 0, "pids limit")
		pos, err := parse(fs, args, 1)
		if err != nil {
			return 2, err
		}
		err = g.update(pos[0], *resources, *memory, *pids)
		return exitOf(err), err
	case "exec":
		o := execFlags(fs)
		// Flags stand before the ID: what follows it is the command's.
		if err := fs.Parse(args); err != nil {
			return 2, err
		}
		return g.exec(ctx, fs.Args(), o)
	case "features":
		if _, err := parse(fs, args, 0); err != nil {
			return 2, err
		}
		return 0, printJSON(g.stdout, featuresDoc())
	case "spec":
		bundle := fs.String("bundle", ".", "where to write config.json")
		fs.StringVar(bundle, "b", ".", "short for --bundle")
		fs.Bool("rootless", false, "refused")
		if _, err := parse(fs, args, 0); err != nil {
			return 2, err
		}
		err := writeSpec(*bundle)
		return exitOf(err), err
	case "checkpoint", "restore":
		return 1, fmt.Errorf("%s: not supported: sandboxkit-runtime has no checkpoint/restore (CRIU)", name)
	case "--version", "version":
		fmt.Fprintf(g.stdout, "sandboxkit-runtime\nspec: %s\n", specs.Version)
		return 0, nil
	}
	return 2, fmt.Errorf("unknown command %q", name)
}

// exitOf is the exit status of a command's error.
func exitOf(err error) int {
	if err != nil {
		return 1
	}
	return 0
}

// parse parses fs's flags wherever they stand among args, as runc's
// command line does, and wants exactly n positional arguments.
func parse(fs *flag.FlagSet, args []string, n int) ([]string, error) {
	return parseRange(fs, args, n, n)
}

func parseRange(fs *flag.FlagSet, args []string, lo, hi int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) < lo || len(pos) > hi {
		want := strconv.Itoa(lo)
		if hi != lo {
			want += " or " + strconv.Itoa(hi)
		}
		return nil, fmt.Errorf("%s: want %s arguments (%s), got %d: %q", fs.Name(), want, usage[fs.Name()], len(pos), pos)
	}
	return pos, nil
}

var usage = map[string]string{
	"create": "ID", "run": "ID", "start": "ID", "state": "ID", "kill": "ID [SIGNAL]", "delete": "ID",
	"ps": "ID", "pause": "ID", "resume": "ID", "events": "ID", "update": "ID", "list": "none",
	"features": "none", "spec": "none",
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// createOpts are the flags of create and run.
type createOpts struct {
	bundle, pidFile, consoleSocket *string
}

func createFlags(fs *flag.FlagSet) createOpts {
	o := createOpts{
		bundle:        fs.String("bundle", ".", "the bundle directory"),
		pidFile:       fs.String("pid-file", "", "file to write the container's PID to"),
		consoleSocket: fs.String("console-socket", "", "AF_UNIX socket to send the pty master to"),
	}
	fs.StringVar(o.bundle, "b", ".", "short for --bundle")
	// runc flags that change nothing here: the sandbox always pivots and
	// always gets its own session keyring; no descriptor is passed on.
	fs.Bool("no-pivot", false, "ignored: the root is always pivoted")
	fs.Bool("no-new-keyring", false, "ignored: a session keyring of its own is always made")
	fs.Int("preserve-fds", 0, "refused unless 0")
	return o
}

// create makes the container id from its bundle, blocked before its
// program until start, and records it under the root.
func (g *globals) create(ctx context.Context, id string, o createOpts) (_ *oci.Container, err error) {
	if g.systemdCgroup {
		return nil, errors.New("--systemd-cgroup: there is no systemd on this host: give linux.cgroupsPath as a path")
	}
	bundle, err := filepath.Abs(*o.bundle)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(bundle, "config.json"), err)
	}
	if spec.Process == nil {
		// A bundle may leave process out; then start must fail (the
		// runtime-spec): the container is recorded, with nothing to run.
		return g.createEmpty(id, bundle, &spec)
	}
	// What the runtime does itself, rather than the sandbox: hooks, the
	// terminal and the default cgroup path.
	hooks := spec.Hooks
	spec.Hooks = nil
	terminal, consoleSize := spec.Process.Terminal, spec.Process.ConsoleSize
	spec.Process.Terminal, spec.Process.ConsoleSize = false, nil
	if terminal && *o.consoleSocket == "" {
		return nil, errors.New("process.terminal needs --console-socket")
	}
	if !terminal && *o.consoleSocket != "" {
		return nil, errors.New("--console-socket needs process.terminal")
	}
	if spec.Linux != nil {
		switch p := spec.Linux.CgroupsPath; {
		case p == "":
			// Not "sandboxkit-…": that is the package's own prefix, whose
			// cgroups Collect and the leak checks of its tests look for.
			spec.Linux.CgroupsPath = defaultCgroupParent + id
		case !strings.HasPrefix(p, "/") && strings.Count(p, ":") != 2:
			spec.Linux.CgroupsPath = "/" + p // relative: below the roots, as FromSpec reads it
		}
	}
	t0 := time.Now()
	sb, err := sandbox.FromSpec(&spec, bundle)
	if err != nil {
		return nil, err
	}
	g.debugf("create %s: spec read in %v", id, time.Since(t0))

	c, err := oci.New(g.root, id)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Remove())
		}
	}()
	if err := unix.Mkfifo(c.Gate(), 0o600); err != nil {
		return nil, &os.PathError{Op: "mkfifo", Path: c.Gate(), Err: err}
	}
	if terminal {
		// A pty of the container's own devpts, its master sent to the
		// socket by the container's child before the program runs.
		sock, err := filepath.Abs(*o.consoleSocket)
		if err != nil {
			return nil, err
		}
		var size sandbox.WindowSize
		if consoleSize != nil {
			size = sandbox.WindowSize{Rows: uint16(consoleSize.Height), Cols: uint16(consoleSize.Width)}
		}
		sb = sb.WithConsole(sock, size)
	} else {
		sb = sb.WithStdin(os.Stdin).WithStdout(os.Stdout).WithStderr(os.Stderr)
	}
	createRuntimeRan := false
	if hooks != nil && len(hooks.CreateContainer) > 0 {
		// Both before the pivot, as the runtime-spec orders them: the
		// createRuntime hooks in the runtime's namespaces, then the
		// createContainer ones in the container's, while its child waits.
		sb = sb.WithCreateHook(func(pid int) error {
			st := specs.State{Version: spec.Version, ID: id, Status: specs.StateCreating, Pid: pid, Bundle: bundle, Annotations: spec.Annotations}
			if err := oci.RunHooks(ctx, "createRuntime", hooks.CreateRuntime, st, false); err != nil {
				return err
			}
			createRuntimeRan = true
			start, err := oci.ProcessStart(pid)
			if err != nil {
				return err
			}
			cc := &oci.Container{ID: id, PID: pid, Start: start, Bundle: bundle, CgroupPath: spec.Linux.CgroupsPath}
			return runHooksInside(ctx, "createContainer", cc, &spec, st, hooks.CreateContainer)
		})
	}
	t0 = time.Now()
	pid, err := sb.StartDetached(ctx, c.Gate(), spec.Process.Args...)
	if err != nil {
		return nil, err
	}
	g.debugf("create %s: sandbox started in %v", id, time.Since(t0))
	t0 = time.Now()
	c.PID, c.Bundle, c.Created, c.CgroupPath, c.Annotations, c.Hooks = pid, bundle, time.Now().UTC(), spec.Linux.CgroupsPath, spec.Annotations, hooks
	c.Version = spec.Version
	defer func() {
		if err != nil {
			unix.Kill(pid, unix.SIGKILL)
			waitGone(pid, c.Start)
			err = errors.Join(err, sandbox.RemoveCgroup(c.CgroupPath))
		}
	}()
	if c.Start, err = oci.ProcessStart(pid); err != nil {
		return nil, err
	}
	// The sandbox is in the hierarchies it needs; the rest (freezer,
	// devices, the v2 mount of a hybrid host ...) so that others see it
	// under its cgroup path in each.
	if err := oci.JoinCgroups(pid, c.CgroupPath); err != nil {
		return nil, err
	}
	if err := c.Save(); err != nil {
		return nil, err
	}
	g.debugf("create %s: cgroups joined and state saved in %v", id, time.Since(t0))
	if hooks != nil {
		st := c.State()
		if !createRuntimeRan {
			if err := oci.RunHooks(ctx, "createRuntime", hooks.CreateRuntime, st, false); err != nil {
				return nil, err
			}
		}
		if !prestartAtStart(c.Version) {
			//lint:ignore SA1019 deprecated, and still what containerd sends
			if err := oci.RunHooks(ctx, "prestart", hooks.Prestart, st, false); err != nil {
				return nil, err
			}
		}
	}
	if *o.pidFile != "" {
		if err := writeFileAtomic(*o.pidFile, []byte(strconv.Itoa(pid))); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// prestartAtStart reports whether a spec of version v has its prestart
// hooks run by start, before the program: runtime-spec 1.0 says so ("after
// the start operation is called but before the user-specified program
// command is executed"); from 1.1 on they run in create, as runc runs
// them for every version.
func prestartAtStart(v string) bool {
	return strings.HasPrefix(v, "1.0.") || v == "1.0"
}

// createEmpty records a container whose spec has no process.
func (g *globals) createEmpty(id, bundle string, spec *specs.Spec) (*oci.Container, error) {
	if _, err := sandbox.FromSpec(withProcess(spec), bundle); err != nil {
		return nil, err // the rest of the spec must be valid all the same
	}
	c, err := oci.New(g.root, id)
	if err != nil {
		return nil, err
	}
	c.Bundle, c.Created, c.Annotations, c.Version, c.NoProcess = bundle, time.Now().UTC(), spec.Annotations, spec.Version, true
	if err := c.Save(); err != nil {
		return nil, errors.Join(err, c.Remove())
	}
	return c, nil
}

// withProcess returns a copy of spec with a process to check the rest by.
func withProcess(spec *specs.Spec) *specs.Spec {
	c := *spec
	c.Process = &specs.Process{Args: []string{"/"}, Cwd: "/", NoNewPrivileges: true}
	return &c
}

// writeFileAtomic writes path through a temporary file and a rename, so
// that a reader never sees it half written.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// start lets the created container's program run, by its gate.
func (g *globals) start(ctx context.Context, id string) error {
	c, err := oci.Load(g.root, id)
	if err != nil {
		return err
	}
	return g.startContainer(ctx, c, true)
}

// startContainer is start of the container c, as loaded or as create made
// it. With waitExec, or poststart hooks to run, it returns only once the
// program runs (the gated stub has executed it), so that a state or ps
// that follows sees the program; run, which waits for the program next,
// has no need to.
func (g *globals) startContainer(ctx context.Context, c *oci.Container, waitExec bool) error {
	switch st := c.Status(); {
	case c.NoProcess:
		return errors.New("cannot start a container whose config.json sets no process")
	case st == oci.Created:
	case st == oci.Stopped:
		return errors.New("cannot start a container that has stopped")
	default:
		return fmt.Errorf("cannot start a container that is %s", st)
	}
	if c.Hooks != nil && prestartAtStart(c.Version) {
		//lint:ignore SA1019 deprecated, and still what the conformance suite sends
		if err := oci.RunHooks(ctx, "prestart", c.Hooks.Prestart, c.State(), false); err != nil {
			return errors.Join(err, g.deleteContainer(ctx, c, true))
		}
	}
	if c.Hooks != nil && len(c.Hooks.StartContainer) > 0 {
		// In the container, before its program: a failure ends it
		// (runtime-spec), and start fails.
		if err := runStartContainerHooks(ctx, c, c.Hooks.StartContainer); err != nil {
			return errors.Join(err, g.deleteContainer(ctx, c, true))
		}
	}
	f, err := os.OpenFile(c.Gate(), os.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENXIO) {
		return errNotRunning // no reader: the process is gone
	}
	if err != nil {
		return err
	}
	_, err = f.Write([]byte{0})
	f.Close()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if err := os.Remove(c.Gate()); err != nil {
		return err
	}
	// Poststart hooks run once the program runs: once the gated stub has
	// executed it, and /proc/PID/exe is no longer the stub.
	if waitExec || c.Hooks != nil && len(c.Hooks.Poststart) > 0 {
		oci.WaitExec(c.PID, c.Start, 5*time.Second)
	}
	if c.Hooks != nil {
		// A failed poststart hook is only a warning (runtime-spec).
		// The state as of the start: running, even if a short program
		// has ended since.
		st := c.State()
		st.Status = specs.StateRunning
		if err := oci.RunHooks(ctx, "poststart", c.Hooks.Poststart, st, true); err != nil {
			g.logError(os.Stderr, fmt.Errorf("warning: %w", err))
		}
	}
	return nil
}

// runContainer is create and start; unless detach, it waits for the
// container to end, deletes it and returns its exit status.
func (g *globals) runContainer(ctx context.Context, id string, o createOpts, detach bool) (int, error) {
	c, err := g.create(ctx, id, o)
	if err != nil {
		return 1, err
	}
	// The container is the one create recorded: start needs no second
	// read of its state, nor delete after it.
	if err := g.startContainer(ctx, c, detach); err != nil {
		return 1, errors.Join(err, g.deleteContainer(ctx, c, true))
	}
	if detach {
		return 0, nil
	}
	var ws unix.WaitStatus
	for {
		_, err = unix.Wait4(c.PID, &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return 1, errors.Join(fmt.Errorf("wait for the container: %w", err), g.deleteContainer(ctx, c, true))
	}
	code := ws.ExitStatus()
	if ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	t0 := time.Now()
	err = g.deleteContainer(ctx, c, false)
	g.debugf("run %s: deleted in %v", id, time.Since(t0))
	return code, err
}

// signalContainer sends sig to the container's process, through a pidfd
// checked against its start time, so that a reused PID is never hit.
func signalContainer(c *oci.Container, sig syscall.Signal) error {
	fd, err := unix.PidfdOpen(c.PID, 0)
	if errors.Is(err, unix.ESRCH) {
		return errNotRunning
	}
	if err != nil {
		return os.NewSyscallError("pidfd_open", err)
	}
	defer unix.Close(fd)
	if !oci.ProcessAlive(c.PID, c.Start) {
		return errNotRunning
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return errNotRunning
		}
		return os.NewSyscallError("pidfd_send_signal", err)
	}
	return nil
}

func (g *globals) kill(id, sigName string, all bool) error {
	c, err := oci.Load(g.root, id)
	if err != nil {
		return err
	}
	sig, err := oci.ParseSignal(sigName)
	if err != nil {
		return err
	}
	if c.Status() == oci.Stopped {
		return errNotRunning
	}
	if !all {
		return signalContainer(c, sig)
	}
	pids, err := oci.CgroupPIDs(c.CgroupPath)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		unix.Kill(pid, sig) // one that ended meanwhile is no error
	}
	return nil
}

// waitGone waits, up to ten seconds, for the process to end (it is not
// necessarily this process's child: its pidfd says when).
func waitGone(pid int, start uint64) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return true
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(10 * time.Second)
	for oci.ProcessAlive(pid, start) {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		// Readable once it exited; a zombie is not alive either.
		unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(min(left, 100*time.Millisecond)/time.Millisecond))
	}
	return true
}

func (g *globals) delete(ctx context.Context, id string, force bool) error {
	c, err := oci.Load(g.root, id)
	if err != nil {
		return err
	}
	return g.deleteContainer(ctx, c, force)
}

// deleteContainer is delete of the container c, as loaded or as create
// made it.
func (g *globals) deleteContainer(ctx context.Context, c *oci.Container, force bool) error {
	id := c.ID
	switch st := c.Status(); st {
	case oci.Stopped:
	default:
		if !force {
			return fmt.Errorf("cannot delete container %s that is not stopped: %s", id, st)
		}
		if st == oci.Paused {
			oci.Freeze(c.CgroupPath, false)
		}
		signalContainer(c, unix.SIGKILL)
	}
	if !c.NoProcess && !waitGone(c.PID, c.Start) {
		return fmt.Errorf("delete %s: its process %d did not end after SIGKILL", id, c.PID)
	}
	var errs []error
	if c.Hooks != nil {
		// A failed poststop hook is only a warning (runtime-spec).
		if err := oci.RunHooks(ctx, "poststop", c.Hooks.Poststop, c.State(), true); err != nil {
			g.logError(os.Stderr, fmt.Errorf("warning: %w", err))
		}
	}
	if c.CgroupPath != "" {
		if !strings.HasPrefix(c.CgroupPath, "/") {
			c.CgroupPath = "/" + c.CgroupPath // recorded by an older create
		}
		errs = append(errs, sandbox.RemoveCgroup(c.CgroupPath))
		if strings.HasPrefix(c.CgroupPath, defaultCgroupParent) {
			// The parent this runtime made goes once it is empty; a
			// container created meanwhile keeps it (EBUSY), or makes it
			// again.
			oci.RemoveIfEmpty(defaultCgroupParent)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.Remove()
}

func (g *globals) list(format string, quiet bool) error {
	ids, err := oci.List(g.root)
	if err != nil {
		return err
	}
	type entry struct {
		specs.State
		Created time.Time `json:"created"`
		Owner   string    `json:"owner"`
	}
	var out []entry
	for _, id := range ids {
		c, err := oci.Load(g.root, id)
		if err != nil {
			continue // deleted meanwhile
		}
		out = append(out, entry{State: c.State(), Created: c.Created, Owner: "root"})
	}
	switch {
	case quiet:
		for _, e := range out {
			fmt.Fprintln(g.stdout, e.ID)
		}
		return nil
	case format == "json":
		if out == nil {
			out = []entry{}
		}
		return printJSON(g.stdout, out)
	case format != "table":
		return fmt.Errorf("--format %s: must be table or json", format)
	}
	w := tabwriter.NewWriter(g.stdout, 12, 1, 3, ' ', 0)
	fmt.Fprintln(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER")
	for _, e := range out {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", e.ID, e.Pid, e.Status, e.Bundle, e.Created.Format(time.RFC3339Nano), e.Owner)
	}
	return w.Flush()
}

// loadLive loads the container id, which must not have stopped: runc's
// "container not running" (containerd matches it) otherwise.
func (g *globals) loadLive(id string) (*oci.Container, error) {
	c, err := oci.Load(g.root, id)
	if err != nil {
		return nil, err
	}
	if c.Status() == oci.Stopped {
		return nil, errNotRunning
	}
	return c, nil
}

func (g *globals) ps(id, format string) error {
	c, err := g.loadLive(id)
	if err != nil {
		return err
	}
	pids, err := oci.CgroupPIDs(c.CgroupPath)
	if err != nil {
		return err
	}
	if format == "json" {
		if pids == nil {
			pids = []int{}
		}
		return printJSON(g.stdout, pids)
	}
	fmt.Fprintln(g.stdout, "PID\tCMD")
	for _, pid := range pids {
		cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		fmt.Fprintf(g.stdout, "%d\t%s\n", pid, strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "))
	}
	return nil
}

func (g *globals) freeze(id string, on bool) error {
	c, err := oci.Load(g.root, id)
	if err != nil {
		return err
	}
	switch st := c.Status(); {
	case st == oci.Stopped || st == oci.Created:
		return errNotRunning
	case on && st == oci.Paused:
		return fmt.Errorf("container %s is paused already", id)
	case !on && st != oci.Paused:
		return fmt.Errorf("container %s is not paused", id)
	}
	return oci.Freeze(c.CgroupPath, on)
}

func (g *globals) events(ctx context.Context, id string, once bool, interval time.Duration) error {
	for {
		c, err := g.loadLive(id)
		if err != nil {
			return err
		}
		st, err := oci.ReadStats(c.CgroupPath)
		if err != nil {
			return err
		}
		b, err := json.Marshal(map[string]any{"type": "stats", "id": id, "data": st})
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "%s\n", b)
		if once {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

func (g *globals) update(id, resources, memory string, pids int64) error {
	c, err := g.loadLive(id)
	if err != nil {
		return err
	}
	var r specs.LinuxResources
	switch resources {
	case "":
	case "-":
		if err := json.NewDecoder(os.Stdin).Decode(&r); err != nil {
			return fmt.Errorf("--resources -: %w", err)
		}
	default:
		b, err := os.ReadFile(resources)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("--resources %s: %w", resources, err)
		}
	}
	if memory != "" {
		n, err := strconv.ParseInt(memory, 10, 64)
		if err != nil {
			return fmt.Errorf("--memory %s: %w", memory, err)
		}
		r.Memory = &specs.LinuxMemory{Limit: &n}
	}
	if pids != 0 {
		r.Pids = &specs.LinuxPids{Limit: &pids}
	}
	return oci.Update(c.CgroupPath, &r)
}

// writeSpec writes a config.json to start from, as runc spec does: a
// sandbox's defaults for a root at rootfs, running sh.
func writeSpec(bundle string) error {
	path := filepath.Join(bundle, "config.json")
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists already", path)
	}
	spec, err := sandbox.New(sandbox.Dir("/rootfs")).WithInit(false).Spec("sh")
	if err != nil {
		return err
	}
	spec.Root.Path = "rootfs"
	spec.Annotations = nil
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
