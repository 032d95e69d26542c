package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// Instance is a sandbox that runs until its program ends or it is closed,
// made by [Sandbox.Start]: a database a test talks to, a server, a
// sandbox that idles for files to be put in and read back. Its methods
// are safe for concurrent use. The caller must call Close, which frees
// everything it holds; a caller that dies takes its instances along.
type Instance struct {
	sys instanceSys // the running sandbox, per OS

	mu       sync.Mutex
	res      *Result // guarded by mu; set once the program ended
	closed   bool    // guarded by mu
	closeErr error   // guarded by mu; Close's result
}

// Stats is what a running sandbox uses now.
type Stats struct {
	// Memory is the memory its processes use now, in bytes (page cache
	// of their files included); MemoryPeak the most they used at once.
	Memory, MemoryPeak int64
	// CPU is the CPU time of every process of the sandbox so far.
	CPU time.Duration
	// Processes is how many processes run in it (the init included).
	Processes int
	// RxBytes and TxBytes are what its eth0 received and sent, on a
	// Bridge network; zero for other networks.
	RxBytes, TxBytes uint64
}

// Start starts argv in a new sandbox as defined by s and returns once the
// program runs; without argv the sandbox runs no program and idles (its
// init only) until closed. ctx bounds the start only: the instance lives
// until its program ends, WithTimeout's limit passes (from the start), or
// Close. The errors are Run's.
func (s *Sandbox) Start(ctx context.Context, argv ...string) (*Instance, error) {
	if err := s.validateStart(ctx, argv, true); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sandbox: start: %w", err)
	}
	sys, err := s.start(ctx, argv)
	if err != nil {
		return nil, err
	}
	return &Instance{sys: sys}, nil
}

// Wait waits for the program to end and returns what it did, as Run does;
// for a sandbox with no program, it returns once Close killed it. ctx
// bounds the wait only: when it ends first, Wait returns its error and the
// sandbox runs on. Later calls return the same result.
func (in *Instance) Wait(ctx context.Context) (*Result, error) {
	if in == nil {
		return nil, ErrClosed
	}
	select {
	case <-in.sys.exited():
	case <-ctx.Done():
		return nil, fmt.Errorf("sandbox: wait: %w", ctx.Err())
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.resultLocked(), nil
}

// resultLocked collects the program's result once it ended; later calls
// return the same. Preconditions: in.mu is held and the program ended.
func (in *Instance) resultLocked() *Result {
	if in.res == nil {
		in.res = in.sys.result()
	}
	return in.res
}

// Close kills whatever of the sandbox still runs and frees everything it
// holds: its cgroup, its network, its mounts. It is idempotent and safe
// from any goroutine; later calls return the first call's error. After
// it, Wait returns the program's result (a program still running is
// killed by SIGKILL). An Instance of [Sandbox.Attach] is a handle: its
// Close releases the handle only, and the sandbox runs on.
func (in *Instance) Close() error {
	if in == nil {
		return nil
	}
	in.sys.kill()
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.closed && in.sys.attached() {
		in.closed = true // the sandbox runs on: see Attach
		in.closeErr = in.sys.close()
	}
	if !in.closed {
		in.closed = true
		res := in.resultLocked() // before the cgroup goes: its usage
		in.closeErr = in.sys.close()
		if in.closeErr != nil {
			// The program's result stays valid; the teardown's failure
			// goes with it, as with Run.
			res.TeardownErr = errors.Join(res.TeardownErr, in.closeErr)
		}
	}
	return in.closeErr
}

// usable returns ErrClosed for a nil Instance or one that was closed.
func (in *Instance) usable() error {
	if in == nil {
		return ErrClosed
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return ErrClosed
	}
	return nil
}

// IP returns the sandbox's address on its bridge, or the zero Addr for
// other networks.
func (in *Instance) IP() netip.Addr {
	if info := in.sys.network(); info != nil {
		return info.IP
	}
	return netip.Addr{}
}

// Ports returns the published ports, with the host ports chosen for 0
// filled in; nil without a bridge.
func (in *Instance) Ports() []PublishedPort {
	if info := in.sys.network(); info != nil {
		return info.Ports
	}
	return nil
}

// Signal sends sig to the sandbox's program, through the init, which
// sends it on (an idle sandbox's init ignores all but SIGKILL, which ends
// the sandbox). It returns ErrClosed once the sandbox has ended.
func (in *Instance) Signal(sig syscall.Signal) error {
	if in.usable() != nil || !in.sys.running() {
		return ErrClosed
	}
	if err := in.sys.signal(sig); err != nil {
		return fmt.Errorf("sandbox: signal %s: %w", signalName(sig), err)
	}
	return nil
}

// ReadFile returns the contents of the regular file path (absolute, as the
// sandbox sees it) in the running sandbox. path is resolved inside the
// sandbox's root: no symbolic link planted in it, and no race while it
// reads, makes the host read a file of its own. It returns ErrClosed once
// the sandbox has ended.
func (in *Instance) ReadFile(path string) ([]byte, error) {
	if reason := checkSandboxPath(path); reason != "" {
		return nil, &ConfigError{Problems: []*FieldError{{Field: "path", Value: path, Reason: reason}}}
	}
	if err := in.usable(); err != nil {
		return nil, err
	}
	b, err := in.sys.readFile(path)
	if err != nil && !errors.Is(err, ErrClosed) {
		return nil, fmt.Errorf("sandbox: read file: %w", err)
	}
	return b, err
}

// WriteFile creates or replaces the regular file path (absolute, as the
// sandbox sees it) in the running sandbox with data and the permission
// bits mode, owned by the sandbox's user (see WithUser). Its directory must
// exist. path is resolved as ReadFile resolves it; a symbolic link at path
// itself is not followed. It returns ErrClosed once the sandbox has ended.
func (in *Instance) WriteFile(path string, data []byte, mode fs.FileMode) error {
	if reason := checkMountTarget(path); reason != "" {
		return &ConfigError{Problems: []*FieldError{{Field: "path", Value: path, Reason: reason}}}
	}
	if err := in.usable(); err != nil {
		return err
	}
	err := in.sys.writeFile(path, data, mode)
	if err != nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("sandbox: write file: %w", err)
	}
	return err
}

// Stats returns what the running sandbox uses now: memory, CPU, its
// processes and, on a bridge, its network traffic. It returns ErrClosed
// once the sandbox has ended.
func (in *Instance) Stats() (*Stats, error) {
	if err := in.usable(); err != nil {
		return nil, err
	}
	st, err := in.sys.stats()
	if err != nil && !errors.Is(err, ErrClosed) {
		return nil, fmt.Errorf("sandbox: stats: %w", err)
	}
	return st, err
}

// WaitPort returns once a process of the sandbox listens on TCP port
// (IPv4 or IPv6), as the sandbox's own network namespace reports it: the
// host reads it, and nothing runs in the sandbox to ask. ctx bounds the
// wait; it returns ErrClosed if the sandbox ends first. port is the port
// inside the sandbox (not a published host port).
func (in *Instance) WaitPort(ctx context.Context, port int) error {
	if port <= 0 || port > 65535 {
		return &ConfigError{Problems: []*FieldError{{Field: "port", Value: port, Reason: "must be 1 to 65535"}}}
	}
	if err := in.usable(); err != nil {
		return err
	}
	if err := in.sys.waitPort(ctx, port); err != nil {
		if errors.Is(err, ErrClosed) {
			return err
		}
		return fmt.Errorf("sandbox: wait for port %d: %w", port, err)
	}
	return nil
}

// Pause freezes every process of the sandbox (the cgroup freezer: v2's
// cgroup.freeze, or v1's freezer hierarchy) and returns once they are
// frozen: they use no CPU until Resume, and keep their memory. An Exec
// or a file copy into a paused sandbox waits for Resume; Close and the
// timeout still end it. ctx bounds the wait. It returns ErrClosed once
// the sandbox has ended.
func (in *Instance) Pause(ctx context.Context) error {
	return in.freeze(ctx, "pause", in.sys.pause)
}

// Resume thaws what Pause froze; resuming a sandbox that is not paused
// does nothing. ctx bounds the wait. It returns ErrClosed once the
// sandbox has ended.
func (in *Instance) Resume(ctx context.Context) error {
	return in.freeze(ctx, "resume", in.sys.resume)
}

func (in *Instance) freeze(ctx context.Context, op string, fn func(context.Context) error) error {
	if ctx == nil {
		return &ConfigError{Problems: []*FieldError{{Field: "ctx", Value: nil, Reason: "must not be nil"}}}
	}
	if err := in.usable(); err != nil {
		return err
	}
	if err := fn(ctx); err != nil {
		if errors.Is(err, ErrClosed) {
			return err
		}
		return fmt.Errorf("sandbox: %s: %w", op, err)
	}
	return nil
}
