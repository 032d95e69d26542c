package sandbox

import (
	"path"
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

// addRoot appends the ops that build the sandbox's file system and make it
// the root: private propagation, an overlay of the base under a throw-away
// tmpfs upper layer, fresh /proc, a minimal /dev, read-only /sys, tmpfs
// /tmp, then pivot_root so that nothing of the host stays reachable.
func (s *Sandbox) addRoot(p *spawn.Program, base string) {
	const nosuidNodev = unix.MS_NOSUID | unix.MS_NODEV
	// Nothing mounted here reaches the host, and nothing the host mounts
	// later appears here.
	p.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")

	p.Mount("tmpfs", scratchDir, "tmpfs", nosuidNodev, "mode=0755")
	for _, d := range []string{"upper", "work", "root"} {
		p.Mkdir(scratchDir+"/"+d, 0o755, false)
	}
	p.Mount("overlay", newRoot, "overlay", 0,
		"lowerdir="+base+",upperdir="+scratchDir+"/upper,workdir="+scratchDir+"/work")

	p.Mkdir(newRoot+"/proc", 0o555, true)
	p.Mount("proc", newRoot+"/proc", "proc", nosuidNodev|unix.MS_NOEXEC, "")

	dev := newRoot + "/dev"
	p.Mkdir(dev, 0o755, true)
	p.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=65536k")
	for _, d := range devices {
		p.Mknod(dev+"/"+d.name, unix.S_IFCHR|0o666, unix.Mkdev(d.major, d.minor))
	}
	p.Mkdir(dev+"/pts", 0o755, false)
	p.Mount("devpts", dev+"/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
	p.Symlink("pts/ptmx", dev+"/ptmx")
	p.Mkdir(dev+"/shm", 0o1777, false)
	p.Mount("tmpfs", dev+"/shm", "tmpfs", nosuidNodev|unix.MS_NOEXEC, "mode=1777")
	p.Symlink("/proc/self/fd", dev+"/fd")
	for i, name := range []string{"stdin", "stdout", "stderr"} {
		p.Symlink("/proc/self/fd/"+string(rune('0'+i)), dev+"/"+name)
	}

	p.Mkdir(newRoot+"/sys", 0o555, true)
	p.Mount("sysfs", newRoot+"/sys", "sysfs", nosuidNodev|unix.MS_NOEXEC|unix.MS_RDONLY, "")
	p.Mkdir(newRoot+"/tmp", 0o1777, true)
	p.Mount("tmpfs", newRoot+"/tmp", "tmpfs", nosuidNodev, "mode=1777")

	// pivot_root(".", ".") stacks the old root under the new one; the
	// detaching unmount then drops it, and with it every host mount.
	p.Chdir(newRoot)
	p.PivotRoot(".", ".")
	p.Unmount(".", unix.MNT_DETACH)
	p.Chdir("/")
}

// addWorkdir appends the ops that create the working directory, component
// by component, and change into it. Directories it creates belong to the
// sandbox's user, so a program running as a user can write where it starts.
func (s *Sandbox) addWorkdir(p *spawn.Program) {
	cur := ""
	for _, part := range strings.Split(strings.TrimPrefix(path.Clean(s.workdir), "/"), "/") {
		if part == "" {
			continue
		}
		cur += "/" + part
		p.MkdirOwned(cur, 0o755, s.uid, s.gid)
	}
	p.Chdir(s.workdir)
}
