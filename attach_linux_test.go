package sandbox_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
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

// startDetached starts argv detached in sb (with a cgroup path of its
// own), opens its gate, and returns its PID and the definition; the test's
// cleanup kills and reaps it and removes its cgroup.
func startDetached(t *testing.T, sb *sandbox.Sandbox, argv ...string) (*sandbox.Sandbox, int) {
	t.Helper()
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("no gated stub for " + runtime.GOARCH)
	}
	gate := filepath.Join(t.TempDir(), "gate")
	require.NoError(t, unix.Mkfifo(gate, 0o600))
	cg := "/sandboxkit-test/" + state.RandomID(4)
	sb = sb.WithCgroupPath(cg)
	pid, err := sb.StartDetached(t.Context(), gate, argv...)
	require.NoError(t, err)
	t.Cleanup(func() {
		unix.Kill(pid, unix.SIGKILL)
		unix.Wait4(pid, nil, 0, nil)
		assert.NoError(t, sandbox.RemoveCgroup(cg))
		sandbox.RemoveCgroup("/sandboxkit-test")
	})
	w, err := os.OpenFile(gate, os.O_WRONLY|unix.O_NONBLOCK, 0)
	require.NoError(t, err)
	_, err = w.Write([]byte{0})
	require.NoError(t, err)
	w.Close()
	return sb, pid
}

// TestAttachExecsIntoADetachedSandbox runs commands in a sandbox that
// StartDetached started, known by its PID alone, as an OCI runtime's exec
// does from another process.
func TestAttachExecsIntoADetachedSandbox(t *testing.T) {
	testutil.RequireRoot(t)
	before := testutil.SnapshotHost(t)
	sb := sandbox.New(sandbox.Dir(testutil.Rootfs(t))).WithEnv("WHO=container").WithMemory(64 << 20)
	sb, pid := startDetached(t, sb, "/bin/sh", "-c", "echo $$ > /tmp/pid1; exec sleep 100")

	in, err := sb.Attach(pid)
	require.NoError(t, err)
	require.Eventually(t, func() bool { b, _ := in.ReadFile("/tmp/pid1"); return len(b) > 0 }, 5*time.Second, 10*time.Millisecond)
	res, err := in.Exec(t.Context(), "/bin/sh", "-c", `echo "$WHO $(cat /tmp/pid1)"; set -- /proc/[0-9]*; echo $#`)
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitCode, "%s", res.Stderr)
	lines := strings.Split(string(res.Stdout), "\n")
	assert.Equal(t, "container 1", lines[0], "the command sees the sandbox's environment and files")
	assert.Equal(t, "2", lines[1], "the command sees the sandbox's PID namespace: sleep and itself (its init is outside)")
	st, err := in.Stats()
	require.NoError(t, err)
	assert.Equal(t, 1, st.Processes, "Stats reads the sandbox's cgroup")

	// Closing the handle leaves the sandbox running.
	require.NoError(t, in.Close())
	assert.NoError(t, unix.Kill(pid, 0), "Close of an attached Instance must not end the sandbox")
	_, err = in.Exec(t.Context(), "true")
	assert.ErrorIs(t, err, sandbox.ErrClosed)

	// A second handle waits for the end, which a signal brings.
	in2, err := sb.Attach(pid)
	require.NoError(t, err)
	defer in2.Close()
	require.NoError(t, in2.Signal(unix.SIGKILL))
	var ws unix.WaitStatus
	_, err = unix.Wait4(pid, &ws, 0, nil) // the parent reaps, as Attach says
	require.NoError(t, err)
	r, err := in2.Wait(t.Context())
	require.NoError(t, err)
	assert.Equal(t, -1, r.ExitCode, "the status is the parent's")
	assert.True(t, ws.Signaled() && ws.Signal() == unix.SIGKILL)
	in2.Close()
	testutil.CheckFDs(t, before, "attached instances")
}

// TestCommandStartDetachedOutlivesItsHandle starts a command detached in
// an attached sandbox: its PID's exit status is the program's, its output
// goes to the files given, a SIGKILL of that PID ends the program too, and
// its terminal's master is the caller's.
func TestCommandStartDetachedOutlivesItsHandle(t *testing.T) {
	testutil.RequireRoot(t)
	sb := sandbox.New(sandbox.Dir(testutil.Rootfs(t))).WithMemory(64 << 20)
	sb, pid := startDetached(t, sb, "/bin/sleep", "100")
	in, err := sb.Attach(pid)
	require.NoError(t, err)
	defer in.Close()

	var ce *sandbox.ConfigError
	_, _, err = in.Command("/bin/true").WithStdout(&bytes.Buffer{}).WithTimeout(time.Second).StartDetached(t.Context())
	require.ErrorAs(t, err, &ce, "a pipe nobody copies, a timeout nobody enforces")
	require.Len(t, ce.Problems, 2)
	assert.Equal(t, "timeout", ce.Problems[0].Field)
	assert.Equal(t, "stdout", ce.Problems[1].Field)

	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	require.NoError(t, err)
	defer out.Close()
	epid, console, err := in.Command("/bin/sh", "-c", "echo out; echo err >&2; exit 7").WithStdout(out).WithStderr(out).StartDetached(t.Context())
	require.NoError(t, err)
	assert.Nil(t, console)
	in.Close() // the command does not need the handle
	var ws unix.WaitStatus
	_, err = unix.Wait4(epid, &ws, 0, nil)
	require.NoError(t, err)
	assert.True(t, ws.Exited() && ws.ExitStatus() == 7, "the init's status is the program's: %v", ws)
	b, _ := os.ReadFile(out.Name())
	assert.Equal(t, "out\nerr\n", string(b))

	in, err = sb.Attach(pid)
	require.NoError(t, err)
	defer in.Close()
	epid, _, err = in.Command("/bin/sleep", "100").StartDetached(t.Context())
	require.NoError(t, err)
	require.NoError(t, unix.Kill(epid, unix.SIGTERM))
	_, err = unix.Wait4(epid, &ws, 0, nil)
	require.NoError(t, err)
	assert.Equal(t, 128+int(unix.SIGTERM), ws.ExitStatus(), "a signal to the init reaches the program: %v", ws)

	epid, _, err = in.Command("/bin/sleep", "100").StartDetached(t.Context())
	require.NoError(t, err)
	require.Eventually(t, func() bool { st, _ := in.Stats(); return st != nil && st.Processes == 3 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, unix.Kill(epid, unix.SIGKILL)) // the init, with the program and PID 1 in the cgroup
	unix.Wait4(epid, nil, 0, nil)
	// The program, orphaned outside its namespace's sight, is reaped by
	// the host's PID 1 (or the caller's subreaper), which may take a while.
	assert.Eventually(t, func() bool { st, _ := in.Stats(); return st != nil && st.Processes == 1 }, 5*time.Second, 10*time.Millisecond,
		"a SIGKILL of the init's PID ends the program too")

	// A detached terminal command that cannot start leaves no descriptor,
	// its terminal's master included.
	before := testutil.SnapshotHost(t)
	_, _, err = in.Command("/no/such/program").WithTTY(sandbox.WindowSize{Rows: 24, Cols: 80}).StartDetached(t.Context())
	require.ErrorIs(t, err, os.ErrNotExist)
	// By name, at once: a count can hide one leak behind another close,
	// and a file left to the garbage collector closes some time later.
	for _, name := range testutil.SnapshotHost(t).FDNames {
		assert.NotContains(t, name, "ptmx", "the terminal's master of a command that failed is closed")
	}
	testutil.CheckFDs(t, before, "a detached terminal command that failed")

	epid, console, err = in.Command("/bin/sh", "-c", "tty; read x; echo got $x").WithTTY(sandbox.WindowSize{Rows: 24, Cols: 80}).StartDetached(t.Context())
	require.NoError(t, err)
	require.NotNil(t, console)
	defer console.Close()
	_, err = console.Write([]byte("hello\n"))
	require.NoError(t, err)
	_, err = unix.Wait4(epid, &ws, 0, nil)
	require.NoError(t, err)
	assert.Equal(t, 0, ws.ExitStatus())
	got := make([]byte, 4096)
	n, _ := console.Read(got)
	assert.Contains(t, string(got[:n]), "/dev/pts/0", "the terminal is of the sandbox's own devpts")
	assert.Contains(t, string(got[:n]), "got hello")
}

func TestAttachRefusesWhatItCannotFind(t *testing.T) {
	sb := sandbox.New(sandbox.Dir(t.TempDir()))
	_, err := sb.Attach(os.Getpid())
	var ce *sandbox.ConfigError
	require.ErrorAs(t, err, &ce, "Attach needs the cgroup path")
	assert.Equal(t, "cgroup path", ce.Problems[0].Field)
	_, err = sb.WithCgroupPath("/sandboxkit-test/none-" + state.RandomID(4)).Attach(os.Getpid())
	assert.ErrorIs(t, err, os.ErrNotExist, "a cgroup that does not exist")
	_, err = sb.WithCgroupPath("/x").Attach(0)
	require.ErrorAs(t, err, &ce)
	_, err = sb.WithCgroupPath("/x").Attach(1 << 30)
	assert.True(t, errors.Is(err, sandbox.ErrClosed), "no such process: %v", err)
}
