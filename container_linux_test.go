package sandbox_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/state"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

func TestStartDetachedWaitsForItsGate(t *testing.T) {
	testutil.RequireRoot(t)
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("no gated stub for " + runtime.GOARCH)
	}
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	require.NoError(t, unix.Mkfifo(gate, 0o600))
	out, err := os.Create(filepath.Join(dir, "out"))
	require.NoError(t, err)
	t.Cleanup(func() { out.Close() })
	cg := "/sandboxkit-test/" + state.RandomID(4)
	t.Cleanup(func() { sandbox.RemoveCgroup(cg); sandbox.RemoveCgroup("/sandboxkit-test") })

	sb := sandbox.New(sandbox.Dir(testutil.Rootfs(t))).WithCgroupPath(cg).WithStdout(out).WithMemory(64 << 20)
	pid, err := sb.StartDetached(t.Context(), gate, "/bin/sh", "-c", "echo ran as $$; cat /proc/self/cgroup")
	require.NoError(t, err)
	t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL); unix.Wait4(pid, nil, 0, nil) })

	time.Sleep(50 * time.Millisecond) // long enough for a program that was not held to have written
	b, _ := os.ReadFile(out.Name())
	assert.Empty(t, b, "StartDetached: the program must not run before the gate opens")
	procs, err := os.ReadFile(memoryCgroup(cg) + "/cgroup.procs")
	require.NoError(t, err)
	assert.Equal(t, []string{itoa(pid)}, strings.Fields(string(procs)), "the sandbox is in its cgroup path")

	w, err := os.OpenFile(gate, os.O_WRONLY|unix.O_NONBLOCK, 0)
	require.NoError(t, err, "the gate has its reader while the sandbox waits")
	_, err = w.Write([]byte{0})
	require.NoError(t, err)
	w.Close()
	var ws unix.WaitStatus
	_, err = unix.Wait4(pid, &ws, 0, nil)
	require.NoError(t, err)
	assert.Equal(t, 0, ws.ExitStatus())
	b, _ = os.ReadFile(out.Name())
	assert.True(t, strings.HasPrefix(string(b), "ran as 1\n"), "the program ran as PID 1 once the gate opened: %q", b)
	require.NoError(t, sandbox.RemoveCgroup(cg))
	_, err = os.Stat(memoryCgroup(cg))
	assert.ErrorIs(t, err, os.ErrNotExist, "RemoveCgroup removed the cgroup")
}

func itoa(n int) string { return strconv.Itoa(n) }

// memoryCgroup returns the directory of the cgroup path cg that holds its
// memory controller: in the one v2 hierarchy, or in v1's memory one.
func memoryCgroup(cg string) string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return "/sys/fs/cgroup" + cg
	}
	return "/sys/fs/cgroup/memory" + cg
}
