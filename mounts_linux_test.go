package sandbox_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

func TestBindWritesThroughToTheHost(t *testing.T) {
	sb, _ := busybox(t)
	host := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(host, "in"), []byte("from host\n"), 0o644))
	res := sh(t, sb.WithBind(host, "/data/deep"), "cat /data/deep/in; echo from sandbox > /data/deep/out")
	assert.Equal(t, "from host\n", string(res.Stdout), "stderr: %s", res.Stderr)
	got, err := os.ReadFile(filepath.Join(host, "out"))
	require.NoError(t, err)
	assert.Equal(t, "from sandbox\n", string(got), "a read-write bind writes through to the host")
}

func TestBindFile(t *testing.T) {
	sb, _ := busybox(t)
	host := filepath.Join(t.TempDir(), "config")
	require.NoError(t, os.WriteFile(host, []byte("key=value\n"), 0o644))
	res := sh(t, sb.WithBind(host, "/etc/app/config", sandbox.ReadOnly), "cat /etc/app/config; echo x >> /etc/app/config")
	assert.Equal(t, "key=value\n", string(res.Stdout))
	assert.Contains(t, string(res.Stderr), "Read-only file system")
}

func TestReadOnlyBindIsReadOnlyRecursively(t *testing.T) {
	sb, _ := busybox(t)
	host := t.TempDir()
	sub := filepath.Join(host, "sub")
	require.NoError(t, os.Mkdir(sub, 0o755))
	// A file system mounted below the bind's source: read-only must reach
	// it too.
	require.NoError(t, unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"))
	t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })
	res := sh(t, sb.WithBind(host, "/data", sandbox.ReadOnly),
		"touch /data/top 2>&1; touch /data/sub/below 2>&1; grep ' /data' /proc/mounts | cut -d' ' -f2,4 | cut -d, -f1")
	assert.Equal(t, "touch: /data/top: Read-only file system\ntouch: /data/sub/below: Read-only file system\n"+
		"/data ro\n/data/sub ro\n", string(res.Stdout))
	assert.NoFileExists(t, filepath.Join(sub, "below"))
}

func TestTmpfsSizeIsEnforced(t *testing.T) {
	sb, _ := busybox(t)
	res := sh(t, sb.WithTmpfs("/scratch", 1<<20), "dd if=/dev/zero of=/scratch/f bs=64k count=32 2>&1 | grep -o 'No space left on device'; ls -l /scratch/f | awk '{print $5}'")
	assert.Equal(t, "No space left on device\n1048576\n", string(res.Stdout), "stderr: %s", res.Stderr)
}

func TestWithFilePutsFilesOwnedByTheUser(t *testing.T) {
	sb, _ := busybox(t)
	sb = sb.WithUser(1000, 1000).
		WithFile("/work/src/main.sh", []byte("echo running $0\n"), 0o750).
		WithTmpfs("/scratch", 1<<20).
		WithFile("/scratch/in.txt", []byte("in tmpfs"), 0o600).
		WithWorkdir("/work/src")
	res := sh(t, sb, "sh main.sh; stat -c '%a %u %g %n' /work /work/src /work/src/main.sh /scratch/in.txt; cat /scratch/in.txt")
	assert.Equal(t, "running main.sh\n755 1000 1000 /work\n755 1000 1000 /work/src\n750 1000 1000 /work/src/main.sh\n"+
		"600 1000 1000 /scratch/in.txt\nin tmpfs", string(res.Stdout), "stderr: %s", res.Stderr)
}

func TestReadOnlyRoot(t *testing.T) {
	sb, root := busybox(t)
	res := sh(t, sb.WithReadOnlyRoot().WithTmpfs("/scratch", 1<<20).WithFile("/etc/given", []byte("given\n"), 0o644).
		WithWorkdir("/work"), "touch /etc/x 2>&1; touch /work/x 2>&1; cat /etc/given; touch /tmp/x && touch /scratch/x && echo writable")
	assert.Equal(t, "touch: /etc/x: Read-only file system\ntouch: /work/x: Read-only file system\ngiven\nwritable\n", string(res.Stdout),
		"stderr: %s", res.Stderr)
	assert.NoFileExists(t, filepath.Join(root, "etc/given"), "the base is never written")
}

func TestBindTargetSymlinkStaysInsideTheRoot(t *testing.T) {
	sb, root := busybox(t)
	// The root is hostile: /data points at the host's /etc, /up climbs
	// out with "..".
	require.NoError(t, os.Symlink("/etc", filepath.Join(root, "data")))
	require.NoError(t, os.Symlink("../../../../../../..", filepath.Join(root, "up")))
	host := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(host, "marker"), []byte("bound\n"), 0o644))
	hostEtc := testutil.SnapshotHost(t).Mounts

	res := sh(t, sb.WithBind(host, "/data").WithBind(host, "/up/escaped"),
		"cat /etc/marker; cat /escaped/marker; cat /etc/hostname")
	assert.Equal(t, "bound\nbound\n", string(res.Stdout),
		"the binds must land on the sandbox's /etc and /escaped, inside the root; stderr: %s", res.Stderr)
	assert.Contains(t, string(res.Stderr), "/etc/hostname",
		"the bind covers the sandbox's own /etc, so the base's /etc/hostname is hidden")
	assert.NoFileExists(t, "/etc/marker", "nothing may land on the host's /etc")
	assert.NoDirExists(t, "/escaped")
	assert.Equal(t, hostEtc, testutil.SnapshotHost(t).Mounts)
}

func TestHostFileThroughSymlinkIsNotReachable(t *testing.T) {
	sb, root := busybox(t)
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("secret"), 0o644))
	require.NoError(t, os.Symlink(secret, filepath.Join(root, "link")))
	res := sh(t, sb, "cat /link 2>&1")
	assert.Equal(t, "cat: can't open '/link': No such file or directory\n", string(res.Stdout),
		"an absolute symlink in the root resolves inside the root")
}

func TestMountPropagationIsPrivate(t *testing.T) {
	sb, _ := busybox(t)
	host := t.TempDir()
	sub := filepath.Join(host, "later")
	require.NoError(t, os.Mkdir(sub, 0o755))
	before := testutil.SnapshotHost(t).Mounts
	// The sandbox mounts a tmpfs itself (allowed for this test), waits until
	// the host has mounted one below the bind, then looks for both.
	admin := sb.WithCapabilities(append(sandbox.DefaultCapabilities(), "CAP_SYS_ADMIN")...).
		WithSeccomp(sandbox.DefaultSeccompProfile().Allow("mount")).
		WithBind(host, "/data").WithTimeout(20 * time.Second)
	wait := runInBackground(t, admin, `
			mount -t tmpfs none /tmp && touch /data/mounted
			while [ ! -e /data/go ]; do sleep 0.05; done
			grep -c ' /data/later ' /proc/mounts`)
	require.Eventually(t, func() bool { _, err := os.Stat(filepath.Join(host, "mounted")); return err == nil },
		10*time.Second, 10*time.Millisecond, "the sandbox did not start")
	assert.Equal(t, before, testutil.SnapshotHost(t).Mounts, "a mount made in the sandbox must not appear on the host")
	require.NoError(t, unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"))
	t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })
	require.NoError(t, os.WriteFile(filepath.Join(host, "go"), nil, 0o644))
	res, err := wait()
	require.NoError(t, err)
	assert.Equal(t, "0\n", string(res.Stdout), "a mount the host makes later must not appear in the sandbox")
}

func TestMountBadInputListsEveryProblem(t *testing.T) {
	sb, _ := busybox(t)
	missing := filepath.Join(t.TempDir(), "missing")
	bad := sb.WithBind(missing, "/a").WithBind("/tmp", "relative").WithBind("/tmp", "").
		WithBind("/tmp", "/").WithTmpfs("/dup", 1<<20).WithBind("/tmp", "/dup").WithTmpfs("/proc/x", 1).
		WithFile("/f", nil, fs.ModeSetuid|0o755)
	err := bad.Validate()
	var ce *sandbox.ConfigError
	require.ErrorAs(t, err, &ce)
	var got []string
	for _, p := range ce.Problems {
		got = append(got, fmt.Sprintf("%s %v", p.Field, p.Value))
	}
	assert.Equal(t, []string{"bind relative", "bind ", "bind /", "tmpfs /proc/x", "file /f", "mount /dup"}, got)

	_, err = sb.WithBind(missing, "/a").Run(testCtx(t), "/bin/true")
	assert.ErrorIs(t, err, sandbox.ErrInvalidConfig)
	assert.ErrorIs(t, err, fs.ErrNotExist, "a missing host path is also a missing file")
	assert.Contains(t, err.Error(), missing)
	assert.Empty(t, testutil.SandboxCgroups(t), "nothing half-made is left")
	assert.False(t, errors.Is(err, fs.ErrPermission))
}

// magicLinkForms are ways to name a descriptor of the child, or its own
// directories, through /proc: each is a magic link that would lead from
// inside the sandbox to a directory of the host (CVE-2024-21626).
func magicLinkForms(fd int) []string {
	return []string{
		fmt.Sprintf("/proc/self/fd/%d", fd),
		fmt.Sprintf("/proc/self/fd/%d/sub", fd),
		fmt.Sprintf("/proc/thread-self/fd/%d", fd),
		fmt.Sprintf("/proc/1/fd/%d", fd),
		fmt.Sprintf("/dev/fd/%d", fd),
	}
}

// hostDirs returns the host directories an escape through a descriptor
// would most likely write in, to check that nothing appeared there.
func hostDirs(root string) []string {
	return []string{"/", "/tmp", os.TempDir(), root, filepath.Dir(root), "/run/sandboxkit", "/run/sandboxkit/scratch"}
}

// requireRefused fails unless err refuses a path as unsafe, or as missing:
// a link to a descriptor the child no longer holds names nothing.
func requireRefused(t *testing.T, err error, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	require.Error(t, err, msg)
	if !errors.Is(err, fs.ErrNotExist) {
		require.ErrorIs(t, err, sandbox.ErrUnsafePath, msg)
	}
}

// requireNoHostEntry fails if name exists in any of dirs.
func requireNoHostEntry(t *testing.T, name string, dirs []string) {
	t.Helper()
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if _, err := os.Lstat(p); err == nil {
			os.RemoveAll(p)
			t.Fatalf("the sandbox created %s on the host", p)
		}
	}
}

// variants returns sb as it is and in a user namespace.
func variants(sb *sandbox.Sandbox) map[string]*sandbox.Sandbox {
	return map[string]*sandbox.Sandbox{"plain": sb, "userns": sb.WithUserNamespace()}
}

func TestWorkdirThroughAMagicLinkIsRefused(t *testing.T) {
	sb, root := busybox(t)
	// A directory of the host held open without close-on-exec, as a
	// caller might: one more descriptor the child starts with.
	leak, err := unix.Open(t.TempDir(), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(leak) })
	maxFD := leak + 8
	for name, sb := range variants(sb) {
		for _, base := range []*sandbox.Sandbox{sb, sb.WithNetwork(sandbox.HostNetwork())} {
			for fd := 3; fd <= maxFD; fd++ {
				for _, dir := range magicLinkForms(fd) {
					marker := fmt.Sprintf("escaped-%d-%d", os.Getpid(), fd)
					res, err := base.WithWorkdir(dir).Run(testCtx(t), "/bin/sh", "-c", "touch "+marker+"; pwd")
					requireRefused(t, err, "%s: WithWorkdir(%s) ran: %v", name, dir, res)
					requireNoHostEntry(t, marker, hostDirs(root))
				}
			}
		}
	}
}

func TestHostileRootLinksStayInsideTheRoot(t *testing.T) {
	sb, root := busybox(t)
	marker := fmt.Sprintf("escaped-%d", os.Getpid())
	// A hostile root, or a shared volume, plants links that lead to the
	// descriptors the child holds while it sets the sandbox up.
	for fd := 3; fd <= 12; fd++ {
		link := fmt.Sprintf("fd%d", fd)
		require.NoError(t, os.Symlink(fmt.Sprintf("/proc/self/fd/%d", fd), filepath.Join(root, link)))
		require.NoError(t, os.Symlink(fmt.Sprintf("/proc/self/fd/%d/..", fd), filepath.Join(root, link+"up")))
		require.NoError(t, os.Symlink(fmt.Sprintf("../proc/self/fd/%d", fd), filepath.Join(root, "etc", link)))
	}
	require.NoError(t, os.Symlink("/proc", filepath.Join(root, "toproc")))
	require.NoError(t, os.Symlink("../sys", filepath.Join(root, "etc", "tosys")))
	src := t.TempDir()
	srcFile := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(srcFile, []byte("x"), 0o644))

	type attempt struct {
		what string
		sb   *sandbox.Sandbox
	}
	for name, sb := range variants(sb) {
		var attempts []attempt
		for fd := 3; fd <= 12; fd++ {
			for _, link := range []string{fmt.Sprintf("/fd%d", fd), fmt.Sprintf("/fd%dup", fd), fmt.Sprintf("/etc/fd%d", fd)} {
				attempts = append(attempts,
					attempt{"workdir " + link, sb.WithWorkdir(link)},
					attempt{"workdir under " + link, sb.WithWorkdir(link + "/" + marker)},
					attempt{"bind under " + link, sb.WithBind(src, link+"/"+marker+"/y")},
					attempt{"file bind under " + link, sb.WithBind(srcFile, link+"/"+marker)},
					attempt{"tmpfs under " + link, sb.WithTmpfs(link+"/"+marker, 1<<20)},
					attempt{"file under " + link, sb.WithFile(link+"/"+marker+"/f", []byte("x"), 0o644)},
				)
			}
		}
		// Links that carry a target onto /proc or /sys, where a literal
		// target is refused.
		attempts = append(attempts,
			attempt{"bind through a link to /proc", sb.WithBind(src, "/toproc/sys")},
			attempt{"file bind through a link to /proc", sb.WithBind(srcFile, "/toproc/sysrq-trigger")},
			attempt{"tmpfs through a link to /proc", sb.WithTmpfs("/toproc/sys", 1<<20)},
			attempt{"bind through a relative link to /sys", sb.WithBind(src, "/etc/tosys/kernel")},
			attempt{"file through a link to /proc", sb.WithWritableProc().WithFile("/toproc/self/comm", []byte("x"), 0o644)},
		)
		for _, a := range attempts {
			res, err := a.sb.Run(testCtx(t), "/bin/sh", "-c", "pwd; touch "+marker)
			requireRefused(t, err, "%s: %s: want the run refused, got %v", name, a.what, res)
			requireNoHostEntry(t, marker, hostDirs(root))
		}
	}
}

func TestLinkPlantedInABindByAnEarlierRunStaysInside(t *testing.T) {
	sb, root := busybox(t)
	share := t.TempDir()
	require.NoError(t, os.Chmod(share, 0o777))
	for name, sb := range variants(sb.WithBind(share, "/share")) {
		// The first run, untrusted code, plants links in the volume.
		sh(t, sb, "for fd in 3 4 5 6 7 8 9 10 11 12; do ln -sf /proc/self/fd/$fd /share/w$fd; ln -sf ../proc/self/cwd /share/cwd; done")
		// A later run uses them, as a caller that trusts the volume would.
		for fd := 3; fd <= 12; fd++ {
			for _, later := range []*sandbox.Sandbox{
				sb.WithWorkdir(fmt.Sprintf("/share/w%d", fd)),
				sb.WithWorkdir(fmt.Sprintf("/share/w%d/sub", fd)),
				sb.WithTmpfs(fmt.Sprintf("/share/w%d/t", fd), 1<<20),
				sb.WithWorkdir("/share/cwd"),
			} {
				res, err := later.Run(testCtx(t), "/bin/sh", "-c", "touch escaped-by-link")
				requireRefused(t, err, "%s: a link planted in a bind by an earlier run: got %v", name, res)
				requireNoHostEntry(t, "escaped-by-link", hostDirs(root))
			}
		}
	}
}

func TestRootWithSymlinkedMountPointsIsRefused(t *testing.T) {
	for _, dir := range []string{"proc", "dev", "sys", "tmp"} {
		t.Run(dir, func(t *testing.T) {
			sb, root := busybox(t)
			// /proc -> /tmp would put procfs, and its masks, on the wrong
			// file system (CVE-2019-16884).
			require.NoError(t, os.RemoveAll(filepath.Join(root, dir)))
			require.NoError(t, os.Symlink("/etc", filepath.Join(root, dir)))
			for name, sb := range variants(sb) {
				_, err := sb.Run(testCtx(t), "/bin/true")
				require.ErrorIs(t, err, sandbox.ErrUnsafePath, "%s: a root whose /%s is a symbolic link", name, dir)
				assert.ErrorContains(t, err, "/"+dir)
			}
		})
	}
}

func TestUserNamespaceWithHostNetworkShowsNoHostCgroups(t *testing.T) {
	sb, _ := busybox(t)
	res := sh(t, sb.WithUserNamespace().WithNetwork(sandbox.HostNetwork()),
		`grep ' /sys' /proc/mounts | cut -d' ' -f2,3,4 | cut -d, -f1; ls /sys/fs/cgroup | wc -l; touch /sys/kernel/x 2>&1 | grep -o 'Read-only file system'`)
	assert.Equal(t, "/sys sysfs ro\n/sys/firmware tmpfs ro\n0\nRead-only file system\n", string(res.Stdout),
		"the host's sysfs, read only, and none of the host's cgroup mounts below it; stderr: %s", res.Stderr)
}

func TestDockersMaskedPathsAreMasked(t *testing.T) {
	sb, _ := busybox(t)
	// Docker's current masked paths (moby oci/defaults.go): files read
	// empty, directories list nothing. Paths this kernel lacks are absent
	// in the sandbox too.
	files := []string{"/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug"}
	dirs := []string{"/proc/acpi", "/proc/asound", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
	thermal, err := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle")
	require.NoError(t, err)
	dirs = append(dirs, thermal...)
	script, want := "", ""
	for _, f := range files {
		script += fmt.Sprintf("[ -e %[1]s ] && echo %[1]s $(wc -c < %[1]s);", f)
		if _, err := os.Stat(f); err == nil {
			want += f + " 0\n"
		}
	}
	for _, d := range dirs {
		script += fmt.Sprintf("[ -e %[1]s ] && echo %[1]s $(ls -A %[1]s | wc -l);", d)
		if _, err := os.Stat(d); err == nil {
			want += d + " 0\n"
		}
	}
	for name, sb := range variants(sb) {
		assert.Equal(t, want, string(sh(t, sb, script+"true").Stdout), "%s: every masked path reads empty", name)
	}
}

func TestScratchSpaceIsBounded(t *testing.T) {
	sb, _ := busybox(t)
	// Writes past the writable layer's or /tmp's size fail with ENOSPC;
	// under a memory limit they must not turn into an OOM kill.
	fill := `for d in /w /tmp; do dd if=/dev/zero of=$d/fill bs=1M count=%d 2>&1 | grep -o 'No space left on device'; rm -f $d/fill; done; df -k / /tmp | awk 'NR>1 {print $2}'`
	tests := []struct {
		name   string
		sb     *sandbox.Sandbox
		fillMB int
		sizeKB int
	}{
		{"default", sb, 0, sandbox.DefaultScratchSize >> 10}, // sizes only: filling 512 MiB is slow
		{"a quarter of the memory limit", sb.WithMemory(64 << 20), 40, 16 << 10},
		{"WithScratchSize", sb.WithMemory(256 << 20).WithScratchSize(8 << 20), 16, 8 << 10},
	}
	for _, tt := range tests {
		// /w is made by the sandbox, in the writable layer, and belongs
		// to its user (a user namespace's root may not write in /root).
		for name, sb := range variants(tt.sb.WithWorkdir("/w")) {
			res := sh(t, sb, fmt.Sprintf(fill, tt.fillMB))
			assert.False(t, res.OOMKilled, "%s %s: filling the scratch space must fail a write, not kill", tt.name, name)
			want := fmt.Sprintf("%d\n%d\n", tt.sizeKB, tt.sizeKB)
			if tt.fillMB > 0 {
				want = "No space left on device\nNo space left on device\n" + want
			}
			assert.Equal(t, want, string(res.Stdout), "%s %s: stderr %s", tt.name, name, res.Stderr)
		}
	}
}

func TestBindOfAFileOntoADirectoryIsAClearError(t *testing.T) {
	sb, _ := busybox(t)
	file := filepath.Join(t.TempDir(), "config")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
	_, err := sb.WithBind(file, "/etc").Run(testCtx(t), "/bin/true")
	require.Error(t, err)
	assert.ErrorContains(t, err, "bind file "+file+" onto /etc: the target is a directory, and a file can only be bound onto a file")
	_, err = sb.WithBind(t.TempDir(), "/etc/passwd").Run(testCtx(t), "/bin/true")
	require.Error(t, err)
	assert.ErrorContains(t, err, "onto /etc/passwd: the target is a file, and a directory can only be bound onto a directory")
}

func TestPathsResolveWhileTheHostMounts(t *testing.T) {
	sb, root := busybox(t)
	// openat2 with RESOLVE_IN_ROOT gives up (EAGAIN) when any mount or
	// rename on the host races a ".." it resolves; the child must try
	// again rather than fail the run. The host mounts and unmounts in a
	// loop meanwhile, as other sandboxes starting do.
	// Many ".." widen the window, as a deep tree would.
	require.NoError(t, os.Symlink(strings.Repeat("../", 100)+"home/user", filepath.Join(root, "etc", "up")))
	dir := t.TempDir()
	stop := make(chan struct{})
	churned := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				churned <- n
				return
			default:
			}
			// About a thousand a second, as a busy host might see.
			if unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k") == nil {
				unix.Unmount(dir, unix.MNT_DETACH)
				n++
			}
			time.Sleep(time.Millisecond)
		}
	}()
	defer func() {
		close(stop)
		t.Logf("%d host mounts meanwhile", <-churned)
	}()
	for i := range 100 {
		res, err := sb.WithWorkdir("/etc/up/work").Run(testCtx(t), "/bin/pwd")
		require.NoError(t, err, "run %d", i)
		assert.Equal(t, "/home/user/work\n", string(res.Stdout), "run %d", i)
	}
}
