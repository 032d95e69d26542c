//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// innerEnv marks the invocation that runs inside the private mount
	// namespace. Its value is the outer invocation's PID.
	innerEnv = "SANDBOXKIT_COMPARE_INNER"
	// cgroupRoot is where the host's cgroup file systems are mounted.
	cgroupRoot = "/sys/fs/cgroup"
	// unifiedDir is the cgroup2 mount of a hybrid host. crun refuses to run
	// while it is there, so the inner invocation hides it under a tmpfs.
	unifiedDir = cgroupRoot + "/unified"
	// idPrefix starts every container ID and cgroup name this program
	// makes, so that leftovers can be found.
	idPrefix = "sbxcmp-"
	// sandboxkitPrefix starts the names of sandboxkit's cgroups.
	sandboxkitPrefix = "sandboxkit-"
)

// runtimeStateDirs are the state directories of sandboxkit-runtime, runc
// and crun.
var runtimeStateDirs = []string{"/run/sandboxkit-runtime", "/run/runc", "/run/crun"}

// runOuter re-executes this program under unshare(1) in a private mount
// namespace, waits for it, and then checks that the host was left as it
// was: the same mount at /sys/fs/cgroup/unified, no container state, no
// cgroup of ours.
func runOuter(ctx context.Context, o options, args []string, stdout io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	mountsBefore, err := mountEntries(cgroupRoot)
	if err != nil {
		return err
	}
	existed := map[string]bool{}
	for _, d := range runtimeStateDirs {
		_, err := os.Stat(d)
		existed[d] = err == nil
	}
	kitBefore := cgroupDirs(sandboxkitPrefix)

	cmd := exec.CommandContext(ctx, "unshare", append([]string{"--mount", "--propagation", "private", "--", exe}, args...)...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", innerEnv, os.Getpid()))
	cmd.Stdout, cmd.Stderr = stdout, os.Stderr
	// On ^C the inner invocation gets SIGINT too and cleans up; give it
	// time to do so instead of killing it.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	runErr := cmd.Run()
	if runErr != nil {
		runErr = fmt.Errorf("benchmark in a private mount namespace: %w", runErr)
	}

	var problems []error
	mountsAfter, err := mountEntries(cgroupRoot)
	switch {
	case err != nil:
		problems = append(problems, err)
	case !slices.Equal(mountsAfter, mountsBefore):
		problems = append(problems, fmt.Errorf("host mounts under %s changed: were %q, are %q", cgroupRoot, mountsBefore, mountsAfter))
	}
	if left := cgroupDirs(idPrefix); len(left) > 0 {
		problems = append(problems, fmt.Errorf("cgroups left on the host: %s", strings.Join(left, " ")))
	}
	for _, d := range runtimeStateDirs {
		entries, err := os.ReadDir(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			problems = append(problems, err)
		case len(entries) == 0 && !existed[d]:
			// The runtime made it on first use; leave the host as found.
			if err := os.Remove(d); err != nil {
				problems = append(problems, err)
			}
		default:
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), idPrefix) {
					problems = append(problems, fmt.Errorf("container state left: %s", filepath.Join(d, e.Name())))
				}
			}
		}
	}
	if err := errors.Join(problems...); err != nil {
		return errors.Join(runErr, fmt.Errorf("host check: %w", err))
	}
	if runErr != nil {
		return runErr
	}
	if o.json == "-" {
		return nil // nothing but JSON on stdout
	}
	var kitNew []string
	for _, d := range cgroupDirs(sandboxkitPrefix) {
		if !slices.Contains(kitBefore, d) {
			kitNew = append(kitNew, d)
		}
	}
	if len(kitNew) > 0 {
		// Other sandboxkit users on the host may own these.
		fmt.Fprintf(stdout, "\nnote: sandboxkit cgroups appeared during the run (not necessarily ours): %s\n", strings.Join(kitNew, " "))
	}
	fmt.Fprintf(stdout, "\nhost check: the %d mounts under %s are unchanged, %s still %s; no container state or cgroup of this run left\n",
		len(mountsAfter), cgroupRoot, unifiedDir, fsType(unifiedDir))
	return nil
}

// hideUnified makes /sys/fs/cgroup look like that of a host with only
// cgroup v1: it mounts a fresh tmpfs over /sys/fs/cgroup and binds every
// hierarchy but the cgroup2 one at "unified" back into it. A tmpfs over
// unified alone does not do: crun 1.8 then still tries to create a cgroup
// in unified for the "0::" line of /proc/self/cgroup, gets EROFS and fails.
// staging is an empty directory to hold the old mounts meanwhile.
//
// It refuses to do any of this unless this process is in a mount namespace
// of its own, so that the host never sees these mounts.
func hideUnified(staging string) error {
	own, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return err
	}
	parent, err := os.Readlink(fmt.Sprintf("/proc/%s/ns/mnt", os.Getenv(innerEnv)))
	if err != nil {
		return err
	}
	if own == parent {
		return fmt.Errorf("not in a private mount namespace (%s), refusing to mount over %s", own, cgroupRoot)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(unifiedDir, &st); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil // no hybrid mount to hide
		}
		return &fs.PathError{Op: "statfs", Path: unifiedDir, Err: err}
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return nil
	}
	if err := unix.Mount(cgroupRoot, staging, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return &fs.PathError{Op: "bind", Path: staging, Err: err}
	}
	defer os.Remove(staging)
	defer unix.Unmount(staging, unix.MNT_DETACH)
	if err := unix.Mount("tmpfs", cgroupRoot, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
		return &fs.PathError{Op: "mount tmpfs", Path: cgroupRoot, Err: err}
	}
	entries, err := os.ReadDir(staging)
	if err != nil {
		return err
	}
	for _, e := range entries {
		src, dst := filepath.Join(staging, e.Name()), filepath.Join(cgroupRoot, e.Name())
		switch {
		case e.Name() == filepath.Base(unifiedDir):
		case e.Type()&fs.ModeSymlink != 0: // e.g. cpu,cpuacct -> cpu
			target, err := os.Readlink(src)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
		case e.IsDir():
			if err := os.Mkdir(dst, 0o555); err != nil {
				return err
			}
			if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return &fs.PathError{Op: "bind", Path: dst, Err: fmt.Errorf("from %s: %w", src, err)}
			}
		}
	}
	return nil
}

// mountEntries returns the lines of /proc/self/mountinfo for the mounts
// at or under dir, without their mount and parent IDs.
func mountEntries(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var entries []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			entries = append(entries, strings.Join(fields[2:], " "))
		}
	}
	return entries, sc.Err()
}

// fsType names the type of the file system at dir.
func fsType(dir string) string {
	var st unix.Statfs_t
	switch err := unix.Statfs(dir, &st); {
	case err != nil:
		return err.Error()
	case st.Type == unix.CGROUP2_SUPER_MAGIC:
		return "cgroup2"
	case st.Type == unix.TMPFS_MAGIC:
		return "tmpfs"
	}
	return fmt.Sprintf("file system type %#x", st.Type)
}

// cgroupDirs lists the cgroup directories directly under each hierarchy of
// /sys/fs/cgroup whose names start with prefix.
func cgroupDirs(prefix string) []string {
	var dirs []string
	hierarchies, _ := os.ReadDir(cgroupRoot)
	for _, h := range hierarchies {
		entries, _ := os.ReadDir(filepath.Join(cgroupRoot, h.Name()))
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
				dirs = append(dirs, filepath.Join(cgroupRoot, h.Name(), e.Name()))
			}
		}
	}
	return dirs
}

// processesUnder lists the processes whose executable lies under dir.
func processesUnder(dir string) []string {
	var found []string
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		exe, err := os.Readlink(filepath.Join("/proc", p.Name(), "exe"))
		if err == nil && strings.HasPrefix(exe, dir+"/") {
			found = append(found, p.Name()+" "+exe)
		}
	}
	return found
}
