package sandbox

import (
	"encoding/binary"
	"fmt"
	"math"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/execstub"
	"github.com/sandboxkit/sandbox/internal/seccomp"
	"github.com/sandboxkit/sandbox/internal/spawn"
)

// cloneFlags are the namespaces every sandbox gets at clone time. The
// cgroup namespace is unshared by the child once it is in its cgroup, so
// that the cgroup is the namespace's root.
func (pl *plan) cloneFlags() uintptr {
	flags := uintptr(unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if pl.net.newNetns {
		flags |= unix.CLONE_NEWNET
	}
	if pl.userns != nil {
		flags |= unix.CLONE_NEWUSER
	}
	return flags &^ pl.joinFlags()
}

// addPrelude appends what the child does first: die with the caller; in a
// user namespace, wait for its ID maps; open the root (unless root is "")
// in its own mount namespace at rootFD; become the user namespace's root;
// join its cgroup (v1; on v2 it is born in it), take a cgroup namespace
// rooted there, and leave the caller's session.
func addPrelude(p *spawn.Program, cgroupProcs []int, release int, root string, rootFD int, netnsFD int) {
	addDieWithCaller(p) // first: a caller that dies while the child waits takes it along
	if release >= 0 {
		p.WaitByte(spawn.Step{Op: "wait for the parent", Path: "user namespace ID maps, or a copy's start"}, release)
		p.CloseFD(release)
	}
	// A session keyring of its own: the caller's keys stay out of reach
	// even of a profile that allows keyctl. Made while the child is still
	// the host's root, so that it counts against root's key quota and not
	// against the mapped user's 200 keys.
	p.Syscall(spawn.Step{Op: "keyctl", Path: "join a new session keyring"}, unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0)
	if root != "" {
		// Still as the host's root, whose directories these may be.
		p.OpenAs(root, unix.O_PATH|unix.O_DIRECTORY, rootFD, spawn.Reg(0))
	}
	if release >= 0 {
		// Become the namespace's root: until now the child's IDs are the
		// host's root, which the namespace does not map.
		addSetIDs(p, 0, 0)
	}
	for _, fd := range cgroupProcs {
		p.Write(spawn.Step{Op: "join cgroup", Path: fmt.Sprint("fd ", fd)}, fd, []byte("0"))
		p.CloseFD(fd)
	}
	p.Syscall(spawn.Step{Op: "unshare", Path: "cgroup namespace"}, unix.SYS_UNSHARE, unix.CLONE_NEWCGROUP)
	if netnsFD >= 0 {
		p.Syscall(spawn.Step{Op: "setns", Path: "bridge network namespace"}, unix.SYS_SETNS, uintptr(netnsFD), unix.CLONE_NEWNET)
		p.CloseFD(netnsFD)
	}
	p.Syscall(spawn.Step{Op: "setsid"}, unix.SYS_SETSID)
	p.Syscall(spawn.Step{Op: "umask"}, unix.SYS_UMASK, 0)
}

// addLoopbackUp appends the ops that bring up lo, the only interface of a
// new network namespace, which starts down.
func addLoopbackUp(p *spawn.Program) {
	const r = spawn.Reg(0)
	var ifr [unix.IFNAMSIZ + 24]byte
	copy(ifr[:], "lo")
	binary.NativeEndian.PutUint16(ifr[unix.IFNAMSIZ:], unix.IFF_UP|unix.IFF_LOOPBACK)
	p.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0, r)
	p.SyscallReg(spawn.Step{Op: "set link up", Path: "lo"}, unix.SYS_IOCTL, r, 0, 0, unix.SIOCSIFFLAGS, p.Bytes(ifr[:]))
	p.Close(r)
}

// addSetIDs appends the ops that make the child uid and gid, with no
// supplementary groups. The kernel forgets the parent-death signal when a
// process's IDs change, so it is set again after.
func addSetIDs(p *spawn.Program, uid, gid int) {
	p.Syscall(spawn.Step{Op: "setgroups"}, unix.SYS_SETGROUPS, 0, 0)
	p.Syscall(spawn.Step{Op: "setresgid", Path: fmt.Sprint(gid)}, unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid))
	p.Syscall(spawn.Step{Op: "setresuid", Path: fmt.Sprint(uid)}, unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid))
	addDieWithCaller(p)
}

// addDieWithCaller appends the op that has the kernel kill the child when
// the thread that cloned it ends (PR_SET_PDEATHSIG): a caller that crashes
// takes its sandboxes along.
func addDieWithCaller(p *spawn.Program) {
	p.Syscall(spawn.Step{Op: "prctl", Path: "PR_SET_PDEATHSIG"}, unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL))
}

// addExec appends the last ops: resource limits, the capability bounding
// set, the sandbox's user, its capabilities, no_new_privs, only the three
// standard descriptors, the seccomp filter, and the exec of the command,
// trying each candidate path in turn through the exec stub. A bare
// sandbox (only for measuring what hardening costs) skips the limits,
// capabilities, no_new_privs and seccomp.
func (pl *plan) addExec(p *spawn.Program, x execSetup) {
	if pl.hardened {
		pl.addRlimits(p)
		addDropBounding(p, pl.caps, x.lastCap)
	}
	if pl.newPrivs {
		// Without no_new_privs, installing a filter needs CAP_SYS_ADMIN
		// in the effective set, which the change of user and capset
		// take away: the filter goes on before them, as in runc, once the
		// descriptors (whose calls an OCI profile may not allow) are set.
		addDescriptors(p, x)
		if pl.hardened {
			addSeccomp(p, x.filter)
		}
	}
	pl.addKeepCaps(p)
	// Always: it also drops the supplementary groups of the caller.
	if len(pl.oci.groups) > 0 {
		addSetIDsGroups(p, pl.uid, pl.gid, pl.oci.groups)
	} else {
		addSetIDs(p, pl.uid, pl.gid)
	}
	if x.outlive {
		// A detached command's: it must survive its caller, whose
		// thread setting the IDs tied it to again.
		p.Syscall(spawn.Step{Op: "prctl", Path: "PR_SET_PDEATHSIG 0"}, unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, 0)
	}
	if pl.hardened {
		if pl.capSets != nil {
			pl.addCapSets(p)
		} else {
			pl.addCapset(p)
		}
	}
	if !pl.newPrivs {
		if pl.hardened {
			addNoNewPrivs(p)
		}
		addDescriptors(p, x)
		if pl.hardened {
			addSeccomp(p, x.filter)
		}
	}
	if pl.hold != nil {
		// A Pool's sandbox: the argv comes later (pool_linux.go).
		p.ExecOnRequest(x.stubFD, pl.hold.release, pl.hold.request, pl.env)
		return
	}
	if len(pl.argv) == 0 {
		p.ExecIdle(x.stubFD, pl.env) // the init, with no program
		return
	}
	p.ExecSearch(pl.paths, pl.argv, pl.env, x.stubFD)
}

// addDescriptors appends the ops that leave the program only its
// descriptors, and the umask it starts with.
func addDescriptors(p *spawn.Program, x execSetup) {
	// Every descriptor of the host process other than 0, 1 and 2 closes
	// at exec, whether or not its opener asked for close-on-exec.
	p.Syscall(spawn.Step{Op: "close_range"}, unix.SYS_CLOSE_RANGE, 3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	for i, fd := range x.stdio {
		p.Dup3(fd, i)
	}
	if x.ctty {
		// The terminal, once more at 5, which tells the init to make it
		// the program's controlling terminal (see internal/execstub).
		p.Dup3(0, 5)
	}
	if x.statusFD >= 0 {
		p.Dup3(x.statusFD, 4) // where the init reports the program's status
	}
	if x.gateFD >= 0 {
		p.Dup3(x.gateFD, execstub.GateFD) // what the gated stub waits on
	}
	p.Syscall(spawn.Step{Op: "umask"}, unix.SYS_UMASK, 0o022)
}

// execSetup is what the parent prepared for the end of the child's program.
type execSetup struct {
	stdio    [3]int
	stubFD   int   // sealed exec stub or init, or -1 where there is none
	statusFD int   // with the init: the status pipe's write end (>= 10); else -1
	gateFD   int   // detached: the gate FIFO, read by the gated stub; else -1
	joinFDs  []int // the namespaces an OCI spec joins, as pl.oci.joins
	lastCap  int
	filter   []seccomp.Instruction
	ctty     bool // stdin is a terminal, the program's controlling one
	outlive  bool // a detached command: it must not die with its caller
	// consoleFD, with a console (pl.console), is the connected socket
	// the terminal's master is sent over (>= 10).
	consoleFD int
}

// program returns the child's program for pl, everything between the clone
// and the exec in order, from what start prepared: the root's descriptor,
// the pipe that says the ID maps are written, a sysfs the parent made, the
// cgroup, the bridge (nil for other networks), the bind trees and the end
// of the program.
func (pl *plan) program(base, idMapsWritten, sysfs int, cg cgroup, bridge *bridgeRun, mounts *hostMounts, x execSetup) *spawn.Program {
	var p spawn.Program
	joinNetns := bridge.netnsFD()
	if pl.net.bornIn {
		joinNetns = -1 // cloned in it instead: see startChild
	}
	reopen := pl.root.path
	if pl.root.detached(pl.userns != nil) {
		reopen = "" // base is a detached mount, mounted by addRoot
	}
	etc := bridge.etcFiles()
	// In a joined mount namespace the root is opened once the child is in
	// it: a bind of a mount of another namespace is refused (EINVAL).
	joinsMount := pl.oci.joinsNS(specs.MountNamespace)
	early := reopen
	if joinsMount {
		early = ""
	}
	addPrelude(&p, cg.procsFDs(), idMapsWritten, early, base, joinNetns)
	pl.addJoins(&p, x.joinFDs)
	if joinsMount && reopen != "" {
		p.OpenAs(reopen, unix.O_PATH|unix.O_DIRECTORY, base, spawn.Reg(0))
	}
	pl.addOCIEarly(&p)
	pl.addRoot(&p, base, sysfs, etc)
	p.Sethostname(pl.hostname)
	if pl.net.newNetns {
		addLoopbackUp(&p) // a bridge's namespace has lo up already
	}
	pl.addMounts(&p, mounts)
	pl.addFiles(&p, etc)
	pl.addOCIPaths(&p)
	if pl.console != nil {
		// Its terminal is the program's stdio (fds 0 to 2 by then).
		pl.addConsole(&p, x.consoleFD)
		x.stdio, x.ctty = [3]int{0, 1, 2}, pl.init
	}
	pl.addWorkdir(&p)
	pl.addReadOnlyRoot(&p)
	pl.addExec(&p, x)
	if pl.trace != nil {
		p.Trace = make([]int64, p.Len()+1)
	}
	return &p
}

// report hands the child's time per step to the plan's trace, when it has
// one (profiling only).
func (pl *plan) report(p *spawn.Program) {
	if pl.trace == nil {
		return
	}
	steps := make([]string, p.Len())
	for i := range steps {
		st := p.Step(i)
		steps[i] = st.Op + " " + sandboxPath(st.Path)
	}
	pl.trace(steps, p.Trace)
}
