package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// cgroupRoot is where cgroup file systems are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroup is one run's control group, on cgroup v1 or v2. containerd/cgroups
// creates it, writes its limits and removes it; usage is read here from the
// few files a Result needs.
type cgroup interface {
	// procsFDs are open cgroup.procs files (v1) that the child writes "0"
	// to, joining before it runs any of the payload's code.
	procsFDs() []int
	// cloneFD is an open cgroup directory (v2) for CLONE_INTO_CGROUP, or -1.
	cloneFD() int
	// usage reads what the cgroup's processes used.
	usage() (usage, error)
	// destroy closes the open files and removes the cgroup, which must have
	// no process left. It is idempotent.
	destroy() error
}

// newCgroup creates a cgroup named name with lim, on whichever cgroup
// version the host runs. A hybrid host (v1 controllers plus a cgroup2 mount
// with none of ours) is treated as v1.
func newCgroup(name string, lim limits) (cgroup, error) {
	switch cgroups.Mode() {
	case cgroups.Unified:
		return newCgroupV2(cgroupRoot, name, lim)
	case cgroups.Legacy, cgroups.Hybrid:
		return newCgroupV1(cgroupRoot, name, lim)
	}
	return nil, fmt.Errorf("no cgroup file system at %s: %w", cgroupRoot, errors.ErrUnsupported)
}

// v1Controllers returns the hierarchies a v1 sandbox cgroup is created in:
// memory and cpuacct always, for the usage a Result reports; cpu and pids
// only for their limits. Each hierarchy costs a mkdir, a migration and an
// rmdir per run, so none is joined for nothing.
func v1Controllers(lim limits) []string {
	c := []string{"memory", "cpuacct"}
	if lim.cpu > 0 {
		c = append(c, "cpu")
	}
	if lim.pids > 0 {
		c = append(c, "pids")
	}
	return c
}

type cgroupV1 struct {
	root        string
	name        string
	controllers []string
	cg          cgroup1.Cgroup
	fds         []int
}

func newCgroupV1(root, name string, lim limits) (_ *cgroupV1, err error) {
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
	for _, c := range controllers {
		p := g.path(c, "cgroup.procs")
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: p, Err: err}
		}
		g.fds = append(g.fds, fd)
	}
	return g, nil
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

// cpuQuota converts cores to a CFS quota and period in microseconds.
func cpuQuota(c Cores) (quota int64, period uint64) {
	period = uint64(cfsPeriod / time.Microsecond)
	quota = int64(float64(c) * float64(period))
	if quota < 1000 {
		quota = 1000 // the kernel's minimum quota is 1 ms
	}
	return quota, period
}

func (g *cgroupV1) path(controller, file string) string {
	return filepath.Join(g.root, controller, g.name, file)
}

func (g *cgroupV1) procsFDs() []int { return g.fds }
func (g *cgroupV1) cloneFD() int    { return -1 }

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

func (g *cgroupV2) procsFDs() []int { return nil }
func (g *cgroupV2) cloneFD() int    { return g.dirFD }

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

// removeCgroupDir removes a cgroup directory, retrying briefly while the
// kernel still counts exiting processes in it. A missing directory is not an
// error, so removal is idempotent.
func removeCgroupDir(path string) error {
	delay := 100 * time.Microsecond
	for {
		err := unix.Rmdir(path)
		switch {
		case err == nil, err == unix.ENOENT:
			return nil
		case err == unix.EBUSY && delay < 200*time.Millisecond:
			time.Sleep(delay)
			delay *= 2
		default:
			return &fs.PathError{Op: "remove cgroup", Path: path, Err: err}
		}
	}
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, &fs.PathError{Op: "parse", Path: path, Err: err}
	}
	return n, nil
}

// readKey reads the value of key from a flat-keyed cgroup file ("key
// value" lines). A missing key reads as 0.
func readKey(path, key string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, &fs.PathError{Op: "parse", Path: path, Err: err}
			}
			return n, nil
		}
	}
	return 0, sc.Err()
}
