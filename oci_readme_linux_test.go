package sandbox_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

func TestReadmeOCI(t *testing.T) {
	testutil.RequireRoot(t)
	requireInReadme(t, `spec, err := sandbox.New(sandbox.Dir(root)).WithMemory(64 << 20).Spec("/bin/true")`,
		`sb, err := sandbox.FromSpec(spec, bundleDir) // a relative root.path is the bundle's`,
		`res, err := sb.Run(ctx, spec.Process.Args...)`)
	ctx := testCtx(t)
	root, bundleDir := testutil.Rootfs(t), t.TempDir()
	spec, err := sandbox.New(sandbox.Dir(root)).WithMemory(64 << 20).Spec("/bin/true")
	require.NoError(t, err)
	sb, err := sandbox.FromSpec(spec, bundleDir) // a relative root.path is the bundle's
	require.NoError(t, err)
	res, err := sb.Run(ctx, spec.Process.Args...)
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode, "the definition read back from its spec runs: %s", res.Stderr)
}

// TestReadmeOCIExec runs the README's exec lines against a container that
// StartDetached started, as the runtime's create does.
func TestReadmeOCIExec(t *testing.T) {
	testutil.RequireRoot(t)
	requireInReadme(t, `sb, err := sandbox.FromSpec(spec, bundleDir) // the container's spec, with the exec's process`,
		`in, err := sb.Attach(pid)                    // the PID its create recorded`,
		`execPID, console, err := in.Command("sh").WithTTY(sandbox.WindowSize{Rows: 24, Cols: 80}).StartDetached(ctx)`)
	ctx := testCtx(t)
	bundleDir := t.TempDir()
	container, pid := startDetached(t, sandbox.New(sandbox.Dir(testutil.Rootfs(t))), "/bin/sleep", "60")
	spec, err := container.Spec("sh") // with its cgroup path
	require.NoError(t, err)

	sb, err := sandbox.FromSpec(spec, bundleDir) // the container's spec, with the exec's process
	require.NoError(t, err)
	in, err := sb.Attach(pid) // the PID its create recorded
	require.NoError(t, err)
	defer in.Close()
	execPID, console, err := in.Command("sh").WithTTY(sandbox.WindowSize{Rows: 24, Cols: 80}).StartDetached(ctx)
	require.NoError(t, err)
	defer console.Close()
	// Typed only at the prompt: an interactive shell that sets up its
	// line editing may drop what came before.
	var out []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(out, []byte("# ")) {
		n, err := console.Read(buf)
		require.NoError(t, err, "the shell's prompt; so far %q", out)
		out = append(out, buf[:n]...)
	}
	_, err = console.Write([]byte("echo in-the-container $$; exit 5\n"))
	require.NoError(t, err)
	for !bytes.Contains(out, []byte("in-the-container 2")) {
		n, err := console.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			break
		}
	}
	var ws unix.WaitStatus
	_, err = unix.Wait4(execPID, &ws, 0, nil)
	require.NoError(t, err)
	assert.Equal(t, 5, ws.ExitStatus(), "the exec's PID ends with the shell's status")
	assert.Contains(t, string(out), "in-the-container 2", "the shell ran in the container's PID namespace (after its sleep)")
}
