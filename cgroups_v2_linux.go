package sandbox

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/cgroups/v3/cgroup2"
	"golang.org/x/sys/unix"
)

// cgroupV2 is a run's cgroup on a v2 host, and a descriptor of its
// directory, which the child is born in (CLONE_INTO_CGROUP).
type cgroupV2 struct {
	path  string
	dirFD int
}

func newCgroupV2(root, name string, lim limits) (_ *cgroupV2, err error) {
	res := &cgroup2.Resources{
		// An empty Memory still enables the controller, for usage.
		Memory: &cgroup2.Memory{},
		CPU:    &cgroup2.CPU{},
		Pids:   &cgroup2.Pids{},
	}
	if lim.memory > 0 {
		m := lim.memory
		res.Memory.Max = &m
	}
	if lim.cpu > 0 {
		q, p := cpuQuota(lim.cpu)
		res.CPU.Max = cgroup2.NewCPUMax(&q, &p)
	}
	if lim.pids > 0 {
		res.Pids.Max = int64(lim.pids)
	}
	if lim.oci != nil {
		res = ociV2Resources(lim.oci) // which holds the three above
	}
	path := filepath.Join(root, name)
	if _, err := cgroup2.NewManager(root, "/"+name, res); err != nil {
		os.Remove(path)
		return nil, &fs.PathError{Op: "create cgroup", Path: path, Err: err}
	}
	g := &cgroupV2{path: path, dirFD: -1}
	defer func() {
		if err != nil {
			err = errors.Join(err, g.destroy())
		}
	}()
	if lim.memory > 0 {
		// memory.swap.max exists only with swap accounting.
		p := filepath.Join(path, "memory.swap.max")
		if _, serr := os.Stat(p); serr == nil {
			if err := os.WriteFile(p, []byte("0"), 0); err != nil {
				return nil, &fs.PathError{Op: "write", Path: p, Err: err}
			}
		}
	}
	fd, err := unix.Open(path, unix.O_DIRECTORY|unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	g.dirFD = fd
	return g, nil
}

func (g *cgroupV2) procsFDs() []int   { return nil }
func (g *cgroupV2) cloneFD() int      { return g.dirFD }
func (g *cgroupV2) procsFile() string { return filepath.Join(g.path, "cgroup.procs") }

func (g *cgroupV2) usage() (usage, error) {
	var u usage
	us, err := readKey(filepath.Join(g.path, "cpu.stat"), "usage_usec")
	if err != nil {
		return u, err
	}
	u.cpu = time.Duration(us) * time.Microsecond
	// memory.peak needs Linux 5.19; before it, current usage is the best
	// there is.
	u.memoryPeak, err = readInt(filepath.Join(g.path, "memory.peak"))
	if errors.Is(err, fs.ErrNotExist) {
		u.memoryPeak, err = readInt(filepath.Join(g.path, "memory.current"))
	}
	if err != nil {
		return u, err
	}
	ooms, err := readKey(filepath.Join(g.path, "memory.events"), "oom_kill")
	u.oomKills = uint64(ooms)
	return u, err
}

func (g *cgroupV2) destroy() error {
	if g.dirFD >= 0 {
		unix.Close(g.dirFD)
		g.dirFD = -1
	}
	return removeCgroupDir(g.path)
}

func (g *cgroupV2) now() (int64, int, error) {
	mem, err := readInt(filepath.Join(g.path, "memory.current"))
	if err != nil {
		return 0, 0, err
	}
	procs, err := countLines(filepath.Join(g.path, "cgroup.procs"))
	return mem, procs, err
}
