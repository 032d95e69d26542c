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
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/docker/cli/cli/config"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
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

// Pull adds to the store the image ref (such as "alpine:3.20" or
// "registry.example:5000/app@sha256:...") from its registry, and returns
// it. By default it uses the caller's Docker credentials for the registry
// when it has any, and none otherwise (see [WithBasicAuth],
// [WithDockerConfig], [WithAnonymous]), and chooses linux and the host's
// architecture in a multi-platform index, nested ones too (see
// [WithPlatform]). Layers already in the store are not fetched again;
// [WithProgress] reports the others as they arrive. Every layer's digest
// and DiffID are checked after its whole blob is read. A registry on
// localhost or 127.0.0.1 is reached over plain HTTP, as Docker does.
func (st *Store) Pull(ctx context.Context, ref string, opts ...ImageOption) (*Image, error) {
	o := newImageOptions(opts)
	img, err := st.pull(ctx, ref, o)
	if err != nil {
		return nil, fmt.Errorf("sandbox: pull %s: %w", ref, err)
	}
	return img, nil
}

func (st *Store) pull(ctx context.Context, ref string, o *imageOptions) (*Image, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	ropts := []remote.Option{remote.WithContext(ctx)}
	switch o.auth {
	case authDefault:
		ropts = append(ropts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	case authAnonymous:
		ropts = append(ropts, remote.WithAuth(authn.Anonymous))
	case authBasic:
		ropts = append(ropts, remote.WithAuth(&authn.Basic{Username: o.user, Password: o.pass}))
	case authConfig:
		kc, err := configKeychain(o.dockerConfig)
		if err != nil {
			return nil, err
		}
		ropts = append(ropts, remote.WithAuthFromKeychain(kc))
	}
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, err
	}
	var src *source
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		if src, err = choose(idx, o.platform, r.Name(), 0); err != nil {
			return nil, err
		}
	} else {
		img, err := desc.Image()
		if err != nil {
			return nil, err
		}
		src = &source{img: img, digest: desc.Digest.String()}
		if err := checkPlatform(img, o.platform, r.Name()); err != nil {
			return nil, err
		}
	}
	src.ref = r.Name()
	return st.add(ctx, *src, o)
}

// configKeychain returns a keychain of the Docker config file at path.
func configKeychain(path string) (authn.Keychain, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cf, err := config.LoadFromReader(f)
	if err != nil {
		return nil, &fs.PathError{Op: "parse docker config", Path: path, Err: err}
	}
	return keychainFunc(func(res authn.Resource) (authn.Authenticator, error) {
		for _, key := range []string{res.String(), res.RegistryStr()} {
			if key == name.DefaultRegistry {
				key = authn.DefaultAuthKey
			}
			ac, err := cf.GetAuthConfig(key)
			if err != nil {
				return nil, err
			}
			if ac.Username != "" || ac.Password != "" || ac.Auth != "" || ac.IdentityToken != "" || ac.RegistryToken != "" {
				return authn.FromConfig(authn.AuthConfig{Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
					IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}), nil
			}
		}
		return authn.Anonymous, nil
	}), nil
}

type keychainFunc func(authn.Resource) (authn.Authenticator, error)

func (f keychainFunc) Resolve(r authn.Resource) (authn.Authenticator, error) { return f(r) }

// platformMatches reports whether p is the platform want ("os/arch" or
// "os/arch/variant"; a want without variant takes any).
func platformMatches(p *v1.Platform, want string) bool {
	if p == nil {
		return false
	}
	w, err := v1.ParsePlatform(want)
	if err != nil {
		return false
	}
	return p.OS == w.OS && p.Architecture == w.Architecture && (w.Variant == "" || p.Variant == w.Variant)
}

// choose returns the image of idx, or of an index in it, for the platform
// want; a *PlatformError lists those there are.
func choose(idx v1.ImageIndex, want, ref string, depth int) (*source, error) {
	var avail []string
	src, err := chooseIn(idx, want, ref, depth, &avail)
	if err != nil || src != nil {
		return src, err
	}
	return nil, &PlatformError{Ref: ref, Want: want, Available: avail}
}

func chooseIn(idx v1.ImageIndex, want, ref string, depth int, avail *[]string) (*source, error) {
	if depth > 4 {
		return nil, errors.New("image indexes nested more than 4 deep")
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range m.Manifests {
		if d.Size > maxConfigBytes {
			return nil, fmt.Errorf("manifest %s of %d bytes: more than %d", d.Digest, d.Size, maxConfigBytes)
		}
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			if err := checkDigest(child.RawManifest, d.Digest.String(), "index"); err != nil {
				return nil, err
			}
			src, err := chooseIn(child, want, ref, depth+1, avail)
			if err != nil || src != nil {
				return src, err
			}
		case d.MediaType.IsImage():
			p := d.Platform
			if p == nil {
				// A layout's single image often has no platform in the
				// index: its config says.
				img, err := idx.Image(d.Digest)
				if err != nil {
					return nil, err
				}
				if p, err = configPlatform(img); err != nil {
					return nil, err
				}
			}
			if p == nil || p.OS == "unknown" {
				continue // attestations and the like
			}
			if !platformMatches(p, want) {
				*avail = append(*avail, p.String())
				continue
			}
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, err
			}
			r := ref
			if n := d.Annotations["io.containerd.image.name"]; n != "" {
				r = n
			} else if n := d.Annotations["org.opencontainers.image.ref.name"]; n != "" {
				r = n
			}
			return &source{ref: r, img: img, digest: d.Digest.String()}, nil
		}
	}
	return nil, nil
}

// checkPlatform returns a *PlatformError unless the single image img is for
// the platform want.
func checkPlatform(img v1.Image, want, ref string) error {
	p, err := configPlatform(img)
	if err != nil {
		return err
	}
	if p == nil || platformMatches(p, want) {
		return nil
	}
	return &PlatformError{Ref: ref, Want: want, Available: []string{p.String()}}
}

// configPlatform returns the platform img's config names, reading a
// config of at most maxConfigBytes.
func configPlatform(img v1.Image) (*v1.Platform, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if m.Config.Size > maxConfigBytes {
		return nil, fmt.Errorf("config of %d bytes: more than %d", m.Config.Size, maxConfigBytes)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("malformed config: %w", err)
	}
	return cf.Platform(), nil
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

// unpackAll unpacks the layers the store lacks, up to three at a time;
// the first error cancels the others.
func (st *Store) unpackAll(ctx context.Context, want []layerSource, o *imageOptions) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, 3)
	var wg sync.WaitGroup
	for _, l := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if err := st.ensureLayer(ctx, l, o); err != nil {
				name := l.digest
				if name == "" {
					name = l.diffID
				}
				cancel(fmt.Errorf("layer %s: %w", name, err))
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
		return err
	}
	return nil
}

// ensureLayer unpacks l into the store unless it is there: into a
// temporary, renamed into place once its digests are checked. A lock per
// layer makes others that want it wait for this unpack rather than repeat
// it.
func (st *Store) ensureLayer(ctx context.Context, l layerSource, o *imageOptions) error {
	h, _ := hexOf(l.diffID)
	final := st.path(storeLayers, h)
	report := func(p Progress) {
		if o.progress != nil {
			p.Layer = l.digest
			if p.Layer == "" {
				p.Layer = l.diffID
			}
			o.progress(p)
		}
	}
	if _, err := os.Lstat(final); err == nil {
		report(Progress{Cached: true, Done: l.size, Total: l.size})
		return nil
	}
	lk, err := lock(ctx, st.path(storeLocks, h), unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer lk.Close()
	if _, err := os.Lstat(final); err == nil {
		report(Progress{Cached: true, Done: l.size, Total: l.size})
		return nil
	}
	tmp, err := st.tempName("layer")
	if err != nil {
		return err
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(tmp)
		}
	}()
	rc, err := l.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	r := &progressReader{r: rc, total: l.size, report: report}
	if _, err := layers.Unpack(ctx, r, tmp, layers.Want{Digest: l.digest, DiffID: l.diffID},
		layers.Options{MaxBytes: o.maxLayer, AllowDevices: o.devices}); err != nil {
		return err
	}
	r.report(Progress{Done: r.done, Total: max(l.size, r.done)})
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	keep = true
	return nil
}

// progressReader reports every MiB read through it.
type progressReader struct {
	r           io.Reader
	done, total int64
	last        int64
	report      func(Progress)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	// The end is reported once, by ensureLayer, after the checks.
	if p.done-p.last >= 1<<20 && (p.total == 0 || p.done < p.total) {
		p.last = p.done
		p.report(Progress{Done: p.done, Total: p.total})
	}
	return n, err
}
