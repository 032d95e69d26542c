package sandbox_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	assert.Equal(t, []string{"bind relative", "bind ", "bind /", "tmpfs /proc/x", "file urwxr-xr-x", "mount /dup"}, got)

	_, err = sb.WithBind(missing, "/a").Run(testCtx(t), "/bin/true")
	assert.ErrorIs(t, err, sandbox.ErrInvalidConfig)
	assert.ErrorIs(t, err, fs.ErrNotExist, "a missing host path is also a missing file")
	assert.Contains(t, err.Error(), missing)
	assert.Empty(t, testutil.SandboxCgroups(t), "nothing half-made is left")
	assert.False(t, errors.Is(err, fs.ErrPermission))
}
