package sandbox_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// TestImageStorePrune removes an image while a sandbox runs on it: Prune
// keeps the layers the sandbox stacks, and removes them once it is closed.
// Another image that shares the base layer keeps that one.
func TestImageStorePrune(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := imageCtx(t)
	base := layerOf(t, tarDir(t, testutil.Rootfs(t)))
	a := imageOf(t, v1.Config{}, base, layerOf(t, layerTar(t, entry{name: "a", body: "a"})))
	b := imageOf(t, v1.Config{}, base, layerOf(t, layerTar(t, entry{name: "b", body: "b"})))
	st := newStore(t)
	layoutA := writeLayout(t, a)
	imgA, err := st.Load(ctx, layoutA)
	require.NoError(t, err)
	imgB, err := st.Load(ctx, writeLayout(t, b))
	require.NoError(t, err)
	assert.Len(t, storeEntries(t, st, "layers"), 3, "the shared base is unpacked once")
	list, err := st.List()
	require.NoError(t, err)
	assert.Len(t, list, 2)
	used, err := st.DiskUsage(ctx)
	require.NoError(t, err)
	assert.Greater(t, used, int64(500<<10), "the store holds busybox")

	in, err := sandbox.New(imgA).Start(ctx, "sleep", "100")
	require.NoError(t, err)
	t.Cleanup(func() { in.Close() })

	require.NoError(t, st.Remove(ctx, imgA.Ref()), "Remove of a running image")
	assert.ErrorIs(t, st.Remove(ctx, imgA.Ref()), fs.ErrNotExist, "a second Remove")
	removed, err := st.Prune(ctx)
	require.NoError(t, err)
	assert.Empty(t, removed, "Prune while a sandbox stacks the layers")
	got, err := in.ReadFile("/a")
	require.NoError(t, err, "the running sandbox still reads its layer")
	assert.Equal(t, "a", string(got))

	require.NoError(t, in.Close())
	removed, err = st.Prune(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{imgA.Layers()[1]}, removed, "Prune after the sandbox closed: only the layer no image has")
	assert.Len(t, storeEntries(t, st, "layers"), 2)
	assert.Len(t, storeEntries(t, st, "images"), 1)

	res, err := sandbox.New(imgB).Run(ctx, "cat", "/b")
	require.NoError(t, err)
	assert.Equal(t, "b", string(res.Stdout), "the other image still runs")
	_, err = sandbox.New(imgA).Run(ctx, "true")
	assert.ErrorIs(t, err, fs.ErrNotExist, "a run of a pruned image")
	imgA, err = st.Load(ctx, layoutA)
	require.NoError(t, err, "Load again of the pruned image")
	res, err = sandbox.New(imgA).Run(ctx, "cat", "/a")
	require.NoError(t, err, "a run after its layer was unpacked anew: the kept overlay of the old one is not reused")
	assert.Equal(t, "a", string(res.Stdout))
	require.NoError(t, st.Remove(ctx, imgA.Ref()))

	require.NoError(t, st.Remove(ctx, imgB.ID()), "Remove by ID")
	_, err = st.Prune(ctx)
	require.NoError(t, err)
	assert.Empty(t, storeEntries(t, st, "layers"))
	assert.Empty(t, storeEntries(t, st, "images"))
	assert.Empty(t, storeEntries(t, st, "tmp"))
}

// TestImageStoreDeadTemporaries plays a process killed mid-unpack: its
// temporary, named after an owner that is not alive, is removed by the
// next OpenStore.
func TestImageStoreDeadTemporaries(t *testing.T) {
	testutil.RequireRoot(t)
	st := newStore(t)
	dead := filepath.Join(st.Dir(), "tmp", "999999999-1.layer.0123")
	require.NoError(t, os.MkdirAll(filepath.Join(dead, "usr/bin"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dead, "usr/bin/half"), []byte("x"), 0o755))
	_, err := sandbox.OpenStore(st.Dir())
	require.NoError(t, err)
	assert.NoDirExists(t, dead, "a dead process's temporary")
}
