package sandbox_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// TestImageMaliciousLayers loads layers crafted to write outside their
// directory, or to hold what a layer may not. After each case the host's
// marker files are unchanged and the store holds no partial layer: either
// the load fails, naming the layer, with no layer and no temporary left,
// or what the layer wrote is inside it.
func TestImageMaliciousLayers(t *testing.T) {
	testutil.RequireRoot(t)
	host := t.TempDir()
	marker := filepath.Join(host, "marker")
	require.NoError(t, os.WriteFile(marker, []byte("original"), 0o644))
	// An absolute host path, as a tar name or link target.
	abs := strings.TrimPrefix(marker, "/")
	hostDir := strings.TrimPrefix(host, "/")

	tests := []struct {
		name   string
		layers [][]entry // base first
		opts   []sandbox.ImageOption
		err    error  // nil: the load succeeds
		inside string // with a nil err: a file the layers must hold, relative to the merged root
	}{
		{name: "dotdot name", layers: [][]entry{{{name: "../../../../../../" + abs, body: "pwned"}}}, err: errUnsafe},
		{name: "dotdot inside a name", layers: [][]entry{{{name: "a/../../" + abs, body: "pwned"}}}, err: errUnsafe},
		{name: "absolute name lands inside", layers: [][]entry{{{name: "/" + abs, body: "pwned"}}}, inside: abs},
		{name: "symlink out then a file through it", layers: [][]entry{{
			{name: "evil", typ: '2', link: "/" + hostDir},
			{name: "evil/marker", body: "pwned"},
		}}, err: errAny},
		{name: "relative symlink out then a file through it", layers: [][]entry{{
			{name: "evil", typ: '2', link: "../../../../../../../" + hostDir},
			{name: "evil/marker", body: "pwned"},
		}}, err: errAny},
		{name: "symlink in one layer, file through it in the next", layers: [][]entry{
			{{name: "evil", typ: '2', link: "/" + hostDir}},
			{{name: "evil/marker", body: "pwned"}},
		}, inside: "evil/marker"},
		{name: "directory then symlink then a file under it", layers: [][]entry{{
			{name: "a/", typ: '5'},
			{name: "a", typ: '2', link: "/" + hostDir},
			{name: "a/marker", body: "pwned"},
		}}, err: errAny},
		{name: "directory then symlink to a directory inside then a file", layers: [][]entry{{
			{name: "inside/", typ: '5'},
			{name: "a/", typ: '5'},
			{name: "a", typ: '2', link: "/inside"},
			{name: "a/marker", body: "pwned"},
		}}, inside: "inside/marker"},
		{name: "hard link to a host file", layers: [][]entry{{{name: "h", typ: '1', link: "/" + abs}}}, err: errAny},
		{name: "hard link with dotdot", layers: [][]entry{{{name: "h", typ: '1', link: "../../../../../" + abs}}}, err: errUnsafe},
		{name: "hard link to a symlink out, then written", layers: [][]entry{{
			{name: "s", typ: '2', link: "/" + abs},
			{name: "h", typ: '1', link: "s"},
			{name: "h", body: "pwned"},
		}}, inside: "h"},
		{name: "hard link through a symlinked directory", layers: [][]entry{{
			{name: "d", typ: '2', link: "/" + hostDir},
			{name: "h", typ: '1', link: "d/marker"},
		}}, err: errAny},
		{name: "device node", layers: [][]entry{{{name: "mem", typ: '3', major: 1}}}, err: errUnsafe},
		{name: "device node allowed", layers: [][]entry{{{name: "mem", typ: '3', major: 1}}}, opts: []sandbox.ImageOption{sandbox.WithDevices()}, inside: "mem"},
		{name: "overlay xattrs dropped", layers: [][]entry{{{name: "d/", typ: '5', xattrs: map[string]string{"trusted.overlay.redirect": "/" + hostDir}}, {name: "d/f", body: "x"}}}, inside: "d/f"},
		{name: "decompression bomb", layers: [][]entry{{{name: "zeros", body: string(make([]byte, 4<<20))}}},
			opts: []sandbox.ImageOption{sandbox.WithMaxLayerSize(1 << 20)}, err: errTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := imageCtx(t)
			var ls []v1.Layer
			for _, l := range tt.layers {
				ls = append(ls, layerOf(t, layerTar(t, l...)))
			}
			st := newStore(t)
			img, err := st.Load(ctx, writeLayout(t, imageOf(t, v1.Config{}, ls...)), tt.opts...)
			got, rerr := os.ReadFile(marker)
			require.NoError(t, rerr)
			assert.Equal(t, "original", string(got), "the host's marker file")
			assert.Empty(t, storeEntries(t, st, "tmp"), "temporaries left in the store")
			if tt.err != nil {
				require.Error(t, err, "Load of a malicious layer")
				t.Log(err)
				if tt.err != errAny {
					assert.ErrorContains(t, err, tt.err.Error())
				}
				assert.Contains(t, err.Error(), "layer sha256:", "the error names the layer")
				assert.Empty(t, storeEntries(t, st, "layers"), "a layer of a failed load is in the store")
				return
			}
			require.NoError(t, err, "Load")
			found := false
			for _, d := range img.Layers() {
				if _, err := os.Lstat(filepath.Join(st.Dir(), "layers", strings.TrimPrefix(d, "sha256:"), tt.inside)); err == nil {
					found = true
				}
			}
			assert.True(t, found, "%s is inside a layer", tt.inside)
		})
	}
}

var (
	errAny      = errors.New("any error")
	errUnsafe   = errors.New("unsafe layer entry")
	errTooLarge = errors.New("layer unpacks to more than the size cap")
)

// TestImageCorruptLayout flips one byte of a layer's blob, or cuts it
// short, in a layout: the load fails naming the layer and leaves no layer.
func TestImageCorruptLayout(t *testing.T) {
	testutil.RequireRoot(t)
	for _, how := range []string{"flip a byte", "truncate"} {
		t.Run(how, func(t *testing.T) {
			ctx := imageCtx(t)
			l := layerOf(t, layerTar(t, entry{name: "f", body: strings.Repeat("data ", 1000)}))
			dir := writeLayout(t, imageOf(t, v1.Config{}, l))
			dg, err := l.Digest()
			require.NoError(t, err)
			blob := filepath.Join(dir, "blobs", "sha256", dg.Hex)
			b, err := os.ReadFile(blob)
			require.NoError(t, err)
			if how == "truncate" {
				b = b[:len(b)-10]
			} else {
				b = bytes.Clone(b)
				b[len(b)/2] ^= 0x40
			}
			require.NoError(t, os.WriteFile(blob, b, 0o644))
			st := newStore(t)
			_, err = st.Load(ctx, dir)
			require.Error(t, err, "Load of a corrupt layout")
			assert.Contains(t, err.Error(), dg.String(), "the error names the layer")
			assert.Empty(t, storeEntries(t, st, "layers"))
			assert.Empty(t, storeEntries(t, st, "tmp"))
		})
	}
}

// TestImageMetadataAndWhiteouts checks what a layer keeps (setuid bits,
// modes, owners, extended attributes, mtimes) and that its whiteouts hide
// a lower layer's file and make a directory opaque in the sandbox.
func TestImageMetadataAndWhiteouts(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := imageCtx(t)
	lower := layerOf(t, layerTar(t,
		entry{name: "w/", typ: '5'}, entry{name: "w/a", body: "a"}, entry{name: "w/b", body: "b"},
		entry{name: "o/", typ: '5'}, entry{name: "o/x", body: "x"},
	))
	upper := layerOf(t, layerTar(t,
		entry{name: "w/.wh.a"},
		entry{name: "o/", typ: '5'}, entry{name: "o/.wh..wh..opq"}, entry{name: "o/y", body: "y"},
		entry{name: "suid", body: "#!/bin/sh\n", mode: 0o4755, uid: 1234, gid: 5678, xattrs: map[string]string{"user.note": "kept", "trusted.overlay.opaque": "y"}},
	))
	st := newStore(t)
	img, err := st.Load(ctx, writeLayout(t, busyboxImage(t, v1.Config{}, lower, upper)))
	require.NoError(t, err)
	res, err := sandbox.New(img).Run(ctx, "sh", "-c", "ls /w; ls /o; stat -c '%a %u %g %Y' /suid")
	require.NoError(t, err)
	assert.Equal(t, "b\ny\n4755 1234 5678 1700000000\n", string(res.Stdout), "stderr: %s", res.Stderr)

	top := filepath.Join(st.Dir(), "layers", strings.TrimPrefix(img.Layers()[2], "sha256:"))
	buf := make([]byte, 64)
	probe := filepath.Join(st.Dir(), "probe")
	require.NoError(t, os.WriteFile(probe, nil, 0o600))
	if err := unix.Setxattr(probe, "user.probe", []byte("y"), 0); err == nil {
		n, err := unix.Lgetxattr(filepath.Join(top, "suid"), "user.note", buf)
		require.NoError(t, err, "user.note on the unpacked file")
		assert.Equal(t, "kept", string(buf[:n]))
	} else {
		t.Logf("the store's file system takes no user.* xattrs (%v): not checked", err)
	}
	_, err = unix.Lgetxattr(filepath.Join(top, "suid"), "trusted.overlay.opaque", buf)
	assert.ErrorIs(t, err, unix.ENODATA, "a layer's own overlay xattr must be dropped")
	n, err := unix.Lgetxattr(filepath.Join(top, "o"), "trusted.overlay.opaque", buf)
	require.NoError(t, err, "the opaque directory's xattr")
	assert.Equal(t, "y", string(buf[:n]))
}
