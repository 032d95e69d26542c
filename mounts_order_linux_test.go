package sandbox_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox"
)

// mountLine is one line of /proc/self/mountinfo, the parts these tests
// read.
type mountLine struct {
	point, fstype, source string
	optional              []string // shared:N, master:N, unbindable
}

// printMountinfo is a script that prints the sandbox's mountinfo.
const printMountinfo = "cat /proc/self/mountinfo"

// parseMountinfo reads mountinfo text into its lines, in order.
func parseMountinfo(t *testing.T, text string) []mountLine {
	t.Helper()
	var out []mountLine
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		before, after, ok := strings.Cut(l, " - ")
		require.True(t, ok, "mountinfo line without a separator: %q", l)
		f, g := strings.Fields(before), strings.Fields(after)
		require.GreaterOrEqual(t, len(f), 6, "mountinfo line %q", l)
		require.GreaterOrEqual(t, len(g), 2, "mountinfo line %q", l)
		out = append(out, mountLine{point: f[4], fstype: g[0], source: g[1], optional: f[6:]})
	}
	return out
}

// under returns the mount points of lines below dir, in mountinfo's order.
func under(lines []mountLine, dir string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l.point, dir+"/") {
			out = append(out, l.point)
		}
	}
	return out
}

func find(t *testing.T, lines []mountLine, point string) mountLine {
	t.Helper()
	i := slices.IndexFunc(lines, func(l mountLine) bool { return l.point == point })
	require.GreaterOrEqual(t, i, 0, "no mount at %s in the sandbox's mountinfo", point)
	return lines[i]
}

func TestMountsAppearInTheOrderGivenWithTheirSource(t *testing.T) {
	sb, _ := busybox(t)
	host := t.TempDir()
	file := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	sb = sb.WithTmpfs("/m/t1", 1<<20).WithBind(host, "/m/b2").WithTmpfs("/m/t3", 1<<20).WithBind(file, "/m/b4", sandbox.ReadOnly)
	for name, sb := range variants(sb) {
		res := sh(t, sb, printMountinfo)
		lines := parseMountinfo(t, string(res.Stdout))
		assert.Equal(t, []string{"/m/t1", "/m/b2", "/m/t3", "/m/b4"}, under(lines, "/m"),
			"%s: mountinfo must list the mounts in the order WithTmpfs and WithBind gave them", name)
		for _, p := range []string{"/m/t1", "/m/t3"} {
			assert.Equal(t, "tmpfs", find(t, lines, p).source, "%s: a tmpfs's source in mountinfo", name)
		}
		proc := slices.IndexFunc(lines, func(l mountLine) bool { return l.point == "/proc" })
		first := slices.IndexFunc(lines, func(l mountLine) bool { return strings.HasPrefix(l.point, "/m/") })
		assert.Less(t, proc, first, "%s: the sandbox's own /proc comes before the binds", name)
	}
}

// specWith returns the spec of sb for a run of script with extra mounts.
func specWith(t *testing.T, sb *sandbox.Sandbox, script string, mounts ...specs.Mount) *specs.Spec {
	t.Helper()
	spec, err := sb.Spec("/bin/sh", "-c", script)
	require.NoError(t, err)
	spec.Mounts = append(spec.Mounts, mounts...)
	return spec
}

// sharedHostDir returns a new directory of the host with a tmpfs mounted
// on it in a peer group of its own, and that group's ID.
func sharedHostDir(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"))
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	require.NoError(t, unix.Mount("", dir, "", unix.MS_SHARED, ""))
	mi, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	host := find(t, parseMountinfo(t, string(mi)), dir)
	require.Len(t, host.optional, 1, "the host's tmpfs at %s: one peer group", dir)
	group, ok := strings.CutPrefix(host.optional[0], "shared:")
	require.True(t, ok, "the host's tmpfs at %s is shared: %v", dir, host.optional)
	return dir, group
}

func TestSpecMountsKeepTheirOrderSourceAndPropagation(t *testing.T) {
	sb, _ := busybox(t)
	src, group := sharedHostDir(t)
	require.NoError(t, os.Mkdir(filepath.Join(src, "later"), 0o755))
	tmpfs := func(dst, source string, opts ...string) specs.Mount {
		return specs.Mount{Destination: dst, Type: "tmpfs", Source: source, Options: append([]string{"nosuid", "strictatime", "mode=755", "size=1k"}, opts...)}
	}
	bind := func(dst string, opts ...string) specs.Mount {
		return specs.Mount{Destination: dst, Source: src, Options: append([]string{"nosuid", "strictatime", "mode=755", "size=1k"}, opts...)}
	}
	// The runtime-tools suite's mounts file, with a source that is a
	// shared mount of the host, so that a slave has a master.
	mounts := []specs.Mount{
		tmpfs("/p/t-shared", "tmpfs", "shared"), tmpfs("/p/t-slave", "tmpfs", "slave"), tmpfs("/p/t-private", "shm", "private"),
		tmpfs("/p/t-unbindable", "tmpfs", "unbindable"),
		bind("/p/b-shared", "bind", "shared"), bind("/p/b-rshared", "rbind", "rshared"),
		bind("/p/b-slave", "bind", "slave"), bind("/p/b-rslave", "rbind", "rslave"),
		bind("/p/b-private", "bind", "private"), bind("/p/b-rprivate", "rbind", "rprivate"),
		bind("/p/b-unbindable", "bind", "unbindable"), bind("/p/b-runbindable", "rbind", "runbindable"),
		bind("/p/b-default", "rbind"),
	}
	// The sandbox mounts below its shared binds itself (allowed for this
	// test): that must reach the sandbox's peers, never the host's.
	require.NoError(t, os.Mkdir(filepath.Join(src, "inside"), 0o755))
	sb = sb.WithCapabilities(append(sandbox.DefaultCapabilities(), "CAP_SYS_ADMIN")...).
		WithSeccomp(sandbox.DefaultSeccompProfile().Allow("mount"))
	script := `mount -t tmpfs in1 /p/b-shared/inside && mount -t tmpfs in2 /p/b-rshared/inside &&
		touch /p/b-default/started; while [ ! -e /p/b-default/go ]; do sleep 0.05; done; cat /proc/self/mountinfo`
	from, err := sandbox.FromSpec(specWith(t, sb, script, mounts...), "/bundle")
	require.NoError(t, err, "FromSpec of the suite's mounts")
	wait := runInBackground(t, from, script)

	// Once the sandbox runs, a mount the host makes below the source
	// reaches the slaves, and only them.
	require.Eventually(t, func() bool { _, err := os.Stat(filepath.Join(src, "started")); return err == nil },
		20*time.Second, 10*time.Millisecond, "the sandbox did not start")
	later := filepath.Join(src, "later")
	require.NoError(t, unix.Mount("tmpfs", later, "tmpfs", 0, "size=1m"))
	t.Cleanup(func() { unix.Unmount(later, unix.MNT_DETACH) })
	require.NoError(t, os.WriteFile(filepath.Join(src, "go"), nil, 0o644))
	res, err := wait()
	require.NoError(t, err)
	require.Zero(t, res.ExitCode, "stderr: %s", res.Stderr)
	lines := parseMountinfo(t, string(res.Stdout))

	var order []string
	for _, p := range under(lines, "/p") {
		if strings.Count(p, "/") == 2 {
			order = append(order, p)
		}
	}
	var want []string
	for _, m := range mounts {
		want = append(want, m.Destination)
	}
	assert.Equal(t, want, order, "mountinfo must list the spec's mounts in the spec's order")
	assert.Equal(t, "tmpfs", find(t, lines, "/p/t-shared").source, "a tmpfs's source is the spec's")
	assert.Equal(t, "shm", find(t, lines, "/p/t-private").source, "a tmpfs's source is the spec's")

	master := "master:" + group
	shared := func(fields []string) bool {
		return len(fields) > 0 && strings.HasPrefix(fields[0], "shared:") && fields[0] != "shared:"+group
	}
	for _, tt := range []struct {
		point    string
		fields   func([]string) bool
		what     string
		receives bool // a mount the host makes below the source appears below it
	}{
		{"/p/t-shared", func(f []string) bool { return len(f) == 1 && shared(f) }, "a peer group of its own", false},
		{"/p/t-slave", func(f []string) bool { return len(f) == 0 }, "private: a new file system has no master", false},
		{"/p/t-private", func(f []string) bool { return len(f) == 0 }, "private", false},
		{"/p/t-unbindable", func(f []string) bool { return slices.Equal(f, []string{"unbindable"}) }, "unbindable", false},
		{"/p/b-shared", func(f []string) bool { return len(f) == 2 && shared(f) && f[1] == master }, "shared in the sandbox, a slave of the host's", true},
		{"/p/b-rshared", func(f []string) bool { return len(f) == 2 && shared(f) && f[1] == master }, "shared in the sandbox, a slave of the host's", true},
		{"/p/b-slave", func(f []string) bool { return slices.Equal(f, []string{master}) }, "a slave of the host's peer group", true},
		{"/p/b-rslave", func(f []string) bool { return slices.Equal(f, []string{master}) }, "a slave of the host's peer group", true},
		{"/p/b-private", func(f []string) bool { return len(f) == 0 }, "private", false},
		{"/p/b-rprivate", func(f []string) bool { return len(f) == 0 }, "private", false},
		{"/p/b-unbindable", func(f []string) bool { return slices.Equal(f, []string{"unbindable"}) }, "unbindable", false},
		{"/p/b-runbindable", func(f []string) bool { return slices.Equal(f, []string{"unbindable"}) }, "unbindable", false},
		{"/p/b-default", func(f []string) bool { return len(f) == 0 }, "private, the default", false},
	} {
		got := find(t, lines, tt.point).optional
		assert.True(t, tt.fields(got), "%s: want %s (host group %s), mountinfo has %v", tt.point, tt.what, group, got)
		received := slices.ContainsFunc(lines, func(l mountLine) bool { return l.point == tt.point+"/later" })
		assert.Equal(t, tt.receives, received, "%s: does the host's later mount below the source appear below it?", tt.point)
	}

	mi, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	assert.Equal(t, []string{later}, under(parseMountinfo(t, string(mi)), src),
		"nothing of the sandbox's mounts may reach the host, not even one made below a shared bind")
	assert.Equal(t, "in1", find(t, lines, "/p/b-shared/inside").source, "the sandbox's own mount below its shared bind")
}
