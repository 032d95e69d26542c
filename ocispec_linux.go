package sandbox

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/netsetup"
	"github.com/sandboxkit/sandbox/internal/spawn"
)

// regOCI is the register the OCI extras' ops open files in.
const regOCI = spawn.Reg(5)

// addOCIEarly appends what an OCI spec sets through the host's /proc
// while the child still sees it, in its own namespaces already: its
// oom_score_adj (which only a process with CAP_SYS_RESOURCE may lower)
// and its sysctls (each one its network or IPC namespace's own).
func (pl *plan) addOCIEarly(p *spawn.Program) {
	x := pl.oci
	if x.oomScoreAdj != nil {
		p.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*x.oomScoreAdj)), 0, regOCI)
	}
	for _, k := range sortedKeys(x.sysctls) {
		p.WriteFile("/proc/sys/"+strings.ReplaceAll(k, ".", "/"), []byte(x.sysctls[k]), 0, regOCI)
	}
}

// addOCIDevices appends the device nodes of an OCI spec to the sandbox's
// /dev at dev, before it is made read only: made with mknod, or bound
// from the host's in a user namespace, which may not make devices.
func (pl *plan) addOCIDevices(p *spawn.Program, dev string) {
	pl.addConsoleNode(p, dev)
	fdcwd := unix.AT_FDCWD
	for _, d := range pl.oci.devices {
		target := dev + strings.TrimPrefix(d.path, "/dev")
		if parent := filepath.Dir(target); parent != dev {
			p.Mkdir(parent, 0o755, true)
		}
		if pl.userns != nil {
			p.Mknod(target, unix.S_IFREG|0o666, 0)
			p.Mount(d.path, target, "", unix.MS_BIND, "")
			continue
		}
		mode := d.mode
		switch d.kind {
		case "c", "u":
			mode |= unix.S_IFCHR
		case "b":
			mode |= unix.S_IFBLK
		case "p":
			mode |= unix.S_IFIFO
		}
		p.Mknod(target, mode, unix.Mkdev(uint32(d.major), uint32(d.minor)))
		p.Syscall(spawn.Step{Op: "chown", Path: target}, unix.SYS_FCHOWNAT, uintptr(fdcwd), p.Bytes(append([]byte(target), 0)),
			uintptr(d.uid), uintptr(d.gid), unix.AT_SYMLINK_NOFOLLOW)
	}
}

// addOCIPaths appends, after pivot_root, the masks and read-only binds
// of an OCI spec's own paths: a directory is hidden behind an empty
// read-only tmpfs and a file behind /dev/null, as runc does. A path that
// does not exist is skipped, as runc does too; whether one is a directory
// is read from the host, where the root and the kernel files are.
func (pl *plan) addOCIPaths(p *spawn.Program) {
	for _, m := range pl.oci.masked {
		switch isDir, ok := pl.hostKind(m); {
		case !ok:
		case isDir:
			// A mask above it may have hidden it: no error then, as in runc.
			p.MountIfExists("tmpfs", m, "tmpfs", unix.MS_RDONLY|nosuidNodev|unix.MS_NOEXEC, "size=0")
		default:
			p.MountIfExists("/dev/null", m, "", unix.MS_BIND, "")
		}
	}
	for _, m := range pl.oci.readOnly {
		if _, ok := pl.hostKind(m); ok {
			addBindReadOnly(p, m, m, unix.MS_REC)
		}
	}
	if pl.oci.propagation != 0 {
		p.Mount("", "/", "", pl.oci.propagation, "")
	}
}

// hostKind says whether the sandbox path p exists and is a directory, as
// the host sees it: in its own /proc or /sys, or in the root directory.
func (pl *plan) hostKind(p string) (isDir, ok bool) {
	host := filepath.Join(pl.root.path, p)
	if underAny(p, "/proc", "/sys") {
		host = p
	}
	fi, err := os.Stat(host)
	if err != nil {
		return false, false
	}
	return fi.IsDir(), true
}

// addSetIDsGroups is addSetIDs with the supplementary groups of an OCI
// spec's user.
func addSetIDsGroups(p *spawn.Program, uid, gid int, groups []int) {
	list := make([]byte, 4*len(groups))
	for i, g := range groups {
		list[4*i], list[4*i+1], list[4*i+2], list[4*i+3] = byte(g), byte(g>>8), byte(g>>16), byte(g>>24)
	}
	p.Syscall(spawn.Step{Op: "setgroups", Path: strconv.Itoa(len(groups))}, unix.SYS_SETGROUPS, uintptr(len(groups)), p.Bytes(list))
	p.Syscall(spawn.Step{Op: "setresgid", Path: strconv.Itoa(gid)}, unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid))
	p.Syscall(spawn.Step{Op: "setresuid", Path: strconv.Itoa(uid)}, unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid))
	addDieWithCaller(p)
}

// nsFlags are the clone flags of the namespaces a sandbox can join.
var nsFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.NetworkNamespace: unix.CLONE_NEWNET, specs.IPCNamespace: unix.CLONE_NEWIPC,
	specs.UTSNamespace: unix.CLONE_NEWUTS, specs.CgroupNamespace: unix.CLONE_NEWCGROUP,
	specs.PIDNamespace: unix.CLONE_NEWPID, specs.MountNamespace: unix.CLONE_NEWNS,
}

// joinFlags are the clone flags of the namespaces the plan joins rather
// than makes.
func (pl *plan) joinFlags() uintptr {
	var f uintptr
	for _, j := range pl.oci.joins {
		f |= nsFlags[j.kind]
	}
	return f
}

// errHostMountNamespace: a mount namespace that setting the root up in
// would reach the host's processes.
var errHostMountNamespace = errors.New("it is the host's (the caller's own, or PID 1's): making the sandbox's root its root " +
	"would move every process whose root is the namespace's into the sandbox's root")

// openJoins opens the namespace files the plan joins, in its order, each
// checked to be a namespace of its entry's type. A mount namespace must
// not be the caller's own nor PID 1's (see errHostMountNamespace).
func (pl *plan) openJoins() (_ []int, err error) {
	var fds []int
	defer func() {
		if err != nil {
			closeFDs(fds)
		}
	}()
	for _, j := range pl.oci.joins {
		fd, err := unix.Open(j.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &fs.PathError{Op: "open " + string(j.kind) + " namespace", Path: j.path, Err: err}
		}
		fds = append(fds, fd)
		if err := netsetup.CheckNamespace(fd, j.path, int(nsFlags[j.kind])); err != nil {
			return nil, err
		}
		if j.kind == specs.MountNamespace {
			if err := checkNotHostMountNS(fd, j.path); err != nil {
				return nil, err
			}
		}
	}
	return fds, nil
}

// checkNotHostMountNS returns an error if the mount namespace open at fd
// is the caller's own or PID 1's (where PID 1 can be seen).
func checkNotHostMountNS(fd int, path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	for _, host := range []string{"/proc/thread-self/ns/mnt", "/proc/1/ns/mnt"} {
		var h unix.Stat_t
		if err := unix.Stat(host, &h); err != nil {
			continue // PID 1's is out of sight (another PID namespace): the caller's was checked
		}
		if h.Dev == st.Dev && h.Ino == st.Ino {
			return &fs.PathError{Op: "join mount namespace", Path: path, Err: errHostMountNamespace}
		}
	}
	return nil
}

// pidnsFD returns the descriptor of the PID namespace the plan joins,
// among fds (as openJoins returned them), or -1.
func (pl *plan) pidnsFD(fds []int) int {
	for i, j := range pl.oci.joins {
		if j.kind == specs.PIDNamespace {
			return fds[i]
		}
	}
	return -1
}

// addJoins appends the setns of each namespace the plan joins, just after
// the prelude (which unshares a cgroup namespace that a joined one then
// replaces), before anything is set up in it. A joined PID namespace is
// not entered here: the child is born in it (see startChild). There the
// sandbox's init is not the namespace's init, to which orphans would go:
// it is made a subreaper, so that the program's orphans stay its to reap
// (the attribute survives the exec). A program without the init is left
// as it is (its orphans go to the namespace's init, as under runc).
func (pl *plan) addJoins(p *spawn.Program, fds []int) {
	for i, j := range pl.oci.joins {
		if j.kind != specs.PIDNamespace {
			p.Syscall(spawn.Step{Op: "setns", Path: j.path}, unix.SYS_SETNS, uintptr(fds[i]), nsFlags[j.kind])
		}
		p.CloseFD(fds[i])
	}
	if pl.oci.joinsNS(specs.PIDNamespace) && pl.init {
		p.Syscall(spawn.Step{Op: "prctl", Path: "PR_SET_CHILD_SUBREAPER"}, unix.SYS_PRCTL, unix.PR_SET_CHILD_SUBREAPER, 1)
	}
}

// closeFDs closes each of fds.
func closeFDs(fds []int) error {
	var errs []error
	for _, fd := range fds {
		errs = append(errs, unix.Close(fd))
	}
	return errors.Join(errs...)
}
