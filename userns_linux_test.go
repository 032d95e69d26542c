package sandbox_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

func TestUserNamespaceMapsRootToAnUnprivilegedRange(t *testing.T) {
	sb, _ := busybox(t)
	host := t.TempDir()
	require.NoError(t, os.Chmod(host, 0o777))
	res := sh(t, sb.WithUserNamespace().WithBind(host, "/out"),
		"id -u; cat /proc/self/uid_map /proc/self/gid_map | tr -s ' '; touch /out/by-root; echo x > /tmp/t && echo tmp-ok")
	assert.Equal(t, "0\n 0 100000 65536\n 0 100000 65536\ntmp-ok\n", string(res.Stdout), "stderr: %s", res.Stderr)

	fi, err := os.Stat(filepath.Join(host, "by-root"))
	require.NoError(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	assert.Equal(t, uint32(100000), st.Uid, "a file the sandbox's root creates belongs to the mapped host user")
	assert.Equal(t, uint32(100000), st.Gid)
}

func TestUserNamespaceUserAndCustomRange(t *testing.T) {
	sb, _ := busybox(t)
	host := t.TempDir()
	require.NoError(t, os.Chmod(host, 0o777))
	res := sh(t, sb.WithIDMap(200000, 300000, 2000).WithUser(1000, 1000).WithBind(host, "/out"),
		"id -u; touch /out/by-user")
	assert.Equal(t, "1000\n", string(res.Stdout), "stderr: %s", res.Stderr)
	fi, err := os.Stat(filepath.Join(host, "by-user"))
	require.NoError(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	assert.Equal(t, []uint32{201000, 301000}, []uint32{st.Uid, st.Gid})
}

func TestUserNamespaceRootCannotTouchHostOwnedFiles(t *testing.T) {
	sb, _ := busybox(t)
	res := sh(t, sb.WithUserNamespace(), "stat -c '%u' /etc/hostname; echo x > /etc/hostname 2>&1 || echo denied")
	assert.Equal(t, "65534\ndenied\n", string(res.Stdout),
		"host-owned files are unmapped: even the sandbox's root cannot write them")

	_, err := sb.WithUserNamespace().WithFile("/etc/app.conf", []byte("x"), 0o644).Run(testCtx(t), "/bin/true")
	assert.ErrorIs(t, err, fs.ErrPermission, "WithFile cannot write into the base's /etc either")
	assert.ErrorContains(t, err, "/etc/app.conf")
}

func TestUserNamespaceValidation(t *testing.T) {
	err := sandbox.New(sandbox.Dir("/r")).WithIDMap(0, 1, 10).WithIDMap(1, 1, 0).Validate()
	assert.ErrorIs(t, err, sandbox.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "id map 0: host uid must be between 1")
	assert.Contains(t, err.Error(), "id map 0: size must be at least 1")
	err = sandbox.New(sandbox.Dir("/r")).WithIDMap(1000, 1000, 10).WithUser(50, 5).Validate()
	assert.EqualError(t, err, "sandbox: invalid configuration: uid 50: must be inside the user namespace's ID map")
}

func TestUserNamespaceOnHostRoot(t *testing.T) {
	testutil.RequireRoot(t)
	// The host's / has mounts under it (/proc, /sys, ...) that a user
	// namespace may not uncover, which overlayfs refuses as a lower layer
	// unless the base is a detached copy of the root mount alone.
	sb := sandbox.New(sandbox.HostRoot()).WithUserNamespace().
		WithFile("/code/main.sh", []byte("echo ran from a file\n"), 0o755).WithWorkdir("/code")
	res := sh(t, sb, "id -u; ./main.sh; cat /proc/self/uid_map | tr -s ' '; test -e /usr/bin/env && echo host tools")
	assert.Equal(t, "0\nran from a file\n 0 100000 65536\nhost tools\n", string(res.Stdout), "stderr: %s", res.Stderr)
}
