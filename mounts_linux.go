package sandbox

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/spawn"
)

// nosuidNodev are the flags of every file system the sandbox gets.
const nosuidNodev = unix.MS_NOSUID | unix.MS_NODEV

// stateDir holds the package's state on the host. Its scratch directory is
// only ever a mount point: each sandbox mounts its own tmpfs there, in its
// own mount namespace, so the host sees an empty directory.
const (
	stateDir   = "/run/sandboxkit"
	scratchDir = stateDir + "/scratch"
)

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
		"/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
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
func (s *Sandbox) addRoot(p *spawn.Program, baseFD, sysfsFD int, etc []file) {
	// Nothing mounted here reaches the host, and nothing the host mounts
	// later appears here.
	p.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")

	p.Mount("tmpfs", scratchDir, "tmpfs", nosuidNodev, "mode=0755")
	for _, d := range []string{"upper", "work", "root"} {
		p.Mkdir(scratchDir+"/"+d, 0o755, false)
	}
	if s.userns != nil && len(etc) > 0 {
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
	if s.userns != nil {
		// baseFD is a detached mount (see Root.open), which overlayfs
		// takes as a layer only once it is in this mount namespace.
		lower = scratchDir + "/lower"
		p.Mkdir(lower, 0o755, false)
		p.MoveMountTo(baseFD, lower)
	}
	opts := "lowerdir=" + lower + ",upperdir=" + scratchDir + "/upper,workdir=" + scratchDir + "/work"
	if s.userns != nil {
		// trusted.* extended attributes need host root.
		opts += ",userxattr"
	}
	p.Mount("overlay", newRoot, "overlay", unix.MS_NODEV, opts)

	p.Mkdir(newRoot+"/proc", 0o555, true)
	procFlags := uintptr(nosuidNodev | unix.MS_NOEXEC)
	if !s.writableProc && !s.bare {
		// Read only as a whole: no kernel tunable or trigger under /proc
		// can be written, at the cost of no extra mount.
		procFlags |= unix.MS_RDONLY
	}
	p.Mount("proc", newRoot+"/proc", "proc", procFlags, "")

	s.addDev(p)

	p.Mkdir(newRoot+"/sys", 0o555, true)
	switch {
	case sysfsFD >= 0:
		// A bridge's sysfs, which a user namespace may not make itself
		// (see bridgeRun.sysfs).
		p.MoveMountTo(sysfsFD, newRoot+"/sys")
	case s.userns != nil && s.network.kind == networkHost:
		// sysfs belongs to the network namespace, here the host's, which
		// the user namespace may not mount: show the host's, read only.
		addBindReadOnly(p, "/sys", newRoot+"/sys", unix.MS_REC)
	default:
		p.Mount("sysfs", newRoot+"/sys", "sysfs", nosuidNodev|unix.MS_NOEXEC|unix.MS_RDONLY, "")
	}
	p.Mkdir(newRoot+"/tmp", 0o1777, true)
	p.Mount("tmpfs", newRoot+"/tmp", "tmpfs", nosuidNodev, "mode=1777")

	if !s.bare {
		s.addMasks(p)
	}

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
func (s *Sandbox) addDev(p *spawn.Program) {
	dev := newRoot + "/dev"
	p.Mkdir(dev, 0o755, true)
	p.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k")
	for _, d := range devices {
		if s.userns != nil {
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
	p.Symlink("/proc/self/fd", dev+"/fd")
	for i, name := range []string{"stdin", "stdout", "stderr"} {
		p.Symlink("/proc/self/fd/"+strconv.Itoa(i), dev+"/"+name)
	}
	p.Mount("", dev, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k")
	p.Mount("devpts", dev+"/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
	p.Mount("tmpfs", dev+"/shm", "tmpfs", nosuidNodev|unix.MS_NOEXEC, "mode=1777")
}

// addMasks appends the mounts that hide kernel files from the sandbox and,
// under a writable /proc, make its tunables and triggers read only. The
// paths exist in the sandbox's /proc and /sys exactly when they exist in
// the host's: the same kernel serves both.
func (s *Sandbox) addMasks(p *spawn.Program) {
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
	for _, m := range s.readOnlyProcPaths() {
		addBindReadOnly(p, newRoot+m, newRoot+m, 0)
	}
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
func (s *Sandbox) readOnlyProcPaths() []string {
	if !s.writableProc {
		return nil
	}
	return facts().readOnly
}

// hostMounts are what the parent prepares for a run's binds: a detached
// copy of each bind's source tree, made read only and nosuid/nodev on the
// copy alone. trees[i] and dirs[i] belong to s.mounts[i]; trees[i] is -1
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
func (s *Sandbox) prepareMounts() (_ *hostMounts, err error) {
	h := &hostMounts{trees: make([]int, len(s.mounts)), dirs: make([]bool, len(s.mounts))}
	for i := range h.trees {
		h.trees[i] = -1
	}
	defer func() {
		if err != nil {
			h.close()
		}
	}()
	var missing []*FieldError
	for i, m := range s.mounts {
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
		attr := &unix.MountAttr{
			Attr_set:    unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV,
			Propagation: unix.MS_PRIVATE,
		}
		if m.readOnly {
			attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
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
)

// addMounts appends, after pivot_root, the ops that attach the binds and
// tmpfs mounts, parents first. Each target is created if missing and then
// opened with openat2(RESOLVE_IN_ROOT), so no symbolic link can lead the
// mount outside the root.
func (s *Sandbox) addMounts(p *spawn.Program, h *hostMounts) {
	order := make([]int, len(s.mounts))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return strings.Count(s.mounts[a].target, "/") - strings.Count(s.mounts[b].target, "/")
	})
	for _, i := range order {
		m := s.mounts[i]
		addMkdirAll(p, path.Dir(m.target), -1, -1)
		if m.kind == mountBind && !h.dirs[i] {
			p.MknodExistOK(m.target, unix.S_IFREG|0o644)
		} else {
			p.Mkdir(m.target, 0o755, true)
		}
		p.OpenInRoot(m.target, unix.O_PATH|unix.O_CLOEXEC, regTarget)
		switch m.kind {
		case mountBind:
			p.MoveMount(h.trees[i], regTarget, m.target)
		case mountTmpfs:
			p.Fsopen("tmpfs", regFS)
			p.FsconfigString(regFS, "size", strconv.FormatInt(m.size, 10))
			p.FsconfigString(regFS, "mode", "1777")
			p.FsconfigCreate(regFS)
			p.Fsmount(regFS, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, regMount)
			p.MoveMountReg(regMount, regTarget, m.target)
			p.Close(regMount)
			p.Close(regFS)
		}
		p.Close(regTarget)
	}
}

// addFiles appends the ops that write the sandbox's files, owned by its
// user, through a parent directory opened inside the root; then the
// network's /etc files, owned by root (addRoot's, in a user namespace).
func (s *Sandbox) addFiles(p *spawn.Program, etc []file) {
	for _, f := range s.files {
		addFile(p, f, s.uid, s.gid)
	}
	if s.userns != nil {
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
	p.WriteFileAt(regTarget, path.Base(f.path), f.path, f.data, f.mode, uid, gid, regFile)
	p.Close(regTarget)
}

// checkEtcDir returns an error unless the base open at baseFD has no /etc
// or a directory there, which a user namespace's network files merge with
// (see addRoot).
func checkEtcDir(baseFD int) error {
	var st unix.Stat_t
	err := unix.Fstatat(baseFD, "etc", &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) || err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil
	}
	if err != nil {
		return &fs.PathError{Op: "stat", Path: "/etc", Err: err}
	}
	return &fs.PathError{Op: "stat", Path: "/etc", Err: errors.New("not a directory: a user namespace's /etc/hosts and /etc/resolv.conf need one")}
}

// addMkdirAll appends mkdir -p of dir; directories it creates are owned by
// uid and gid unless those are negative.
func addMkdirAll(p *spawn.Program, dir string, uid, gid int) {
	cur := ""
	for _, part := range strings.Split(strings.TrimPrefix(path.Clean(dir), "/"), "/") {
		if part == "" {
			continue
		}
		cur += "/" + part
		if uid < 0 {
			p.Mkdir(cur, 0o755, true)
		} else {
			p.MkdirOwned(cur, 0o755, uid, gid)
		}
	}
}

// addReadOnlyRoot appends, for WithReadOnlyRoot, the remount that makes the
// root read only once its mount points, files and working directory exist.
func (s *Sandbox) addReadOnlyRoot(p *spawn.Program) {
	if s.readOnly {
		p.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NODEV, "")
	}
}

// addWorkdir appends the ops that create the working directory, component
// by component, and change into it. Directories it creates belong to the
// sandbox's user, so a program running as a user can write where it starts.
func (s *Sandbox) addWorkdir(p *spawn.Program) {
	addMkdirAll(p, s.workdir, s.uid, s.gid)
	p.Chdir(s.workdir)
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
