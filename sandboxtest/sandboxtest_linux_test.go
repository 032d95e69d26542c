package sandboxtest_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
	"github.com/sandboxkit/sandbox/sandboxtest"
)

func TestStartExecAndCleanup(t *testing.T) {
	sandboxtest.Requirements(t)
	root := testutil.Rootfs(t)
	var in *sandbox.Instance
	t.Run("a test", func(t *testing.T) {
		in = sandboxtest.Start(t, sandbox.New(sandbox.Dir(root)), "/bin/sh", "-c", "httpd -f -p 8080 -h /etc")
		sandboxtest.WaitPort(t, in, 8080)
		sandboxtest.WaitReady(t, in, sandbox.ForHTTP(8080, "/hostname"))
		assert.Equal(t, "rootfs-fixture\n", sandboxtest.Exec(t, in, "cat", "/etc/hostname"))
	})
	// The subtest's cleanup closed it.
	_, err := in.Exec(t.Context(), "true")
	require.ErrorIs(t, err, sandbox.ErrClosed, "the instance is closed when its test ends")
	assert.Empty(t, testutil.SandboxCgroups(t))
}
