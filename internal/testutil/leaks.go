package testutil

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandboxkit/sandbox/internal/state"
)

// HostState is what a sandbox could leave behind on the host.
type HostState struct {
	Mounts  int      // lines of /proc/self/mountinfo
	FDs     int      // open descriptors of this process
	FDNames []string // what each descriptor is, "N -> target", to name a leak
	Cgroups []string // cgroups named sandboxkit-* in any hierarchy
	Threads int      // this process's threads (a runaway wait per run shows)
	// Children are this process's child PIDs: a process left by what
	// the test made is one that was not among them.
	Children []string
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
	names := make([]string, 0, len(fds))
	for _, e := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the directory's own descriptor, closed by now
		}
		names = append(names, e.Name()+" -> "+target)
	}
	return HostState{
		Mounts:   strings.Count(string(mi), "\n"),
		FDs:      len(fds),
		FDNames:  names,
		Cgroups:  SandboxCgroups(tb),
		Threads:  len(tasks),
		Children: Children(tb),
	}
}

// CheckFDs fails tb unless this process holds no more descriptors than it
// did at before. A goroutine that has delivered its result may still be
// closing a descriptor of its own, so the count gets two seconds to settle,
// and a descriptor that closed late is logged; a leaked descriptor stays and
// is named with what it points to.
func CheckFDs(tb testing.TB, before HostState, what string) {
	tb.Helper()
	start := time.Now()
	var first []string // what was new at the first look, if anything
	for {
		now := SnapshotHost(tb)
		if now.FDs <= before.FDs {
			if first != nil {
				tb.Logf("%s: %q closed %v after the first look", what, first, time.Since(start).Round(time.Millisecond))
			}
			return
		}
		added := newFDs(before, now)
		if first == nil {
			first = added
		}
		if time.Since(start) > 2*time.Second {
			tb.Errorf("%s: %d descriptors open, %d before; new: %q", what, now.FDs, before.FDs, added)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newFDs names the descriptors of now that before did not have.
func newFDs(before, now HostState) []string {
	added := []string{}
	for _, name := range now.FDNames {
		if !slices.Contains(before.FDNames, name) {
			added = append(added, name)
		}
	}
	return added
}

// OwnCgroups lists the sandbox cgroups of this process, one per
// sandbox: in the v2 hierarchy, or in v1's memory one, which every
// sandbox joins.
func OwnCgroups(tb testing.TB) []string {
	tb.Helper()
	prefix := "sandboxkit-" + strconv.Itoa(os.Getpid()) + "-"
	var own []string
	for _, dir := range SandboxCgroups(tb) {
		parent := filepath.Base(filepath.Dir(dir))
		if strings.HasPrefix(filepath.Base(dir), prefix) && (parent == "memory" || parent == "cgroup") {
			own = append(own, dir)
		}
	}
	return own
}

// SandboxCgroups lists every cgroup directory named sandboxkit-*, in the
// v2 hierarchy and in each v1 hierarchy.
func SandboxCgroups(tb testing.TB) []string {
	tb.Helper()
	var found []string
	for _, pattern := range []string{"/sys/fs/cgroup/sandboxkit-*", "/sys/fs/cgroup/*/sandboxkit-*"} {
		m, err := filepath.Glob(pattern)
		must(tb, err)
		for _, dir := range m {
			if ours(filepath.Base(dir)) {
				found = append(found, dir)
			}
		}
	}
	return found
}

// ours reports whether the cgroup name is one a leak check counts: a
// sandbox's ("sandboxkit-PID-START-ID") whose owner is this process or
// dead. Another live program's sandboxes (a concurrent test binary, a
// developer's service) are not this test's to judge.
func ours(name string) bool {
	rest, _ := strings.CutPrefix(name, "sandboxkit-")
	parts := strings.SplitN(rest, "-", 3)
	if len(parts) < 3 {
		return false
	}
	o, ok := state.ParseOwner(parts[0]+"-"+parts[1], '-')
	self, err := state.Self()
	return ok && (err == nil && o == self || !o.Alive())
}

// Children lists the PIDs whose parent is this process.
func Children(t testing.TB) []string {
	t.Helper()
	var kids []string
	tasks, err := os.ReadDir("/proc/self/task")
	must(t, err)
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "children"))
		if _, serr := os.Stat(filepath.Join("/proc/self/task", task.Name())); serr != nil {
			continue // a thread that ended since ReadDir
		}
		if err != nil {
			t.Fatalf("the kernel's children list (CONFIG_PROC_CHILDREN): %v; without it no leftover process would show", err)
		}
		kids = append(kids, strings.Fields(string(b))...)
	}
	return kids
}

// KeepIPForward restores the host's IPv4 forwarding setting when tb ends:
// a bridge with NAT turns it on for good, as Docker does.
func KeepIPForward(tb testing.TB) {
	const path = "/proc/sys/net/ipv4/ip_forward"
	was, err := os.ReadFile(path)
	must(tb, err)
	tb.Cleanup(func() { os.WriteFile(path, was, 0o644) })
}
