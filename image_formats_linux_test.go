package sandbox_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// writeTar writes a tar of files (name to content) at path, in order.
func writeTar(t *testing.T, path string, names []string, files map[string][]byte) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range names {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}))
		_, err := tw.Write(files[n])
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, os.WriteFile(path, b.Bytes(), 0o644))
}

// layoutFiles returns the files of the layout directory dir.
func layoutFiles(t *testing.T, dir string) ([]string, map[string][]byte) {
	t.Helper()
	files := map[string][]byte{}
	var names []string
	require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		names, files[rel] = append(names, rel), b
		return err
	}))
	return names, files
}

func sha(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// TestImageLoadFormats loads one busybox image as an OCI archive, as the
// OCI-style tarball current Docker saves (layout plus manifest.json), and
// as a legacy docker save tarball with uncompressed layer.tar files, and
// runs it; a corrupted layer in each fails the load.
func TestImageLoadFormats(t *testing.T) {
	testutil.RequireRoot(t)
	top := layerTar(t, entry{name: "msg", body: "formats\n"})
	img := busyboxImage(t, v1.Config{Cmd: []string{"cat", "/msg"}}, layerOf(t, top))
	dir := writeLayout(t, img, layout.WithAnnotations(map[string]string{"io.containerd.image.name": "docker.io/library/fmt:1"}))
	names, files := layoutFiles(t, dir)

	m, err := img.Manifest()
	require.NoError(t, err)
	cfgRaw, err := img.RawConfigFile()
	require.NoError(t, err)
	var layerPaths []string
	for _, l := range m.Layers {
		layerPaths = append(layerPaths, "blobs/sha256/"+l.Digest.Hex)
	}
	dockerManifest, err := json.Marshal([]map[string]any{{"Config": "blobs/sha256/" + m.Config.Digest.Hex, "RepoTags": []string{"fmt:1"}, "Layers": layerPaths}})
	require.NoError(t, err)

	// The legacy format: uncompressed layers, no digests but the DiffIDs.
	legacy := map[string][]byte{}
	var legacyNames, legacyLayers []string
	ls, err := img.Layers()
	require.NoError(t, err)
	for _, l := range ls {
		rc, err := l.Uncompressed()
		require.NoError(t, err)
		var b bytes.Buffer
		_, err = b.ReadFrom(rc)
		require.NoError(t, err)
		rc.Close()
		n := sha(b.Bytes()) + "/layer.tar"
		legacy[n] = b.Bytes()
		legacyNames, legacyLayers = append(legacyNames, n), append(legacyLayers, n)
	}
	legacy[sha(cfgRaw)+".json"] = cfgRaw
	lm, err := json.Marshal([]map[string]any{{"Config": sha(cfgRaw) + ".json", "RepoTags": []string{"legacy:1"}, "Layers": legacyLayers}})
	require.NoError(t, err)
	legacy["manifest.json"] = lm
	legacyNames = append(legacyNames, sha(cfgRaw)+".json", "manifest.json")

	withManifest := map[string][]byte{"manifest.json": dockerManifest}
	for k, v := range files {
		withManifest[k] = v
	}
	cases := []struct {
		name  string
		names []string
		files map[string][]byte
		ref   string
		layer string // a layer file to corrupt
	}{
		{"OCI archive", names, files, "docker.io/library/fmt:1", layerPaths[1]},
		{"docker save, OCI style", append(names, "manifest.json"), withManifest, "docker.io/library/fmt:1", layerPaths[1]},
		{"docker save, legacy", legacyNames, legacy, "legacy:1", legacyLayers[1]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := imageCtx(t)
			path := filepath.Join(t.TempDir(), "image.tar")
			writeTar(t, path, c.names, c.files)
			st := newStore(t)
			got, err := st.Load(ctx, path)
			require.NoError(t, err, "Load of %s", c.name)
			assert.Equal(t, c.ref, got.Ref())
			assert.Equal(t, "sha256:"+sha(cfgRaw), got.ID())
			res, err := sandbox.New(got).Run(ctx)
			require.NoError(t, err)
			assert.Equal(t, "formats\n", string(res.Stdout), "stderr: %s", res.Stderr)

			bad := map[string][]byte{}
			for k, v := range c.files {
				bad[k] = v
			}
			b := bytes.Clone(bad[c.layer])
			b[len(b)/2] ^= 0x20
			bad[c.layer] = b
			writeTar(t, path, c.names, bad)
			st = newStore(t)
			_, err = st.Load(ctx, path)
			require.Error(t, err, "Load of %s with a corrupted layer", c.name)
			assert.Contains(t, err.Error(), "layer sha256:")
			assert.Empty(t, storeEntries(t, st, "layers"))
			assert.Empty(t, storeEntries(t, st, "tmp"))
		})
	}
}
