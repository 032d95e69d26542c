package sandbox_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
)

// newPool returns a pool of size of sb, closed when t ends.
func newPool(t *testing.T, sb *sandbox.Sandbox, size int) *sandbox.Pool {
	t.Helper()
	p, err := sandbox.NewPool(sb, size)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

func TestPoolRun(t *testing.T) {
	sb, _ := busybox(t)
	p := newPool(t, sb.WithMemory(64<<20), 2)
	for i := range 5 {
		res, err := p.Run(testCtx(t), "sh", "-c", "echo hello; echo err >&2; exit 3")
		require.NoError(t, err, "run %d", i)
		assert.Equal(t, 3, res.ExitCode)
		assert.Equal(t, "hello\n", string(res.Stdout))
		assert.Equal(t, "err\n", string(res.Stderr))
		assert.NotZero(t, res.MemoryPeak)
	}
	require.NoError(t, p.Close())
	t.Log(p.Stats())
}
