package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// v1Controllers returns the hierarchies a v1 sandbox cgroup is created in:
// memory and cpuacct always, for the usage a Result reports; cpu and pids
// only for their limits, freezer only for an instance (Pause). Each hierarchy costs a mkdir, a migration and an
// rmdir per run, so none is joined for nothing.
func v1Controllers(lim limits) []string {
	c := []string{"memory", "cpuacct"}
	if lim.freezer {
		c = append(c, "freezer")
	}
	if lim.cpu > 0 {
		c = append(c, "cpu")
	}
	if lim.pids > 0 {
		c = append(c, "pids")
	}
	return c
}

// cgroupV1 is a run's cgroup on a v1 (or hybrid) host: a directory of the
// same name in each hierarchy it joins, and a cgroup.procs descriptor of
// each for the child to write itself into.
type cgroupV1 struct {
	root        string
	name        string
	controllers []string
	cg          cgroup1.Cgroup
	fds         []int
}

func newCgroupV1(root, name string, lim limits) (_ *cgroupV1, err error) {
	if lim.oci != nil {
		return newCgroupV1OCI(root, name, lim)
	}
	controllers := v1Controllers(lim)
	var subsystems []cgroup1.Subsystem
	for _, c := range controllers {
		if _, err := os.Stat(filepath.Join(root, c, "cgroup.procs")); err != nil {
			return nil, fmt.Errorf("cgroup v1 controller %s: %w", c, errors.Join(errors.ErrUnsupported, err))
		}
		switch c {
		case "memory":
			subsystems = append(subsystems, cgroup1.NewMemory(root))
		case "cpuacct":
			subsystems = append(subsystems, cgroup1.NewCpuacct(root))
		case "cpu":
			subsystems = append(subsystems, cgroup1.NewCpu(root))
		case "pids":
			subsystems = append(subsystems, cgroup1.NewPids(root))
		case "freezer":
			subsystems = append(subsystems, cgroup1.NewFreezer(root))
		}
	}
	hierarchy := func() ([]cgroup1.Subsystem, error) { return subsystems, nil }
	cg, err := cgroup1.New(cgroup1.StaticPath("/"+name), v1Resources(lim), cgroup1.WithHierarchy(hierarchy))
	if err != nil {
		// New may have created some of the directories.
		for _, c := range controllers {
			os.Remove(filepath.Join(root, c, name))
		}
		return nil, &fs.PathError{Op: "create cgroup", Path: filepath.Join(root, "*", name), Err: err}
	}
	g := &cgroupV1{root: root, name: name, controllers: controllers, cg: cg}
	defer func() {
		if err != nil {
			err = errors.Join(err, g.destroy())
		}
	}()
	if lim.memory > 0 {
		// Without swap accounting there is no memsw file, and no swap to
		// limit beyond memory.limit_in_bytes.
		p := g.path("memory", "memory.memsw.limit_in_bytes")
		if _, serr := os.Stat(p); serr == nil {
			if err := os.WriteFile(p, []byte(strconv.FormatInt(lim.memory, 10)), 0); err != nil {
				return nil, &fs.PathError{Op: "write", Path: p, Err: err}
			}
		}
	}
	if err := g.openProcs(); err != nil {
		return nil, err
	}
	return g, nil
}

// openProcs opens the cgroup.procs file of each of g's controllers, for
// the child to write itself into; destroy (or, for an attached cgroup,
// release) closes them.
func (g *cgroupV1) openProcs() error {
	for _, c := range g.controllers {
		p := g.path(c, "cgroup.procs")
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &fs.PathError{Op: "open", Path: p, Err: err}
		}
		g.fds = append(g.fds, fd)
	}
	return nil
}

func v1Resources(lim limits) *specs.LinuxResources {
	r := &specs.LinuxResources{}
	if lim.memory > 0 {
		m := lim.memory
		r.Memory = &specs.LinuxMemory{Limit: &m}
	}
	if lim.cpu > 0 {
		q, p := cpuQuota(lim.cpu)
		r.CPU = &specs.LinuxCPU{Quota: &q, Period: &p}
	}
	if lim.pids > 0 {
		n := int64(lim.pids)
		r.Pids = &specs.LinuxPids{Limit: &n}
	}
	return r
}

func (g *cgroupV1) path(controller, file string) string {
	return filepath.Join(g.root, controller, g.name, file)
}

func (g *cgroupV1) procsFDs() []int   { return g.fds }
func (g *cgroupV1) cloneFD() int      { return -1 }
func (g *cgroupV1) procsFile() string { return g.path("memory", "cgroup.procs") }

func (g *cgroupV1) usage() (usage, error) {
	var u usage
	ns, err := readInt(g.path("cpuacct", "cpuacct.usage"))
	if err != nil {
		return u, err
	}
	u.cpu = time.Duration(ns)
	if u.memoryPeak, err = readInt(g.path("memory", "memory.max_usage_in_bytes")); err != nil {
		return u, err
	}
	ooms, err := readKey(g.path("memory", "memory.oom_control"), "oom_kill")
	u.oomKills = uint64(ooms)
	return u, err
}

func (g *cgroupV1) destroy() error {
	for _, fd := range g.fds {
		unix.Close(fd)
	}
	g.fds = nil
	var errs []error
	for _, c := range g.controllers {
		errs = append(errs, removeCgroupDir(filepath.Join(g.root, c, g.name)))
	}
	return errors.Join(errs...)
}

func (g *cgroupV1) now() (int64, int, error) {
	mem, err := readInt(g.path("memory", "memory.usage_in_bytes"))
	if err != nil {
		return 0, 0, err
	}
	procs, err := countLines(g.path("memory", "cgroup.procs"))
	return mem, procs, err
}
