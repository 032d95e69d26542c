package sandbox_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
