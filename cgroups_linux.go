package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/state"
)

// cgroupRoot is where cgroup file systems are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroup is one run's control group, on cgroup v1 or v2. containerd/cgroups
// creates it, writes its limits and removes it; usage is read here from the
// few files a Result needs.
type cgroup interface {
	// now returns the memory its processes use now, in bytes, and how
	// many processes it holds.
	now() (memory int64, procs int, err error)
	// procsFDs are open cgroup.procs files (v1) that the child writes "0"
	// to, joining before it runs any of the payload's code.
	procsFDs() []int
	// cloneFD is an open cgroup directory (v2) for CLONE_INTO_CGROUP, or -1.
	cloneFD() int
	// procsFile is the path of a cgroup.procs file that lists every
	// process of the cgroup (v1: the memory hierarchy's, which every
	// sandbox joins).
	procsFile() string
	// usage reads what the cgroup's processes used.
	usage() (usage, error)
	// freeze freezes, or thaws, every process of the cgroup and returns
	// once the kernel says it is done.
	freeze(ctx context.Context, frozen bool) error
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

// cpuQuota converts cores to a CFS quota and period in microseconds.
func cpuQuota(c Cores) (quota int64, period uint64) {
	period = uint64(cfsPeriod / time.Microsecond)
	quota = int64(float64(c) * float64(period))
	if quota < 1000 {
		quota = 1000 // the kernel's minimum quota is 1 ms
	}
	return quota, period
}

// cgroupName returns the name of a new run's cgroup: the prefix, the
// caller's PID and start time (so that Collect can tell a dead owner from a
// live one, even after the PID is reused), and a random part.
func cgroupName(owner state.Owner) string {
	return cgroupPrefix + owner.String() + "-" + state.RandomID(8)
}

// countLines returns how many lines the file at path holds.
func countLines(path string) (int, error) {
	b, err := os.ReadFile(path)
	return bytes.Count(b, []byte("\n")), err
}
