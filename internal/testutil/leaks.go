package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// HostState is what a sandbox could leave behind on the host.
type HostState struct {
	Mounts  int      // lines of /proc/self/mountinfo
	FDs     int      // open descriptors of this process
	Cgroups []string // cgroups named sandboxkit-* in any hierarchy
	Threads int      // this process's threads (a runaway wait per run shows)
}

// SnapshotHost records the host's state for a later comparison.
func SnapshotHost(tb testing.TB) HostState {
	tb.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	must(tb, err)
	fds, err := os.ReadDir("/proc/self/fd")
	must(tb, err)
	tasks, err := os.ReadDir("/proc/self/task")
	must(tb, err)
	return HostState{
		Mounts:  strings.Count(string(mi), "\n"),
		FDs:     len(fds),
		Cgroups: SandboxCgroups(tb),
		Threads: len(tasks),
	}
}

// SandboxCgroups lists every cgroup directory named sandboxkit-*, in the
// v2 hierarchy and in each v1 hierarchy.
func SandboxCgroups(tb testing.TB) []string {
	tb.Helper()
	var found []string
	for _, pattern := range []string{"/sys/fs/cgroup/sandboxkit-*", "/sys/fs/cgroup/*/sandboxkit-*"} {
		m, err := filepath.Glob(pattern)
		must(tb, err)
		found = append(found, m...)
	}
	return found
}

// KeepIPForward restores the host's IPv4 forwarding setting when tb ends:
// a bridge with NAT turns it on for good, as Docker does.
func KeepIPForward(tb testing.TB) {
	const path = "/proc/sys/net/ipv4/ip_forward"
	was, err := os.ReadFile(path)
	must(tb, err)
	tb.Cleanup(func() { os.WriteFile(path, was, 0o644) })
}
