package sandbox

import (
	"context"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"
)

// DefaultPath is the PATH a sandboxed program gets unless WithEnv sets one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultHostname is the sandbox's host name unless WithHostname sets one.
const DefaultHostname = "sandbox"

// DefaultOutputLimit is how many bytes of each of stdout and stderr a
// [Result] keeps when WithOutputLimit is not called: 1 MiB.
const DefaultOutputLimit = 1 << 20

// Sandbox is an immutable definition of a sandbox: its root file system,
// limits, environment and I/O. Every With method returns a changed copy and
// leaves its receiver untouched, so one Sandbox can serve as a template that
// many goroutines derive from and run at the same time.
//
// A With method given a bad value records the problem and returns; Validate,
// Run reports every recorded problem at once as a [*ConfigError].
type Sandbox struct {
	root         rootSpec
	console      *console            // WithConsole; nil: standard I/O as set
	createHook   func(pid int) error // WithCreateHook; nil: none
	memory       int64               // bytes; 0: no limit
	cpu          Cores               // 0: no limit
	pids         int                 // 0: no limit
	timeout      time.Duration
	env          []string
	workdir      string
	workdirSet   bool // WithWorkdir was called: an image's WorkingDir yields
	hostname     string
	uid, gid     int
	userSet      bool // WithUser was called: an image's User yields
	stdin        io.Reader
	stdout       io.Writer
	stderr       io.Writer
	outputLimit  int64
	network      Network
	ports        []PublishedPort
	mounts       []mount // binds and tmpfs, in call order
	files        []file
	init         bool  // a small init is PID 1, the program its child
	readOnly     bool  // the root is remounted read only before the exec
	scratchSize  int64 // bytes of the writable layer and of /tmp each; 0: the default
	writableProc bool
	caps         []int
	capsSet      bool
	rlimits      map[Rlimit][2]uint64             // copied on write
	seccomp      *compiledFilter                  // shared by copies; compiled once
	userns       *idMap                           // nil: no user namespace
	bare         bool                             // no hardening at all: only for measuring its cost
	newPrivs     bool                             // no no_new_privs: an OCI spec's noNewPrivileges false (FromSpec)
	cgroupPath   string                           // an OCI spec's cgroupsPath; "": a cgroup named after the caller
	capSets      *capSets                         // an OCI spec's five capability sets; nil: caps alone
	mqueue       bool                             // an OCI spec's mqueue mount on /dev/mqueue
	rootInPlace  bool                             // an OCI spec's root: written in place, no overlay
	oci          ociExtras                        // the rest of an OCI spec that FromSpec honours; copied on write
	trace        func(steps []string, ns []int64) // receives the child's per-step times: only for profiling
	problems     []*FieldError
}

// New returns a definition of a sandbox on root, with the defaults: no
// resource limits, no network but loopback, host name "sandbox", working
// directory "/", user root (of the sandbox), PATH set to [DefaultPath] and no
// other environment, stdin empty, and stdout and stderr captured in the
// [Result] up to [DefaultOutputLimit] bytes each. It is hardened by
// default: [DefaultCapabilities] only, no_new_privs, the
// [DefaultSeccompProfile] filter, masked and read-only kernel files in /proc
// and /sys, and RLIMIT_NOFILE 1024 and RLIMIT_CORE 0. New does no I/O and
// never fails; a bad root is reported by Validate.
func New(root Root) *Sandbox {
	return &Sandbox{
		root:        specOf(root),
		hostname:    DefaultHostname,
		workdir:     "/",
		outputLimit: DefaultOutputLimit,
		seccomp:     defaultFilter,
		network:     NoNetwork(),
		init:        true,
	}
}

// clone copies s so that appends on the copy never reach s's arrays.
func (s *Sandbox) clone() *Sandbox {
	c := *s
	c.env = slices.Clone(s.env)
	c.mounts = slices.Clone(s.mounts)
	c.ports = slices.Clone(s.ports)
	c.files = slices.Clone(s.files)
	c.caps = slices.Clone(s.caps)
	c.capSets = s.capSets.clone()
	c.oci = s.oci.clone()
	c.problems = slices.Clone(s.problems)
	return &c
}

func (s *Sandbox) invalid(field string, value any, reason string) {
	s.problems = append(s.problems, &FieldError{Field: field, Value: value, Reason: reason})
}

// WithTimeout returns a copy of s whose runs are killed, with every process
// in them, after d of wall-clock time. Hitting it is an outcome, reported as
// Result.TimedOut, not an error. d must be positive; the last call wins. By
// default only the ctx given to Run bounds a run.
func (s *Sandbox) WithTimeout(d time.Duration) *Sandbox {
	c := s.clone()
	if d <= 0 {
		c.invalid("timeout", d, "must be positive")
		return c
	}
	c.timeout = d
	return c
}

// WithEnv returns a copy of s with the environment variables kv, each
// "KEY=value", appended to those set before. A later value for a key wins.
// Setting PATH replaces [DefaultPath]. Nothing of the caller's own
// environment reaches the sandbox.
func (s *Sandbox) WithEnv(kv ...string) *Sandbox {
	c := s.clone()
	for _, e := range kv {
		if reason := checkEnvEntry(e); reason != "" {
			c.invalid("env", e, reason)
			continue
		}
		c.env = append(c.env, e)
	}
	return c
}

// WithWorkdir returns a copy of s whose program starts in dir, an absolute
// path inside the sandbox; it is created if missing. The last call wins; the
// default is "/", or an [*Image]'s WorkingDir.
func (s *Sandbox) WithWorkdir(dir string) *Sandbox {
	c := s.clone()
	if reason := checkSandboxPath(dir); reason != "" {
		c.invalid("workdir", dir, reason)
		return c
	}
	c.workdir, c.workdirSet = path.Clean(dir), true
	return c
}

// WithHostname returns a copy of s whose host name (in its own UTS
// namespace) is name: 1 to 64 characters, dot-separated labels of letters,
// digits and inner '-'. The last call
// wins; the default is [DefaultHostname].
func (s *Sandbox) WithHostname(name string) *Sandbox {
	c := s.clone()
	if reason := checkHostname(name); reason != "" {
		c.invalid("hostname", name, reason)
		return c
	}
	c.hostname = name
	return c
}

// checkHostname returns why name cannot be a host name, or "". The rule is
// the one /etc/hosts and DNS need (RFC 1123 labels), within the kernel's 64
// bytes; a bridge writes the name into the sandbox's /etc/hosts.
func checkHostname(name string) string {
	if name == "" || len(name) > 64 {
		return "must be 1 to 64 characters"
	}
	label := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			label++
		case c == '-' && label > 0 && i+1 < len(name) && name[i+1] != '.':
			label++
		case c == '.' && label > 0 && i+1 < len(name):
			label = 0
		default:
			return "must be dot-separated labels of letters, digits and inner '-'"
		}
	}
	return ""
}

// WithUser returns a copy of s whose program runs as uid and gid (as seen
// inside the sandbox) with no supplementary groups. Both must be between 0
// and 2^32-2; the last call wins. The default is root of the sandbox, or an [*Image]'s User.
func (s *Sandbox) WithUser(uid, gid int) *Sandbox {
	c := s.clone()
	ok := true
	if reason := checkID(uid); reason != "" {
		c.invalid("uid", uid, reason)
		ok = false
	}
	if reason := checkID(gid); reason != "" {
		c.invalid("gid", gid, reason)
		ok = false
	}
	if ok {
		c.uid, c.gid, c.userSet = uid, gid, true
	}
	return c
}

// WithStdin returns a copy of s whose program reads r as its standard
// input. An *os.File is handed to the program directly: Run duplicates it
// as it starts, so keep it open until Run has returned (a file closed
// before is an error naming it); any other reader is
// copied through a pipe by a goroutine, which Run does not wait for: a
// reader that never ends (a connection, say) does not hold Run up, and the
// goroutine ends at its next Read that returns. The last call wins; by
// default stdin is empty (/dev/null).
func (s *Sandbox) WithStdin(r io.Reader) *Sandbox {
	c := s.clone()
	c.stdin = r
	return c
}

// WithStdout returns a copy of s whose program's standard output goes to w
// instead of Result.Stdout. An *os.File is handed to the program directly
// (keep it open until Run has returned, as with WithStdin); any other writer is fed through a pipe, and Run returns only after every
// byte was written to it. The last call wins; nil restores capturing.
func (s *Sandbox) WithStdout(w io.Writer) *Sandbox {
	c := s.clone()
	c.stdout = w
	return c
}

// WithStderr is WithStdout for standard error and Result.Stderr.
func (s *Sandbox) WithStderr(w io.Writer) *Sandbox {
	c := s.clone()
	c.stderr = w
	return c
}

// WithOutputLimit returns a copy of s that keeps at most bytes of each of
// stdout and stderr in its [Result]; further output is read and dropped, and
// Result.StdoutTruncated or StderrTruncated is set. It does not apply to
// writers given to WithStdout or WithStderr. bytes must not be negative; the
// last call wins; the default is [DefaultOutputLimit].
func (s *Sandbox) WithOutputLimit(bytes int64) *Sandbox {
	c := s.clone()
	if bytes < 0 {
		c.invalid("output limit", bytes, "must not be negative")
		return c
	}
	c.outputLimit = bytes
	return c
}

// WithNetwork returns a copy of s with the network n: [NoNetwork] (the
// default: a private namespace with only loopback, up), [HostNetwork], or
// [Bridge] (its own address on a shared bridge). The last call wins.
func (s *Sandbox) WithNetwork(n Network) *Sandbox {
	c := s.clone()
	if n.kind == networkUnset {
		c.invalid("network", "zero Network", "must be made by NoNetwork, HostNetwork or Bridge")
		return c
	}
	c.network = n
	return c
}

// WithInit returns a copy of s with or without the init, a small program
// (a few hundred bytes of machine code, run from a sealed memfd) that is
// PID 1 of the sandbox and runs the program as its child, as
// `docker run --init` does. It is on by default: the kernel protects a PID
// namespace's first process from signals it has no handler for, so a
// program that were PID 1 could not abort() (the run would report SIGSEGV),
// would ignore its own SIGTERM and would collect zombies. The init sends
// every signal it gets on to the program, reaps orphans, and reports the
// program's own exit status or signal; when the program ends, the sandbox
// ends with every process left in it. The init counts as one process
// against WithPids. WithInit(false) makes the program PID 1 itself, which
// saves a fork per run (see BENCHMARKS.md). The last call wins.
func (s *Sandbox) WithInit(on bool) *Sandbox {
	c := s.clone()
	c.init = on
	return c
}

// Validate reports every problem in the definition as one [*ConfigError]
// (which matches [ErrInvalidConfig]), or nil. It checks only the definition;
// what needs the host (does the root exist, is a controller available) is
// checked by Run.
func (s *Sandbox) Validate() error {
	problems := slices.Clone(s.problems)
	if reason := s.root.check(); reason != "" {
		problems = append([]*FieldError{{Field: "root", Value: s.root, Reason: reason}}, problems...)
	}
	problems = append(problems, s.imageProblems()...)
	problems = append(problems, s.checkTargets()...)
	problems = append(problems, s.checkUserNamespace()...)
	problems = append(problems, s.checkNetwork()...)
	problems = append(problems, s.checkConsole()...)
	if len(problems) == 0 {
		return nil
	}
	return &ConfigError{Problems: problems}
}

// validateRun checks what Run receives besides the definition.
func (s *Sandbox) validateRun(ctx context.Context, argv []string) error {
	return s.validateStart(ctx, argv, false)
}

// validateStart checks what Run and Start receive besides the definition;
// idleOK lets argv be empty (Start), which needs the init.
func (s *Sandbox) validateStart(ctx context.Context, argv []string, idleOK bool) error {
	err := s.Validate()
	var problems []*FieldError
	if err != nil {
		problems = err.(*ConfigError).Problems
	}
	if len(argv) == 0 && idleOK && !s.init {
		problems = append(problems, &FieldError{Field: "argv", Value: argv, Reason: "must name a command: a sandbox with no program needs the init (WithInit(true))"})
	}
	problems = append(problems, checkCall(ctx, argv, idleOK)...)
	if len(problems) == 0 {
		return nil
	}
	return &ConfigError{Problems: problems}
}

// checkCall returns the problems of a call's ctx and argv; idleOK lets
// argv be empty.
func checkCall(ctx context.Context, argv []string, idleOK bool) []*FieldError {
	var problems []*FieldError
	if ctx == nil {
		problems = append(problems, &FieldError{Field: "ctx", Value: nil, Reason: "must not be nil"})
	}
	switch {
	case len(argv) == 0 && idleOK:
	case len(argv) == 0:
		problems = append(problems, &FieldError{Field: "argv", Value: argv, Reason: "must name a command"})
	case argv[0] == "":
		problems = append(problems, &FieldError{Field: "argv", Value: fmt.Sprintf("%q", argv), Reason: "command must not be empty"})
	}
	for _, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			problems = append(problems, &FieldError{Field: "argv", Value: a, Reason: "must not contain a NUL byte"})
		}
	}
	return problems
}

// checkSandboxPath returns why p is not a usable absolute path inside the
// sandbox, or "".
func checkSandboxPath(p string) string {
	switch {
	case p == "":
		return "must not be empty"
	case !path.IsAbs(p):
		return "must be an absolute path"
	case strings.IndexByte(p, 0) >= 0:
		return "must not contain a NUL byte"
	}
	return ""
}

// Result is what a run of a sandboxed program did. It is returned whenever
// the program started, even if it then failed, timed out or was killed:
// the program's outcome is data, not an error.
type Result struct {
	// ExitCode is the program's exit status, or -1 if a signal killed it.
	ExitCode int
	// Signal is the signal that killed the program, or 0 when it exited
	// (syscall.Signal prints 0 as "signal 0": String says "exit N").
	Signal syscall.Signal
	// Stdout and Stderr hold what the program wrote, up to the output
	// limit, when no writer was set for them.
	Stdout, Stderr []byte
	// StdoutTruncated and StderrTruncated report that output beyond the
	// limit was dropped.
	StdoutTruncated, StderrTruncated bool
	// TimedOut reports that WithTimeout's limit ended the run.
	TimedOut bool
	// OOMKilled reports that the kernel killed a process of the sandbox
	// because it reached the memory limit.
	OOMKilled bool
	// Wall is the time from the start of the program to its end.
	Wall time.Duration
	// CPU is the user and system CPU time of every process of the sandbox.
	CPU time.Duration
	// MemoryPeak is the most memory, in bytes, that the sandbox's processes
	// used at once (page cache of their files included, as the kernel
	// counts it).
	MemoryPeak int64
	// Network is the sandbox's address, gateway and published ports on a
	// Bridge network; nil for other networks.
	Network *NetworkInfo
	// TeardownErr, when not nil, says what could not be done after the
	// program ended: reading its usage (CPU and MemoryPeak are then zero),
	// removing its cgroup or detaching its network. The program's outcome
	// above is valid all the same, and Run's error stays nil for it: log
	// it, and call Collect to remove what was left.
	TeardownErr error
}

// String sums the outcome up in a line, such as "exit 0",
// "killed by SIGABRT", "killed by SIGKILL (timed out)" or "exit 1 (out of
// memory)", for logs and messages.
func (r *Result) String() string {
	if r == nil {
		return "no result"
	}
	out := fmt.Sprintf("exit %d", r.ExitCode)
	if r.Signal != 0 {
		out = "killed by " + signalName(r.Signal)
	}
	var why []string
	if r.TimedOut {
		why = append(why, "timed out")
	}
	if r.OOMKilled {
		why = append(why, "out of memory")
	}
	if r.StdoutTruncated || r.StderrTruncated {
		why = append(why, "output truncated")
	}
	if len(why) > 0 {
		out += " (" + strings.Join(why, ", ") + ")"
	}
	return out
}

// Run starts argv in a new sandbox as defined by s, waits for it to end,
// and tears the sandbox down: when Run returns, on every path, no process,
// mount, cgroup or file descriptor of the sandbox remains. ctx bounds the
// whole run; when it ends first, every process is killed and the error
// matches ctx.Err().
//
// argv[0] is looked up in the sandbox's PATH unless it contains a slash.
// On an [*Image], an empty argv runs the image's command (see
// [Image.Command]).
//
// The error is nil whenever the program ran, whatever its outcome (see
// [Result]), and even when releasing what the run held failed afterwards
// (see Result.TeardownErr). Otherwise it matches [ErrInvalidConfig] for a bad definition,
// fs.ErrPermission when the caller lacks the privileges (root),
// fs.ErrNotExist for a missing root or command, errors.ErrUnsupported for a
// kernel or OS without the needed features, or names the operation and path
// that failed.
func (s *Sandbox) Run(ctx context.Context, argv ...string) (*Result, error) {
	argv = s.imageArgv(argv)
	if err := s.validateRun(ctx, argv); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sandbox: run: %w", err)
	}
	return s.run(ctx, argv)
}
