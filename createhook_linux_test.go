package sandbox_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/state"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// TestCreateHookRunsBeforeThePivot: the hook is called while the sandbox
// waits with its root assembled and not yet its root, so that a command
// run there through Attach, in the sandbox's namespaces, sees the host's
// file system, as an OCI createContainer hook must.
func TestCreateHookRunsBeforeThePivot(t *testing.T) {
	testutil.RequireRoot(t)
	marker := filepath.Join(t.TempDir(), "host-only")
	require.NoError(t, os.WriteFile(marker, []byte("on the host\n"), 0o644))
	var seen struct {
		sameRoot   bool
		mntNS, out string
		err        error
	}
	base := sandbox.New(sandbox.Dir(testutil.Rootfs(t))).WithMemory(64 << 20)
	var sb *sandbox.Sandbox
	hook := func(pid int) error {
		seen.sameRoot = sameFile(fmt.Sprintf("/proc/%d/root", pid), "/")
		seen.mntNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		in, err := sb.Attach(pid)
		if err != nil {
			seen.err = err
			return err
		}
		defer in.Close()
		res, err := in.Exec(t.Context(), "/bin/sh", "-c", "cat "+marker+"; readlink /proc/self/ns/mnt")
		if err == nil && res.ExitCode != 0 {
			err = fmt.Errorf("%s: %s", res, res.Stderr)
		}
		if res != nil {
			seen.out = string(res.Stdout)
		}
		seen.err = err
		return err
	}
	cg := "/sandboxkit-test/" + state.RandomID(4)
	sb = base.WithCgroupPath(cg)
	gate := filepath.Join(t.TempDir(), "gate")
	require.NoError(t, unix.Mkfifo(gate, 0o600))
	pid, err := sb.WithCreateHook(hook).StartDetached(t.Context(), gate, "/bin/sleep", "60")
	require.NoError(t, err)
	t.Cleanup(func() {
		unix.Kill(pid, unix.SIGKILL)
		unix.Wait4(pid, nil, 0, nil)
		assert.NoError(t, sandbox.RemoveCgroup(cg))
		sandbox.RemoveCgroup("/sandboxkit-test")
	})
	require.NoError(t, seen.err)
	assert.True(t, seen.sameRoot, "the hook runs before the pivot: the sandbox's root is still the host's")
	mine, _ := os.Readlink("/proc/self/ns/mnt")
	assert.NotEqual(t, mine, seen.mntNS, "in the sandbox's own mount namespace")
	lines := strings.Split(strings.TrimSpace(seen.out), "\n")
	require.Len(t, lines, 2, "%q", seen.out)
	assert.Equal(t, "on the host", lines[0], "a command of the hook sees the host's files")
	assert.Equal(t, seen.mntNS, lines[1], "and runs in the sandbox's mount namespace")
	assert.False(t, sameFile(fmt.Sprintf("/proc/%d/root", pid), "/"), "the sandbox went on to pivot")
}

// sameFile reports whether the paths a and b name the same file.
func sameFile(a, b string) bool {
	x, errA := os.Stat(a)
	y, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(x, y)
}

// TestCreateHookErrorEndsTheStart: a hook's error is the start's, and
// nothing of the sandbox is left.
func TestCreateHookErrorEndsTheStart(t *testing.T) {
	testutil.RequireRoot(t)
	gate := filepath.Join(t.TempDir(), "gate")
	require.NoError(t, unix.Mkfifo(gate, 0o600))
	cg := "/sandboxkit-test/" + state.RandomID(4)
	t.Cleanup(func() { sandbox.RemoveCgroup(cg); sandbox.RemoveCgroup("/sandboxkit-test") })
	errHook := errors.New("the hook says no")
	called := 0
	sb := sandbox.New(sandbox.Dir(testutil.Rootfs(t))).WithCgroupPath(cg).WithCreateHook(func(int) error { called++; return errHook })
	_, err := sb.StartDetached(t.Context(), gate, "/bin/true")
	require.ErrorIs(t, err, errHook)
	assert.Equal(t, 1, called)
	_, err = os.Stat(memoryCgroup(cg) + "/cgroup.procs")
	if err == nil {
		procs, _ := os.ReadFile(memoryCgroup(cg) + "/cgroup.procs")
		assert.Empty(t, strings.TrimSpace(string(procs)), "no process of the sandbox is left")
	}
	res, err := sandbox.New(sandbox.Dir(testutil.Rootfs(t))).WithCreateHook(func(int) error { return errHook }).Run(t.Context(), "/bin/true")
	assert.Nil(t, res)
	assert.ErrorIs(t, err, errHook, "Run honours it as well")
	assert.Empty(t, testutil.OwnCgroups(t))

	// In a user namespace, whose child is a copy anyway, as well.
	var hookPID int
	res, err = sandbox.New(sandbox.Dir(testutil.Rootfs(t))).WithUserNamespace().WithCreateHook(func(pid int) error { hookPID = pid; return nil }).Run(t.Context(), "/bin/true")
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
	assert.NotZero(t, hookPID, "the hook was called")

	_, err = sandbox.NewPool(sandbox.New(sandbox.Dir(testutil.Rootfs(t))).WithCreateHook(func(int) error { return nil }), 1)
	var fe *sandbox.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "create hook", fe.Field)
}
