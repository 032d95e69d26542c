package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// newCgroupV1OCI creates a v1 cgroup for an OCI spec's resources (read by
// FromSpec): in every hierarchy the host mounts, as runc does, so that the
// spec's devices, blkio, net_cls, hugetlb and other settings apply and
// whoever looks the container up by its cgroup path finds it in each.
// containerd/cgroups writes the resources.
func newCgroupV1OCI(root, name string, lim limits) (_ *cgroupV1, err error) {
	subsystems, err := cgroup1.Default()
	if err != nil {
		return nil, fmt.Errorf("cgroup v1 hierarchies: %w", err)
	}
	hierarchy := func() ([]cgroup1.Subsystem, error) { return subsystems, nil }
	cg, err := cgroup1.New(cgroup1.StaticPath("/"+name), withSandboxDevices(lim.oci), cgroup1.WithHierarchy(hierarchy))
	var dirs []string
	for _, s := range subsystems {
		if p, ok := s.(interface{ Path(string) string }); ok {
			dirs = append(dirs, p.Path("/"+name))
		}
	}
	if err != nil {
		for _, d := range dirs {
			os.Remove(d)
		}
		return nil, &fs.PathError{Op: "create cgroup", Path: filepath.Join(root, "*", name), Err: err}
	}
	g := &cgroupV1{root: root, name: name, cg: cg}
	for _, d := range dirs {
		// g.path joins root, controller and name: the controller is the
		// hierarchy's directory below root (cpu,cpuacct; systemd).
		rel, rerr := filepath.Rel(root, strings.TrimSuffix(d, "/"+name))
		if rerr != nil {
			rel = filepath.Base(strings.TrimSuffix(d, "/"+name))
		}
		g.controllers = append(g.controllers, rel)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, g.destroy())
		}
	}()
	if err := g.openProcs(); err != nil {
		return nil, err
	}
	return g, nil
}

// withSandboxDevices returns r with, after its own device rules, those
// that the sandbox's own /dev needs, as runc adds them: mknod of any
// device (for /dev itself; every other mount is nodev), and null, zero,
// full, random, urandom, tty, console, ptmx and the ptys. An r without
// device rules is returned as it is.
func withSandboxDevices(r *specs.LinuxResources) *specs.LinuxResources {
	if len(r.Devices) == 0 {
		return r
	}
	c := cloneResources(r)
	rule := func(kind string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		d := specs.LinuxDeviceCgroup{Allow: true, Type: kind, Access: access}
		if major >= 0 {
			d.Major = &major
		}
		if minor >= 0 {
			d.Minor = &minor
		}
		return d
	}
	c.Devices = append(c.Devices, rule("c", -1, -1, "m"), rule("b", -1, -1, "m"))
	for _, d := range [][2]int64{{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 1}, {5, 2}, {136, -1}} {
		c.Devices = append(c.Devices, rule("c", d[0], d[1], "rwm"))
	}
	return c
}

// ociV2Resources returns an OCI spec's resources for cgroup v2, with the
// memory, CPU and pids controllers always on, for usage.
func ociV2Resources(r *specs.LinuxResources) *cgroup2.Resources {
	res := cgroup2.ToResources(withSandboxDevices(r))
	if res.Memory == nil {
		res.Memory = &cgroup2.Memory{}
	}
	if res.CPU == nil {
		res.CPU = &cgroup2.CPU{}
	}
	if res.Pids == nil {
		res.Pids = &cgroup2.Pids{}
	}
	return res
}
