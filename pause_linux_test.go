package sandbox_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// cpuOver returns the CPU time the instance used over d.
func cpuOver(t *testing.T, in *sandbox.Instance, d time.Duration) time.Duration {
	t.Helper()
	a, err := in.Stats()
	require.NoError(t, err)
	time.Sleep(d)
	b, err := in.Stats()
	require.NoError(t, err)
	return b.CPU - a.CPU
}

func TestPauseFreezesAndResumeThaws(t *testing.T) {
	sb, _ := busybox(t)
	for name, sb := range variants(sb) {
		in := start(t, sb, "/bin/sh", "-c", "while :; do :; done")
		require.Greater(t, cpuOver(t, in, 200*time.Millisecond), 50*time.Millisecond, "%s: the loop runs", name)
		require.NoError(t, in.Pause(testCtx(t)), name)
		assert.Less(t, cpuOver(t, in, 300*time.Millisecond), 10*time.Millisecond, "%s: a paused sandbox uses no CPU", name)
		require.NoError(t, in.Resume(testCtx(t)), name)
		assert.Greater(t, cpuOver(t, in, 200*time.Millisecond), 50*time.Millisecond, "%s: it runs again", name)
		require.NoError(t, in.Resume(testCtx(t)), "%s: resuming a running sandbox does nothing", name)

		// Close and the timeout end a paused sandbox: a v1 freezer holds
		// even SIGKILL until it is thawed.
		require.NoError(t, in.Pause(testCtx(t)))
		require.NoError(t, in.Close(), name)
		res, err := in.Wait(testCtx(t))
		require.NoError(t, err)
		assert.Equal(t, -1, res.ExitCode, "%s: killed: %v", name, res)
		assert.ErrorIs(t, in.Pause(testCtx(t)), sandbox.ErrClosed)

		in = start(t, sb.WithTimeout(300*time.Millisecond), "sleep", "30")
		require.NoError(t, in.Pause(testCtx(t)))
		res, err = in.Wait(testCtx(t))
		require.NoError(t, err)
		assert.True(t, res.TimedOut, "%s: the timeout ends a paused sandbox: %v", name, res)
		require.NoError(t, in.Close())
	}
	assert.Empty(t, testutil.SandboxCgroups(t))
}
