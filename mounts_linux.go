package sandbox

import (
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/spawn"
)

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
// /proc, a minimal /dev, read-only /sys, tmpfs /tmp,
// masked and read-only kernel paths, then pivot_root so that nothing of the
// host stays reachable.
func (s *Sandbox) addRoot(p *spawn.Program, baseFD int) {
	const nosuidNodev = unix.MS_NOSUID | unix.MS_NODEV
	// Nothing mounted here reaches the host, and nothing the host mounts
	// later appears here.
	p.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")

	p.Mount("tmpfs", scratchDir, "tmpfs", nosuidNodev, "mode=0755")
	for _, d := range []string{"upper", "work", "root"} {
		p.Mkdir(scratchDir+"/"+d, 0o755, false)
	}
	opts := "lowerdir=/proc/self/fd/" + strconv.Itoa(baseFD) + ",upperdir=" + scratchDir + "/upper,workdir=" + scratchDir + "/work"
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

	dev := newRoot + "/dev"
	p.Mkdir(dev, 0o755, true)
	// /dev is made read only below, once it is complete: no device node can
	// be added to it, and every other writable mount is nodev.
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

	p.Mkdir(newRoot+"/sys", 0o555, true)
	if s.userns != nil && s.network.kind == networkHost {
		// sysfs belongs to the network namespace, here the host's, which a
		// user namespace may not mount: show the host's, read only.
		p.Mount("/sys", newRoot+"/sys", "", unix.MS_BIND|unix.MS_REC, "")
		p.Mount("", newRoot+"/sys", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|nosuidNodev|unix.MS_NOEXEC, "")
	} else {
		p.Mount("sysfs", newRoot+"/sys", "sysfs", nosuidNodev|unix.MS_NOEXEC|unix.MS_RDONLY, "")
	}
	p.Mkdir(newRoot+"/tmp", 0o1777, true)
	p.Mount("tmpfs", newRoot+"/tmp", "tmpfs", nosuidNodev, "mode=1777")

	if !s.bare {
		// The paths exist in the sandbox's /proc and /sys exactly when they
		// exist in the host's: the same kernel serves both.
		for _, m := range s.facts.get().maskedFiles {
			p.Mount(dev+"/null", newRoot+m, "", unix.MS_BIND, "")
		}
		// One empty read-only tmpfs, bound onto the other directories: a
		// bind inherits read-only and costs less than a new file system.
		empty := ""
		for _, m := range s.facts.get().maskedDirs {
			if empty == "" {
				empty = newRoot + m
				p.Mount("tmpfs", empty, "tmpfs", unix.MS_RDONLY|nosuidNodev|unix.MS_NOEXEC, "size=0")
				continue
			}
			p.Mount(empty, newRoot+m, "", unix.MS_BIND, "")
		}
		// A fresh /proc has nothing mounted below these paths, so a plain
		// bind is enough before the read-only remount. A read-only /proc
		// needs none of it.
		for _, m := range s.readOnlyProcPaths() {
			p.Mount(newRoot+m, newRoot+m, "", unix.MS_BIND, "")
			p.Mount("", newRoot+m, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|nosuidNodev|unix.MS_NOEXEC, "")
		}
	}

	// pivot_root(".", ".") stacks the old root under the new one; the
	// detaching unmount then drops it, and with it every host mount.
	p.Chdir(newRoot)
	p.PivotRoot(".", ".")
	p.Unmount(".", unix.MNT_DETACH)
	p.Chdir("/")
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
	return s.facts.get().readOnly
}

// hostMounts are what the parent prepares for a run's mounts: a detached
// copy of each bind's source tree, made read only and nosuid/nodev on the
// copy alone.
type hostMounts struct {
	trees map[int]int // index in s.mounts -> open_tree descriptor
	dirs  map[int]bool
}

func (h *hostMounts) close() error {
	for _, fd := range h.trees {
		unix.Close(fd)
	}
	h.trees = nil
	return nil
}

// checkBinds reports bind sources that do not exist on the host, as
// configuration problems.
func (s *Sandbox) checkBinds() error {
	var problems []*FieldError
	for _, m := range s.mounts {
		if m.kind != mountBind {
			continue
		}
		if _, err := os.Stat(m.source); err != nil {
			problems = append(problems, &FieldError{Field: "bind", Value: m.source, Reason: "host path must exist", Err: err})
		}
	}
	if problems == nil {
		return nil
	}
	return &ConfigError{Problems: problems}
}

// prepareMounts clones the source tree of every bind into a detached mount
// and sets its attributes there; the child attaches it after pivot_root.
func (s *Sandbox) prepareMounts() (_ *hostMounts, err error) {
	h := &hostMounts{trees: map[int]int{}, dirs: map[int]bool{}}
	defer func() {
		if err != nil {
			h.close()
		}
	}()
	for i, m := range s.mounts {
		if m.kind != mountBind {
			continue
		}
		fi, err := os.Stat(m.source)
		if err != nil {
			return nil, err
		}
		h.dirs[i] = fi.IsDir()
		fd, err := unix.OpenTree(unix.AT_FDCWD, m.source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			return nil, &fs.PathError{Op: "open_tree", Path: m.source, Err: err}
		}
		h.trees[i] = fd
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
// network's /etc files, owned by root.
func (s *Sandbox) addFiles(p *spawn.Program, etc []file) {
	for _, f := range s.files {
		addFile(p, f, s.uid, s.gid)
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
