package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/layers"
)

// source is an image as go-containerregistry reads it, and what its
// manifest must hash to.
type source struct {
	ref     string
	img     v1.Image
	digest  string // of the manifest; "" for a docker save tarball, which has none
	tarball bool   // layers are read uncompressed: the DiffID is their only digest
}

// Load adds to the store the image at path, which is an OCI image layout
// directory, an OCI archive (a tar of a layout) or a `docker save` tarball
// (the legacy format and the OCI one that current Docker writes), and
// returns it. In a multi-platform index, [WithPlatform] chooses the image.
// Every layer's digest and DiffID are checked after its whole blob is
// read; a corrupt or truncated one is an error naming the layer and leaves
// nothing of it in the store.
func (st *Store) Load(ctx context.Context, path string, opts ...ImageOption) (*Image, error) {
	o := newImageOptions(opts)
	img, err := st.load(ctx, path, o)
	if err != nil {
		return nil, fmt.Errorf("sandbox: load %s: %w", path, err)
	}
	return img, nil
}

func (st *Store) load(ctx context.Context, path string, o *imageOptions) (*Image, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return st.loadLayout(ctx, path, o)
	}
	names, err := tarNames(path)
	if err != nil {
		return nil, err
	}
	switch {
	case names["index.json"] && names["oci-layout"]:
		// An OCI archive, or what current Docker saves (which also has a
		// manifest.json): read as a layout, whose digests are checked.
		dir, err := st.tempName("layout")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if err := extractLayout(ctx, path, dir); err != nil {
			return nil, err
		}
		return st.loadLayout(ctx, dir, o)
	case names["manifest.json"]:
		img, err := tarball.ImageFromPath(path, nil)
		if err != nil {
			return nil, fmt.Errorf("docker save tarball: %w", err)
		}
		ref := ""
		if m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) }); err == nil && len(m) > 0 && len(m[0].RepoTags) > 0 {
			ref = m[0].RepoTags[0]
		}
		return st.add(ctx, source{ref: ref, img: img, tarball: true}, o)
	}
	return nil, errors.New("not an OCI image layout, OCI archive or docker save tarball")
}

// tarNames returns the names of the top-level files of the tar at path.
func tarNames(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f) // skips file contents by seeking
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read tar: %w", err)
		}
		names[strings.TrimPrefix(hdr.Name, "./")] = true
	}
}

// extractLayout writes the layout files of the OCI archive at path into
// dir: index.json, oci-layout and blobs/<alg>/<hex>, nothing else (no
// other name, no link, no directory from the archive).
func extractLayout(ctx context.Context, path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o700); err != nil {
		return err
	}
	tr := tar.NewReader(f)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		if hdr.Typeflag != tar.TypeReg || !layoutName(name) {
			continue
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o700); err != nil {
			return err
		}
		out, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, tr)
		if err = errors.Join(err, out.Close()); err != nil {
			return err
		}
	}
}

// layoutName reports whether name is a file of an OCI layout.
func layoutName(name string) bool {
	if name == "index.json" || name == "oci-layout" {
		return true
	}
	parts := strings.Split(name, "/")
	if len(parts) != 3 || parts[0] != "blobs" {
		return false
	}
	for _, p := range parts[1:] {
		if p == "" || p == "." || p == ".." || strings.ContainsAny(p, "\\\x00") {
			return false
		}
	}
	return true
}

// loadLayout adds the image of the layout directory dir that matches the
// platform.
func (st *Store) loadLayout(ctx context.Context, dir string, o *imageOptions) (*Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("OCI layout: %w", err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("OCI layout index: %w", err)
	}
	src, err := choose(idx, o.platform, dir, 0)
	if err != nil {
		return nil, err
	}
	return st.add(ctx, *src, o)
}

// checkDigest returns an error unless the blob raw returns hashes to want.
func checkDigest(raw func() ([]byte, error), want, what string) error {
	b, err := raw()
	if err != nil {
		return err
	}
	if got := sha256Digest(b); got != want {
		return fmt.Errorf("%s has digest %s, want %s: %w", what, got, want, layers.ErrDigest)
	}
	return nil
}

func sha256Digest(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

// layerSource is one layer to unpack.
type layerSource struct {
	diffID, digest string // digest "" when the blob is the uncompressed tar
	size           int64  // of the blob, 0 when not known
	open           func() (io.ReadCloser, error)
}

// add checks the image's manifest and configuration, unpacks the layers
// the store lacks (a few at a time), and records the image under its ref.
func (st *Store) add(ctx context.Context, src source, o *imageOptions) (*Image, error) {
	l, err := st.lockStore(ctx, unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer l.Close()

	var want []layerSource
	var cfgRaw []byte
	if src.tarball {
		if cfgRaw, err = src.img.RawConfigFile(); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	} else {
		raw, err := src.img.RawManifest()
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		if len(raw) > maxConfigBytes {
			return nil, fmt.Errorf("manifest of %d bytes: more than %d", len(raw), maxConfigBytes)
		}
		if got := sha256Digest(raw); got != src.digest {
			return nil, fmt.Errorf("manifest has digest %s, want %s: %w", got, src.digest, layers.ErrDigest)
		}
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		if m.Config.Size > maxConfigBytes {
			return nil, fmt.Errorf("config of %d bytes: more than %d", m.Config.Size, maxConfigBytes)
		}
		if cfgRaw, err = src.img.RawConfigFile(); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if got := sha256Digest(cfgRaw); got != m.Config.Digest.String() {
			return nil, fmt.Errorf("config has digest %s, want %s: %w", got, m.Config.Digest, layers.ErrDigest)
		}
		ls, err := src.img.Layers()
		if err != nil {
			return nil, err
		}
		if len(ls) != len(m.Layers) {
			return nil, fmt.Errorf("manifest lists %d layers, the image has %d", len(m.Layers), len(ls))
		}
		for i, d := range m.Layers {
			want = append(want, layerSource{digest: d.Digest.String(), size: d.Size, open: ls[i].Compressed})
		}
	}
	if len(cfgRaw) > maxConfigBytes {
		return nil, fmt.Errorf("config of %d bytes: more than %d", len(cfgRaw), maxConfigBytes)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return nil, fmt.Errorf("malformed config: %w", err)
	}
	diffIDs := cfg.RootFS.DiffIDs
	if src.tarball {
		ls, err := src.img.Layers()
		if err != nil {
			return nil, err
		}
		for _, l := range ls {
			want = append(want, layerSource{open: l.Uncompressed})
		}
	}
	if len(diffIDs) == 0 {
		return nil, errors.New("image has no layers")
	}
	if len(diffIDs) != len(want) {
		return nil, fmt.Errorf("config lists %d DiffIDs for %d layers", len(diffIDs), len(want))
	}
	rec := &imageRecord{ID: sha256Digest(cfgRaw)}
	for i := range want {
		want[i].diffID = diffIDs[i].String()
		if _, err := hexOf(want[i].diffID); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		rec.DiffIDs = append(rec.DiffIDs, want[i].diffID)
	}
	if err := st.unpackAll(ctx, want, o); err != nil {
		return nil, err
	}

	c := cfg.Config
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); ok && k != "" && strings.IndexByte(kv, 0) < 0 {
			rec.Env = append(rec.Env, kv)
		}
	}
	rec.Entrypoint, rec.Cmd, rec.WorkingDir, rec.User = c.Entrypoint, c.Cmd, c.WorkingDir, c.User
	img := st.imageOf(rec, src.ref)
	if img.ref == "" {
		img.ref = rec.ID
	}
	if rec.UID, rec.GID, rec.UserErr, err = img.resolveUser(ctx); err != nil {
		return nil, err
	}
	if err := st.commit(rec, img.ref); err != nil {
		return nil, fmt.Errorf("record image: %w", err)
	}
	return st.imageOf(rec, img.ref), nil
}
