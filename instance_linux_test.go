package sandbox_test

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// start starts argv in sb and closes the instance when t ends.
func start(t *testing.T, sb *sandbox.Sandbox, argv ...string) *sandbox.Instance {
	t.Helper()
	in, err := sb.Start(testCtx(t), argv...)
	require.NoError(t, err)
	t.Cleanup(func() { in.Close() })
	return in
}

func TestStartSignalWait(t *testing.T) {
	sb, _ := busybox(t)
	for name, sb := range variants(sb) {
		before := testutil.SnapshotHost(t)
		in := start(t, sb, "/bin/sh", "-c", "trap 'echo got TERM; exit 7' TERM; echo started; while :; do sleep 0.05; done")
		// The program runs after Start returns, and outlives Start's ctx.
		ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
		_, err := in.Wait(ctx)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "%s: Wait's ctx bounds the wait only", name)
		require.NoError(t, in.Signal(syscall.SIGTERM), name)
		res, err := in.Wait(testCtx(t))
		require.NoError(t, err, name)
		assert.Equal(t, 7, res.ExitCode, "%s: %v", name, res)
		assert.Equal(t, "started\ngot TERM\n", string(res.Stdout), name)
		again, err := in.Wait(testCtx(t))
		require.NoError(t, err)
		assert.Same(t, res, again, "later Waits return the same result")
		require.NoError(t, in.Close())
		assert.ErrorIs(t, in.Signal(syscall.SIGTERM), sandbox.ErrClosed)
		after := testutil.SnapshotHost(t)
		assert.Empty(t, after.Cgroups, "%s: Close leaves no cgroup", name)
		assert.Equal(t, before.Mounts, after.Mounts)
	}
}

func TestStartIdleUntilClosed(t *testing.T) {
	sb, _ := busybox(t)
	for name, sb := range variants(sb) {
		in := start(t, sb)
		require.NoError(t, in.Signal(syscall.SIGTERM), "%s: an idle sandbox's init ignores SIGTERM", name)
		time.Sleep(20 * time.Millisecond)
		ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
		_, err := in.Wait(ctx)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "%s: idles until closed", name)
		// Close from several goroutines at once: one teardown, one result.
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = in.Close() }()
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		res, err := in.Wait(testCtx(t))
		require.NoError(t, err)
		assert.Equal(t, syscall.SIGKILL, res.Signal, "%s: Close kills it: %v", name, res)
		assert.Empty(t, testutil.SandboxCgroups(t))
	}
}

func TestStartTimeoutBoundsTheInstance(t *testing.T) {
	sb, _ := busybox(t)
	in := start(t, sb.WithTimeout(200*time.Millisecond), "sleep", "30")
	res, err := in.Wait(testCtx(t))
	require.NoError(t, err)
	assert.True(t, res.TimedOut, "%v", res)
	assert.Less(t, res.Wall, 5*time.Second)
}

func TestStartValidates(t *testing.T) {
	_, err := sandbox.New(sandbox.Dir("/srv/root")).WithInit(false).Start(t.Context())
	var fe *sandbox.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "argv", fe.Field, "no program needs the init")
	var nilInstance *sandbox.Instance
	assert.NoError(t, nilInstance.Close())
}
