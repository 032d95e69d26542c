package sandbox_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// TestImageZstdAndPlainLayers runs an image whose layers are zstd, gzip
// and uncompressed.
func TestImageZstdAndPlainLayers(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := imageCtx(t)
	opener := func(data []byte) tarball.Opener {
		return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	}
	zl, err := tarball.LayerFromOpener(opener(layerTar(t, entry{name: "z", body: "zstd\n"})), tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	require.NoError(t, err)
	mt, err := zl.MediaType()
	require.NoError(t, err)
	require.Contains(t, string(mt), "zstd")
	img, err := newStore(t).Load(ctx, writeLayout(t, busyboxImage(t, v1.Config{}, zl, uncompressedLayer(t, layerTar(t, entry{name: "p", body: "plain\n"})))))
	require.NoError(t, err, "Load of zstd and uncompressed layers")
	res, err := sandbox.New(img).Run(ctx, "cat", "/z", "/p")
	require.NoError(t, err)
	assert.Equal(t, "zstd\nplain\n", string(res.Stdout), "stderr: %s", res.Stderr)
}

// plainLayer is a layer whose blob is the tar itself.
type plainLayer struct {
	v1.Layer
	data []byte
}

func uncompressedLayer(t *testing.T, data []byte) v1.Layer {
	l := layerOf(t, data)
	return &plainLayer{Layer: l, data: data}
}

func (p *plainLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(p.data)), nil
}
func (p *plainLayer) Digest() (v1.Hash, error)            { return p.DiffID() }
func (p *plainLayer) Size() (int64, error)                { return int64(len(p.data)), nil }
func (p *plainLayer) MediaType() (types.MediaType, error) { return types.OCIUncompressedLayer, nil }

// TestImageBadConfig loads layouts whose config is huge or not JSON: each
// is an error saying so, and leaves nothing in the store.
func TestImageBadConfig(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := imageCtx(t)
	huge := imageOf(t, v1.Config{Env: []string{"BIG=" + strings.Repeat("x", 5<<20)}}, layerOf(t, layerTar(t, entry{name: "f", body: "x"})))
	st := newStore(t)
	_, err := st.Load(ctx, writeLayout(t, huge))
	require.Error(t, err, "Load of a 5 MiB config")
	assert.Contains(t, err.Error(), "config of")
	assert.Empty(t, storeEntries(t, st, "layers"))

	dir := writeLayout(t, imageOf(t, v1.Config{}, layerOf(t, layerTar(t, entry{name: "f", body: "x"}))))
	replaceConfig(t, dir, []byte(`{"rootfs": "not an object`))
	_, err = st.Load(ctx, dir)
	require.Error(t, err, "Load of a config that is not JSON")
	assert.Contains(t, err.Error(), "malformed config")
	assert.Empty(t, storeEntries(t, st, "layers"))
	assert.Empty(t, storeEntries(t, st, "tmp"))
}

// replaceConfig puts cfg in the layout dir as its single image's config,
// with the manifest and index rewritten to name it.
func replaceConfig(t *testing.T, dir string, cfg []byte) {
	t.Helper()
	blob := func(b []byte) (string, int) {
		h := sha(b)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "blobs", "sha256", h), b, 0o644))
		return "sha256:" + h, len(b)
	}
	var index map[string]any
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &index))
	desc := index["manifests"].([]any)[0].(map[string]any)
	mraw, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(desc["digest"].(string), "sha256:")))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(mraw, &m))
	c := m["config"].(map[string]any)
	c["digest"], c["size"] = blob(cfg)
	mraw, err = json.Marshal(m)
	require.NoError(t, err)
	desc["digest"], desc["size"] = blob(mraw)
	raw, err = json.Marshal(index)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "index.json"), raw, 0o644))
}
