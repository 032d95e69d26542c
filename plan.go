package sandbox

import (
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sandboxkit/sandbox/internal/netsetup"
)

// plan is one run of a definition with every default applied and every
// decision made: the environment and where the command is looked for, the
// capabilities and limits, the mounts in the order they are made, and how
// the child reaches its network. The Linux code builds the sandbox from a
// plan alone, never from a Sandbox's fields, so that every choice below is
// made here, once; an image's config or an OCI spec can be turned into the
// same fields.
type plan struct {
	argv  []string // empty for a sandbox that idles (Start without argv)
	paths []string // where argv[0] is looked for, in order
	env   []string // the whole environment, PATH included

	root         rootSpec
	hostname     string
	workdir      string
	uid, gid     int
	mounts       []mount // binds and tmpfs mounts, parents first
	files        []file
	readOnly     bool
	writableProc bool
	scratch      int64 // bytes the writable layer, and /tmp, may hold

	limits  limits
	timeout time.Duration // 0: none

	stdin       io.Reader
	stdout      io.Writer
	stderr      io.Writer
	outputLimit int64
	watchOutput bool     // the host watches the output for ForOutput (an instance)
	outputKill  bool     // kill the sandbox once its output passes the limit
	console     *console // a terminal of the sandbox's devpts as its stdio, its master sent away; nil: none
	// createHook is called while the child waits before pivot_root, on
	// the pipes of createPause (set by acquire); nil: none.
	createHook  func(pid int) error
	createPause *createPause

	hardened bool // capabilities, no_new_privs, rlimits, seccomp, masks
	caps     []int
	rlimits  []rlimit
	seccomp  *compiledFilter
	init     bool // the init is PID 1, the program its child

	userns *idMap // nil: no user namespace
	net    netPlan

	// newPrivs: no no_new_privs (an OCI spec's noNewPrivileges false);
	// the seccomp filter then goes on before the capabilities are dropped.
	newPrivs bool
	// capSets, when set, are the five capability sets (FromSpec); caps
	// is then their bounding set.
	capSets *capSets
	// mqueue: a POSIX message queue file system on /dev/mqueue.
	mqueue bool
	// rootInPlace: the root directory is bound as the root, writable
	// unless readOnly, instead of under a throw-away overlay (FromSpec).
	rootInPlace bool
	// The rest of an OCI spec's process and linux sections (see
	// ocispec_linux.go).
	oci ociExtras
	// cgroupPath names the cgroup below each hierarchy's root (an OCI
	// spec's cgroupsPath); "": one named after the caller.
	cgroupPath string
	// detached: the sandbox outlives its caller (StartDetached). Its
	// gated stub waits on the FIFO gate before it executes the program,
	// which is PID 1 (there is no init); nothing watches or reaps it.
	detached bool
	gate     string

	trace func(steps []string, ns []int64) // profiling only

	// hold, for a Pool's sandbox, makes the init wait for the argv a run
	// sends it before it forks the program (see pool_linux.go); nil
	// otherwise.
	hold *heldExec
}

// heldExec is what a Pool's init waits with: the read end of the pipe
// that releases it and the file its request is read from.
type heldExec struct{ release, request int }

// netPlan is how a run gets its network, decided once.
type netPlan struct {
	kind   networkKind
	bridge netsetup.Config // for a bridge
	// newNetns: the clone makes the sandbox's network namespace, whose lo
	// the child brings up. A bridge's namespace is made before the clone,
	// so that the host can wire it meanwhile; the host network has none.
	newNetns bool
	// bornIn: the child is cloned in the bridge's namespace rather than
	// joining it with setns, which a child in a new user namespace may
	// not do for a namespace that the host's user namespace owns.
	bornIn bool
	// parentSysfs: the parent makes the sandbox's /sys, which a user
	// namespace may not mount for a network namespace it does not own
	// (the host's, or a bridge's).
	parentSysfs bool
	// etcInUpper: the network's /etc files go into the overlay's upper
	// layer before the overlay is mounted, since the base's /etc belongs
	// to a host user that the user namespace does not map.
	etcInUpper bool
}

// plan makes the plan of a run of argv. The definition must be valid.
func (s *Sandbox) plan(argv []string) *plan {
	env := s.environ()
	var paths []string
	if len(argv) > 0 {
		paths = commandPaths(argv[0], env)
	}
	workdir, uid, gid := s.identity()
	pl := &plan{
		argv:         argv,
		paths:        paths,
		env:          env,
		root:         s.root,
		hostname:     s.hostname,
		workdir:      workdir,
		uid:          uid,
		gid:          gid,
		mounts:       parentsFirst(s.mounts),
		files:        s.files,
		readOnly:     s.readOnly,
		writableProc: s.writableProc,
		scratch:      s.scratchBytes(),
		limits:       s.limits(),
		timeout:      s.timeout,
		stdin:        s.stdin,
		stdout:       s.stdout,
		stderr:       s.stderr,
		outputLimit:  s.outputLimit,
		console:      s.console,
		createHook:   s.createHook,
		hardened:     !s.bare,
		caps:         s.capabilities(),
		rlimits:      s.rlimitSet(),
		seccomp:      s.seccomp,
		init:         s.init,
		userns:       s.userns,
		trace:        s.trace,
		newPrivs:     s.newPrivs,
		capSets:      s.capSets,
		mqueue:       s.mqueue,
		rootInPlace:  s.rootInPlace,
		oci:          s.oci,
		cgroupPath:   s.cgroupPath,
	}
	userns := s.userns != nil
	pl.net = netPlan{
		kind:        s.network.kind,
		newNetns:    s.network.kind == networkNone,
		bornIn:      userns && s.network.kind == networkBridge,
		parentSysfs: userns && s.network.kind != networkNone,
		etcInUpper:  userns && s.network.kind == networkBridge,
	}
	if s.network.kind == networkBridge {
		pl.net.bridge = s.bridgeConfig()
	}
	return pl
}

// parentsFirst returns mounts ordered so that a mount comes after every
// mount its target lies in (fewer path components first), keeping the
// order of the calls otherwise.
func parentsFirst(mounts []mount) []mount {
	out := slices.Clone(mounts)
	slices.SortStableFunc(out, func(a, b mount) int {
		return strings.Count(a.target, "/") - strings.Count(b.target, "/")
	})
	return out
}

// name returns the command, for messages: argv[0], or "idle sandbox".
func (pl *plan) name() string {
	if len(pl.argv) == 0 {
		return "idle sandbox"
	}
	return pl.argv[0]
}
