package sandbox_test

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// entry is one crafted tar entry of a test layer.
type entry struct {
	name, link string
	typ        byte
	mode       int64
	body       string
	uid, gid   int
	major      int64
	xattrs     map[string]string
}

// layerTar returns the uncompressed tar of entries.
func layerTar(tb testing.TB, entries ...entry) []byte {
	tb.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: mode, Uid: e.uid, Gid: e.gid,
			Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0), Devmajor: e.major, Format: tar.FormatPAX}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		for k, v := range e.xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		require.NoError(tb, tw.WriteHeader(hdr))
		if typ == tar.TypeReg {
			_, err := tw.Write([]byte(e.body))
			require.NoError(tb, err)
		}
	}
	require.NoError(tb, tw.Close())
	return b.Bytes()
}

// tarDir returns the uncompressed tar of the directory dir.
func tarDir(tb testing.TB, dir string) []byte {
	tb.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr.Name = rel
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	require.NoError(tb, err)
	require.NoError(tb, tw.Close())
	return b.Bytes()
}

// layerOf returns a gzip layer of the tar data.
func layerOf(tb testing.TB, data []byte) v1.Layer {
	tb.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	require.NoError(tb, err)
	return l
}

// imageOf returns an image of layers (base first) with the config cfg.
func imageOf(tb testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	tb.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	require.NoError(tb, err)
	cf, err := img.ConfigFile()
	require.NoError(tb, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config = cfg
	img, err = mutate.ConfigFile(img, cf)
	require.NoError(tb, err)
	return img
}

// busyboxImage returns an image of one layer: testutil.Rootfs's busybox.
func busyboxImage(tb testing.TB, cfg v1.Config, more ...v1.Layer) v1.Image {
	tb.Helper()
	return imageOf(tb, cfg, append([]v1.Layer{layerOf(tb, tarDir(tb, testutil.Rootfs(tb)))}, more...)...)
}

// writeLayout writes img into a new OCI layout and returns its directory.
func writeLayout(tb testing.TB, img v1.Image, opts ...layout.Option) string {
	tb.Helper()
	dir := tb.TempDir()
	p, err := layout.Write(dir, empty.Index)
	require.NoError(tb, err)
	require.NoError(tb, p.AppendImage(img, opts...))
	return dir
}

// newStore opens a store in a new temporary directory.
func newStore(tb testing.TB) *sandbox.Store {
	tb.Helper()
	st, err := sandbox.OpenStore(tb.TempDir())
	require.NoError(tb, err)
	tb.Cleanup(func() { st.Close() })
	return st
}

// storeEntries returns the names in each of the store's directories.
func storeEntries(tb testing.TB, st *sandbox.Store, sub string) []string {
	tb.Helper()
	es, err := os.ReadDir(filepath.Join(st.Dir(), sub))
	require.NoError(tb, err)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}
