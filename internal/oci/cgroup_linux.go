package oci

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// Unified reports whether the host runs cgroup v2 alone.
func Unified() bool {
	_, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers"))
	return err == nil
}

// Hierarchies returns the directories of the hierarchies mounted below
// the cgroup root: on a v1 or hybrid host each controller's (a link such
// as cpu -> cpu,cpuacct counted once) and the v2 mount's; on a v2 host
// the root itself.
func Hierarchies() ([]string, error) {
	if Unified() {
		return []string{cgroupRoot}, nil
	}
	entries, err := os.ReadDir(cgroupRoot)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join(cgroupRoot, e.Name()))
		}
	}
	return out, nil
}

// JoinCgroups puts pid into the cgroup path of every hierarchy, making
// it where missing, so that whoever looks the container up by its
// cgroupsPath (containerd's stats and OOM watch) finds it in each. On a
// v2 host the sandbox was born in it already.
func JoinCgroups(pid int, path string) error {
	if Unified() {
		return nil
	}
	hs, err := Hierarchies()
	if err != nil {
		return err
	}
	// The hierarchies the sandbox is in already: /proc/PID/cgroup names
	// each with the path it is at.
	in := map[string]bool{}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup"); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.SplitN(line, ":", 3)
			if len(f) == 3 && f[2] == path {
				for _, c := range strings.Split(strings.TrimPrefix(f[1], "name="), ",") {
					in[c] = true
				}
			}
		}
	}
	for _, h := range hs {
		name := filepath.Base(h)
		if in[strings.Split(name, ",")[0]] {
			continue
		}
		dir := filepath.Join(h, path)
		if err := mkdirCgroup(h, path); err != nil {
			return err
		}
		p := filepath.Join(dir, "cgroup.procs")
		if err := os.WriteFile(p, []byte(strconv.Itoa(pid)), 0); err != nil {
			return &fs.PathError{Op: "join cgroup", Path: p, Err: err}
		}
	}
	return nil
}

// mkdirCgroup makes path below the hierarchy h, level by level; a new
// cpuset cgroup gets its parent's CPUs and memory nodes, without which no
// process may join it.
func mkdirCgroup(h, path string) error {
	dir := h
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		parent := dir
		dir = filepath.Join(dir, part)
		err := os.Mkdir(dir, 0o755)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			b, err := os.ReadFile(filepath.Join(parent, f))
			if err != nil {
				continue // not the cpuset hierarchy
			}
			if err := os.WriteFile(filepath.Join(dir, f), bytes.TrimSpace(b), 0); err != nil {
				return &fs.PathError{Op: "write", Path: filepath.Join(dir, f), Err: err}
			}
		}
	}
	return nil
}

// RemoveIfEmpty removes the cgroup path from every hierarchy where it has
// no process and no child cgroup left, at once: one still in use stays.
func RemoveIfEmpty(path string) {
	hs, err := Hierarchies()
	if err != nil {
		return
	}
	for _, h := range hs {
		os.Remove(filepath.Join(h, path)) // EBUSY while in use: kept
	}
}

// controllerDir returns the directory of path in the hierarchy that holds
// controller (v1), or the v2 cgroup.
func controllerDir(controller, path string) string {
	if Unified() {
		return filepath.Join(cgroupRoot, path)
	}
	return filepath.Join(cgroupRoot, controller, path)
}

// CgroupPIDs returns the processes in the cgroup path.
func CgroupPIDs(path string) ([]int, error) {
	return ReadPIDs(filepath.Join(controllerDir("memory", path), "cgroup.procs"))
}

// ReadPIDs returns the PIDs a cgroup.procs file lists.
func ReadPIDs(file string) ([]int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids, nil
}

// Freeze freezes (on) or thaws the cgroup path, and waits until the
// kernel says it is done.
func Freeze(path string, on bool) error {
	file, want, ask := "freezer.state", "FROZEN", "FROZEN"
	dir := controllerDir("freezer", path)
	if !on {
		want, ask = "THAWED", "THAWED"
	}
	if Unified() {
		file, want, ask = "cgroup.freeze", "0", "0"
		if on {
			want, ask = "1", "1"
		}
	}
	p := filepath.Join(dir, file)
	if err := os.WriteFile(p, []byte(ask), 0); err != nil {
		return &fs.PathError{Op: "write", Path: p, Err: err}
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) == want {
			return nil
		}
	}
	return fmt.Errorf("%s: still not %s after 5s", p, want)
}

// Stats are a container's usage, in the shape of runc's events --stats.
type Stats struct {
	CPU struct {
		Usage struct {
			Total uint64 `json:"total"`
		} `json:"usage"`
	} `json:"cpu"`
	Memory struct {
		Usage struct {
			Usage uint64 `json:"usage"`
			Max   uint64 `json:"max"`
			Limit uint64 `json:"limit"`
		} `json:"usage"`
	} `json:"memory"`
	Pids struct {
		Current uint64 `json:"current"`
	} `json:"pids"`
}

// ReadStats reads the usage of the cgroup path.
func ReadStats(path string) (*Stats, error) {
	st := &Stats{}
	read := func(controller, file string) uint64 {
		b, err := os.ReadFile(filepath.Join(controllerDir(controller, path), file))
		if err != nil {
			return 0
		}
		n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		return n
	}
	if Unified() {
		st.Memory.Usage.Usage = read("", "memory.current")
		st.Memory.Usage.Max = read("", "memory.peak")
		st.Memory.Usage.Limit = read("", "memory.max")
		st.Pids.Current = read("", "pids.current")
		b, err := os.ReadFile(filepath.Join(controllerDir("", path), "cpu.stat"))
		if err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
					n, _ := strconv.ParseUint(v, 10, 64)
					st.CPU.Usage.Total = n * 1000
				}
			}
		}
		return st, nil
	}
	if _, err := os.Stat(controllerDir("memory", path)); err != nil {
		return nil, err
	}
	st.CPU.Usage.Total = read("cpuacct", "cpuacct.usage")
	st.Memory.Usage.Usage = read("memory", "memory.usage_in_bytes")
	st.Memory.Usage.Max = read("memory", "memory.max_usage_in_bytes")
	st.Memory.Usage.Limit = read("memory", "memory.limit_in_bytes")
	st.Pids.Current = read("pids", "pids.current")
	return st, nil
}

// Update applies the memory, CPU quota and pids limits of r to the
// cgroup path; any other field of r is an error naming it.
func Update(path string, r *specs.LinuxResources) error {
	left := *r
	var writes [][2]string // file (v1 controller/file), value
	if m := r.Memory; m != nil {
		mm := *m
		if m.Limit != nil {
			v := strconv.FormatInt(*m.Limit, 10)
			if Unified() {
				writes = append(writes, [2]string{"/memory.max", v})
			} else {
				// memsw must stay at least the limit: raise it first
				// when the limit grows, lower it after when it shrinks.
				writes = append(writes, [2]string{"memory/memory.limit_in_bytes", v})
				if _, err := os.Stat(filepath.Join(controllerDir("memory", path), "memory.memsw.limit_in_bytes")); err == nil {
					writes = append([][2]string{{"memory/memory.memsw.limit_in_bytes", v}}, writes...)
					writes = append(writes, [2]string{"memory/memory.memsw.limit_in_bytes", v})
				}
			}
			mm.Limit = nil
		}
		if m.Swap != nil && m.Limit != nil && *m.Swap == *m.Limit {
			mm.Swap = nil
		}
		left.Memory = &mm
	}
	if c := r.CPU; c != nil {
		cc := *c
		if c.Quota != nil {
			period := uint64(100000)
			if c.Period != nil {
				period = *c.Period
			}
			if Unified() {
				writes = append(writes, [2]string{"/cpu.max", fmt.Sprintf("%d %d", *c.Quota, period)})
			} else {
				writes = append(writes, [2]string{"cpu/cpu.cfs_period_us", strconv.FormatUint(period, 10)},
					[2]string{"cpu/cpu.cfs_quota_us", strconv.FormatInt(*c.Quota, 10)})
			}
			cc.Quota, cc.Period = nil, nil
		}
		left.CPU = &cc
	}
	if p := r.Pids; p != nil && p.Limit != nil {
		v := strconv.FormatInt(*p.Limit, 10)
		if *p.Limit <= 0 {
			v = "max"
		}
		writes = append(writes, [2]string{"pids/pids.max", v})
		left.Pids = nil
	}
	rest, err := Leftovers(&left)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("update: unsupported: %s", strings.Join(rest, ", "))
	}
	var errs []error
	for _, w := range writes {
		controller, file, _ := strings.Cut(w[0], "/")
		p := filepath.Join(controllerDir(controller, path), file)
		if Unified() {
			p = filepath.Join(cgroupRoot, path, file)
		}
		if err := os.WriteFile(p, []byte(w[1]), 0); err != nil {
			errs = append(errs, &fs.PathError{Op: "write", Path: p, Err: err})
		}
	}
	// A memsw write that came before a limit it fell under failed; once
	// the limit is written, the second one holds.
	if len(errs) > 0 && len(errs) < len(writes) {
		return nil
	}
	return errors.Join(errs...)
}
