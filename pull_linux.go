package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/docker/cli/cli/config"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

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
