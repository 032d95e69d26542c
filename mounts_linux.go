package sandbox

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/spawn"
	"github.com/sandboxkit/sandbox/internal/state"
)

// nosuidNodev are the flags of every file system the sandbox gets.
const nosuidNodev = unix.MS_NOSUID | unix.MS_NODEV

// scratchDir is where each sandbox mounts its own tmpfs, in its own mount
// namespace (see internal/state).
const scratchDir = state.ScratchDir

// newRoot is where the sandbox's root is assembled before pivot_root.
const newRoot = scratchDir + "/root"

// devices are the character devices of the sandbox's /dev.
var devices = []struct {
	name         string
	major, minor uint32
}{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
	{"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

// maskedFiles are hidden behind /dev/null and maskedDirs behind an empty,
// read-only tmpfs, as runc does: they expose the host's memory, keys,
// timers and firmware. Paths the kernel lacks are skipped.
var (
	maskedFiles = []string{
		"/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
		"/proc/timer_stats", "/proc/sched_debug",
	}
	maskedDirs = []string{"/proc/acpi", "/proc/asound", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
)

// readOnlyPaths are made read only: kernel tunables and triggers.
var readOnlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}

// addRoot appends the ops that build the sandbox's file system and make it
// the root: private propagation, the base under a throw-away overlay, fresh
// /proc (read only unless WithWritableProc), a minimal /dev, read-only
// /sys, tmpfs /tmp, masked kernel paths, then pivot_root so that nothing
// of the host stays reachable.
func (pl *plan) addRoot(p *spawn.Program, baseFD, sysfsFD int, etc []file) {
	// Nothing mounted here reaches the host, and nothing the host mounts
	// later appears here.
	p.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")

	// The overlay's upper layer lives here: its size bounds what the
	// program can write outside binds and tmpfs mounts.
	size := ",size=" + strconv.FormatInt(pl.scratch, 10)
	p.Mount("tmpfs", scratchDir, "tmpfs", nosuidNodev, "mode=0755"+size)
	for _, d := range []string{"upper", "work", "root"} {
		p.Mkdir(scratchDir+"/"+d, 0o755, false)
	}
	if pl.net.etcInUpper && len(etc) > 0 {
		// The namespace's root may not write in the base's /etc, which
		// belongs to an unmapped host user: the files go into the upper
		// layer before the overlay exists, and the merged /etc is the
		// upper one's, the namespace root's. checkEtcDir made sure the
		// base's /etc is no symbolic link that it would hide.
		p.Mkdir(scratchDir+"/upper/etc", 0o755, false)
		for _, f := range etc {
			p.WriteFile(scratchDir+"/upper"+f.path, f.data, f.mode, regFile)
		}
	}
	lower := "/proc/self/fd/" + strconv.Itoa(baseFD)
	if pl.root.detached(pl.userns != nil) {
		// baseFD is a detached mount (see rootSpec.open), which overlayfs
		// takes as a layer only once it is in this mount namespace.
		lower = scratchDir + "/lower"
		p.Mkdir(lower, 0o755, false)
		p.MoveMountTo(baseFD, lower)
	}
	opts := "lowerdir=" + lower + ",upperdir=" + scratchDir + "/upper,workdir=" + scratchDir + "/work"
	if pl.userns != nil {
		// trusted.* extended attributes need host root.
		opts += ",userxattr"
	}
	if pl.rootInPlace {
		// An OCI bundle's root (FromSpec): the program writes in the
		// directory itself, as under runc.
		p.Mount(lower, newRoot, "", unix.MS_BIND|unix.MS_REC, "")
	} else {
		p.Mount("overlay", newRoot, "overlay", unix.MS_NODEV, opts)
	}
	// The overlay holds the base now; the child lets go of its descriptor,
	// which would otherwise name the host's directory until the exec.
	p.CloseFD(baseFD)

	p.Mkdir(newRoot+"/proc", 0o555, true)
	procFlags := uintptr(nosuidNodev | unix.MS_NOEXEC)
	if !pl.writableProc && pl.hardened {
		// Read only as a whole: no kernel tunable or trigger under /proc
		// can be written, at the cost of no extra mount.
		procFlags |= unix.MS_RDONLY
	}
	p.Mount("proc", newRoot+"/proc", "proc", procFlags, "")

	pl.addDev(p)

	p.Mkdir(newRoot+"/sys", 0o555, true)
	switch {
	case sysfsFD >= 0:
		// sysfs belongs to the network namespace, the host's or a
		// bridge's, which a user namespace may not mount: the parent made
		// one (see newSysfs).
		p.MoveMountTo(sysfsFD, newRoot+"/sys")
		p.CloseFD(sysfsFD)
	default:
		p.Mount("sysfs", newRoot+"/sys", "sysfs", nosuidNodev|unix.MS_NOEXEC|unix.MS_RDONLY, "")
	}
	if !pl.oci.noTmp {
		p.Mkdir(newRoot+"/tmp", 0o1777, true)
		p.Mount("tmpfs", newRoot+"/tmp", "tmpfs", nosuidNodev, "mode=1777"+size)
	}

	if pl.hardened {
		pl.addMasks(p)
	}

	pl.addCreateHookPause(p)

	// pivot_root(".", ".") stacks the old root under the new one; the
	// detaching unmount then drops it, and with it every host mount.
	p.Chdir(newRoot)
	p.PivotRoot(".", ".")
	p.Unmount(".", unix.MNT_DETACH)
	p.Chdir("/")
}

// addDev appends the ops that make the sandbox's /dev: a tmpfs with the
// six character devices (bound from the host's in a user namespace, which
// may not mknod), the /proc/self/fd links, then read only, with devpts and
// a /dev/shm tmpfs mounted on it. No device node can be added to it, and
// every other writable mount is nodev.
func (pl *plan) addDev(p *spawn.Program) {
	dev := newRoot + "/dev"
	p.Mkdir(dev, 0o755, true)
	p.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k")
	for _, d := range devices {
		if pl.userns != nil {
			// No mknod of devices in a user namespace: bind the host's.
			p.Mknod(dev+"/"+d.name, unix.S_IFREG|0o666, 0)
			p.Mount("/dev/"+d.name, dev+"/"+d.name, "", unix.MS_BIND, "")
			continue
		}
		p.Mknod(dev+"/"+d.name, unix.S_IFCHR|0o666, unix.Mkdev(d.major, d.minor))
	}
	p.Mkdir(dev+"/pts", 0o755, false)
	p.Mkdir(dev+"/shm", 0o1777, false)
	p.Symlink("pts/ptmx", dev+"/ptmx")
	if pl.mqueue {
		p.Mkdir(dev+"/mqueue", 0o1777, false)
	}
	pl.addOCIDevices(p, dev)
	p.Symlink("/proc/self/fd", dev+"/fd")
	for i, name := range []string{"stdin", "stdout", "stderr"} {
		p.Symlink("/proc/self/fd/"+strconv.Itoa(i), dev+"/"+name)
	}
	p.Mount("", dev, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k")
	p.Mount("devpts", dev+"/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
	p.Mount("shm", dev+"/shm", "tmpfs", nosuidNodev|unix.MS_NOEXEC, "mode=1777")
	if pl.mqueue {
		p.Mount("mqueue", dev+"/mqueue", "mqueue", nosuidNodev|unix.MS_NOEXEC, "")
	}
}

// addMasks appends the mounts that hide kernel files from the sandbox and,
// under a writable /proc, make its tunables and triggers read only. The
// paths exist in the sandbox's /proc and /sys exactly when they exist in
// the host's: the same kernel serves both.
func (pl *plan) addMasks(p *spawn.Program) {
	f := facts()
	for _, m := range f.maskedFiles {
		p.Mount(newRoot+"/dev/null", newRoot+m, "", unix.MS_BIND, "")
	}
	// One empty read-only tmpfs, bound onto the other directories: a bind
	// inherits read-only and costs less than a new file system.
	empty := ""
	for _, m := range f.maskedDirs {
		if empty == "" {
			empty = newRoot + m
			p.Mount("tmpfs", empty, "tmpfs", unix.MS_RDONLY|nosuidNodev|unix.MS_NOEXEC, "size=0")
			continue
		}
		p.Mount(empty, newRoot+m, "", unix.MS_BIND, "")
	}
	// A fresh /proc has nothing mounted below these paths, so a plain bind
	// is enough. A read-only /proc needs none of it.
	for _, m := range pl.readOnlyProcPaths() {
		addBindReadOnly(p, newRoot+m, newRoot+m, 0)
	}
}

// newSysfs returns a new, detached, read-only sysfs of the calling
// thread's network namespace, for a sandbox in a user namespace, which may
// not mount one itself: its child moves it onto /sys. Unlike a bind of the
// host's /sys it has no mounts below it, such as the host's cgroup
// hierarchies.
func newSysfs() (int, error) {
	ctx, err := unix.Fsopen("sysfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, os.NewSyscallError("fsopen sysfs", err)
	}
	defer unix.Close(ctx)
	if err := unix.FsconfigCreate(ctx); err != nil {
		return -1, os.NewSyscallError("fsconfig sysfs", err)
	}
	mnt, err := unix.Fsmount(ctx, unix.FSMOUNT_CLOEXEC,
		unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return -1, os.NewSyscallError("fsmount sysfs", err)
	}
	return mnt, nil
}

// addBindReadOnly appends a bind mount of source on target (recursive with
// MS_REC in flags) and the remount that makes it read only, nosuid, nodev
// and noexec.
func addBindReadOnly(p *spawn.Program, source, target string, flags uintptr) {
	p.Mount(source, target, "", unix.MS_BIND|flags, "")
	p.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

// existing returns the paths of the host that exist.
func existing(paths []string) []string {
	var out []string
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// readOnlyProcPaths returns the kernel's tunables and triggers under a
// writable /proc, which are bound read only one by one.
func (pl *plan) readOnlyProcPaths() []string {
	if !pl.writableProc {
		return nil
	}
	return facts().readOnly
}

// hostMounts are what the parent prepares for a run's binds: a detached
// copy of each bind's source tree, made read only and nosuid/nodev on the
// copy alone. trees[i] and dirs[i] belong to the plan's mounts[i]; trees[i] is -1
// for a tmpfs.
type hostMounts struct {
	trees []int
	dirs  []bool
}

func (h *hostMounts) close() {
	for i := range h.trees {
		closeFD(&h.trees[i])
	}
}

// prepareMounts clones the source tree of every bind into a detached mount
// and sets its attributes there; the child attaches it after pivot_root.
// Sources that do not exist are reported together, as a *ConfigError.
func (pl *plan) prepareMounts() (_ *hostMounts, err error) {
	h := &hostMounts{trees: make([]int, len(pl.mounts)), dirs: make([]bool, len(pl.mounts))}
	for i := range h.trees {
		h.trees[i] = -1
	}
	defer func() {
		if err != nil {
			h.close()
		}
	}()
	var missing []*FieldError
	for i, m := range pl.mounts {
		if m.kind != mountBind {
			continue
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, m.source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, &FieldError{Field: "bind", Value: m.source, Reason: "host path must exist",
				Err: &fs.PathError{Op: "open_tree", Path: m.source, Err: err}})
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open_tree", Path: m.source, Err: err}
		}
		h.trees[i] = fd
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return nil, &fs.PathError{Op: "stat", Path: m.source, Err: err}
		}
		h.dirs[i] = st.Mode&unix.S_IFMT == unix.S_IFDIR
		attr := &unix.MountAttr{Propagation: unix.MS_PRIVATE}
		attr.Attr_set, attr.Attr_clr = m.attrs()
		if mountPropagations[m.propagation].receives {
			// A slave of the source's peer group (if it is shared): the
			// host's later mounts below the source appear in the
			// sandbox, and nothing goes back (see addMounts).
			attr.Propagation = unix.MS_SLAVE
		}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
			return nil, &fs.PathError{Op: "mount_setattr", Path: m.source, Err: err}
		}
	}
	if missing != nil {
		return nil, &ConfigError{Problems: missing}
	}
	return h, nil
}

// Registers of the mount and file ops.
const (
	regTarget = spawn.Reg(1)
	regFS     = spawn.Reg(2)
	regMount  = spawn.Reg(3)
	regFile   = spawn.Reg(4)
	regDir    = spawn.Reg(5)
)

// Kernel file systems that no bind, tmpfs or file may land on through a
// symbolic link: a literal target there is refused by Validate.
const (
	procfsMagic = unix.PROC_SUPER_MAGIC
	sysfsMagic  = unix.SYSFS_MAGIC
)

// addMounts appends, after pivot_root, the ops that attach the binds and
// tmpfs mounts, in the plan's order (parents first, otherwise as given),
// each one after the one before it, so that mountinfo lists them so (see
// spawn.AttachTree). Every path is resolved inside the root (see
// addMkdirAll), the target is checked not to lie on /proc or /sys, and
// each detached tree is closed once attached. A mount's propagation
// (shared or unbindable; see mountPropagations) is set once it is
// attached.
func (pl *plan) addMounts(p *spawn.Program, h *hostMounts) {
	for i, m := range pl.mounts {
		dir, name := path.Split(m.target)
		addMkdirAll(p, dir, -1, -1)
		p.OpenInRoot(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, regDir)
		if m.kind == mountBind && !h.dirs[i] {
			p.MknodAt(regDir, name, unix.S_IFREG|0o644, m.target)
		} else {
			p.MkdirAt(regDir, name, 0o755, m.target)
		}
		p.Close(regDir)
		p.OpenInRoot(m.target, unix.O_PATH|unix.O_CLOEXEC, regTarget)
		p.DenyFS(regTarget, m.target, procfsMagic, sysfsMagic)
		switch m.kind {
		case mountBind:
			what := "bind directory"
			if !h.dirs[i] {
				what = "bind file"
			}
			p.AttachTree(h.trees[i], regTarget, regMount, spawn.Step{Op: what + " " + m.source + " onto", Path: m.target})
		case mountTmpfs:
			p.Fsopen("tmpfs", regFS)
			p.FsconfigString(regFS, "source", m.tmpfsSource())
			p.FsconfigString(regFS, "size", strconv.FormatInt(m.size, 10))
			p.FsconfigString(regFS, "mode", strconv.FormatUint(uint64(m.tmpfsMode()), 8))
			p.FsconfigCreate(regFS)
			set, _ := m.attrs()
			p.Fsmount(regFS, uintptr(set), regMount)
			p.MoveMountReg(regMount, regTarget, m.target)
			p.Close(regMount)
			p.Close(regFS)
		}
		p.Close(regTarget)
		addPropagation(p, m)
	}
}

// attrs returns the mount attributes of a bind or tmpfs, to set and to
// clear: nosuid and nodev always, and what m asks for.
func (m mount) attrs() (set, clr uint64) {
	set = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
	if m.readOnly {
		set |= unix.MOUNT_ATTR_RDONLY
	}
	if m.noexec {
		set |= unix.MOUNT_ATTR_NOEXEC
	}
	if m.nodiratime {
		set |= unix.MOUNT_ATTR_NODIRATIME
	}
	switch m.atime {
	case "strictatime":
		set |= unix.MOUNT_ATTR_STRICTATIME
	case "noatime":
		set |= unix.MOUNT_ATTR_NOATIME
	}
	if m.atime != "" {
		clr = unix.MOUNT_ATTR__ATIME // the atime mode is one value: replace it
	}
	return set, clr
}

// addPropagation appends the mount_setattr that makes the mount attached
// at m.target shared or unbindable, when m asks so. A private mount, or a
// slave, is one already (see prepareMounts).
func addPropagation(p *spawn.Program, m mount) {
	prop := mountPropagations[m.propagation]
	var propagation uint64
	switch {
	case prop.shared:
		propagation = unix.MS_SHARED
	case prop.unbindable:
		propagation = unix.MS_UNBINDABLE
	default:
		return
	}
	flags := uintptr(unix.AT_EMPTY_PATH)
	if prop.recursive {
		flags |= unix.AT_RECURSIVE
	}
	// struct mount_attr: attr_set, attr_clr, propagation, userns_fd.
	b := make([]byte, 32)
	binary.NativeEndian.PutUint64(b[16:], propagation)
	p.OpenInRoot(m.target, unix.O_PATH|unix.O_CLOEXEC, regTarget)
	p.SyscallReg(spawn.Step{Op: "make " + m.propagation, Path: m.target}, unix.SYS_MOUNT_SETATTR, regTarget, 0,
		0, p.Bytes([]byte{0}), flags, p.Bytes(b), uintptr(len(b)))
	p.Close(regTarget)
}

// addFiles appends the ops that write the sandbox's files, owned by its
// user, through a parent directory opened inside the root; then the
// network's /etc files, owned by root (addRoot's, in a user namespace).
func (pl *plan) addFiles(p *spawn.Program, etc []file) {
	for _, f := range pl.files {
		addFile(p, f, pl.uid, pl.gid)
	}
	if pl.net.etcInUpper {
		return // addRoot wrote etc
	}
	for _, f := range etc {
		addFile(p, f, 0, 0)
	}
}

func addFile(p *spawn.Program, f file, uid, gid int) {
	dir := path.Dir(f.path)
	addMkdirAll(p, dir, uid, gid)
	p.OpenInRoot(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, regTarget)
	p.DenyFS(regTarget, dir, procfsMagic, sysfsMagic)
	p.WriteFileAt(regTarget, path.Base(f.path), f.path, f.data, f.mode, uid, gid, regFile)
	p.Close(regTarget)
}

// addMkdirAll appends mkdir -p of dir inside the root; directories it
// creates are owned by uid and gid unless those are negative. Run it with
// the current directory at the root. Each component is made in its parent
// as opened with openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS): a
// symbolic link in the root, in a bind or made by an earlier run, absolute
// or relative or with "..", resolves inside the root, and a /proc magic
// link (such as /proc/self/fd/N, a descriptor of the host) fails with
// ELOOP instead of leading out (CVE-2024-21626, CVE-2024-45310).
func addMkdirAll(p *spawn.Program, dir string, uid, gid int) {
	parent := "/"
	for _, name := range strings.Split(strings.TrimPrefix(path.Clean(dir), "/"), "/") {
		if name == "" {
			continue
		}
		display := path.Join(parent, name)
		p.OpenInRoot(parent, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, regDir)
		if uid < 0 {
			p.MkdirAt(regDir, name, 0o755, display)
		} else {
			p.MkdirOwnedAt(regDir, name, 0o755, uid, gid, display)
		}
		p.Close(regDir)
		parent = display
	}
}

// addReadOnlyRoot appends, for WithReadOnlyRoot, the remount that makes the
// root read only once its mount points, files and working directory exist.
func (pl *plan) addReadOnlyRoot(p *spawn.Program) {
	if pl.readOnly {
		p.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NODEV, "")
	}
}

// addWorkdir appends the ops that create the working directory, component
// by component, and change into it, all resolved inside the root (see
// addMkdirAll): the program's working directory is always inside the
// root. Directories it creates belong to the sandbox's user, so a program
// running as a user can write where it starts.
func (pl *plan) addWorkdir(p *spawn.Program) {
	addMkdirAll(p, pl.workdir, pl.uid, pl.gid)
	p.OpenInRoot(pl.workdir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, regDir)
	p.Fchdir(regDir, pl.workdir)
	p.Close(regDir)
}

// sandboxPath turns a path of the assembled root into the path the sandbox
// sees, for error messages.
func sandboxPath(p string) string {
	if rest, ok := strings.CutPrefix(p, newRoot); ok {
		if rest == "" {
			return "/"
		}
		return rest
	}
	return p
}
