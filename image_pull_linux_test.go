package sandbox_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// newRegistry serves an in-process registry on 127.0.0.1 through wrap
// (nil: as is) and returns its host:port.
func newRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	h := registry.New(registry.Logger(nopLogger()))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// push writes img to the registry as ref.
func push(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	require.NoError(t, remote.Write(mustRef(t, ref), img))
}

// TestImagePullRun pulls a busybox image from an in-process registry, runs
// its command, and pulls it again: the second pull fetches no layer and
// reports each as cached.
func TestImagePullRun(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := imageCtx(t)
	host := newRegistry(t, nil)
	top := layerOf(t, layerTar(t, entry{name: "msg", body: "pulled\n"}))
	push(t, host+"/busybox:1", busyboxImage(t, v1.Config{Cmd: []string{"cat", "/msg"}}, top))

	st := newStore(t)
	var mu sync.Mutex
	last := map[string]sandbox.Progress{}
	progress := sandbox.WithProgress(func(p sandbox.Progress) {
		mu.Lock()
		defer mu.Unlock()
		last[p.Layer] = p
	})
	img, err := st.Pull(ctx, host+"/busybox:1", progress)
	require.NoError(t, err, "Pull from the in-process registry")
	require.Len(t, last, 2, "a progress report for each layer")
	for l, p := range last {
		assert.False(t, p.Cached, "layer %s on the first pull", l)
		assert.Equal(t, p.Total, p.Done, "layer %s: the last report is complete", l)
		assert.Positive(t, p.Total)
	}
	res, err := sandbox.New(img).Run(ctx)
	require.NoError(t, err)
	assert.Equal(t, "pulled\n", string(res.Stdout), "stderr: %s", res.Stderr)

	clear(last)
	again, err := st.Pull(ctx, host+"/busybox:1", progress)
	require.NoError(t, err)
	assert.Equal(t, img.ID(), again.ID())
	for l, p := range last {
		assert.True(t, p.Cached, "layer %s on the second pull", l)
	}
	list, err := st.List()
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, host+"/busybox:1", list[0].Ref())
}

// TestImagePullPlatforms pulls from a multi-platform index with a nested
// index: the host's platform is found in the nested one, and a platform
// that is not there is an error naming those that are.
func TestImagePullPlatforms(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := imageCtx(t)
	host := newRegistry(t, nil)
	mk := func(arch string) v1.Image {
		img := imageOf(t, v1.Config{}, layerOf(t, layerTar(t, entry{name: "arch", body: arch})))
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		cf = cf.DeepCopy()
		cf.Architecture = arch
		img, err = mutate.ConfigFile(img, cf)
		require.NoError(t, err)
		return img
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	nested := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: mk(runtime.GOARCH),
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}})
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: mk(other), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
		mutate.IndexAddendum{Add: nested},
	)
	ref := host + "/multi:1"
	require.NoError(t, remote.WriteIndex(mustRef(t, ref), idx))

	st := newStore(t)
	img, err := st.Pull(ctx, ref)
	require.NoError(t, err, "Pull of a nested index, default platform")
	layer := filepath.Join(st.Dir(), "layers", strings.TrimPrefix(img.Layers()[0], "sha256:"), "arch")
	b, err := os.ReadFile(layer)
	require.NoError(t, err)
	assert.Equal(t, runtime.GOARCH, string(b))

	img, err = st.Pull(ctx, ref, sandbox.WithPlatform("linux/"+other))
	require.NoError(t, err)
	b, err = os.ReadFile(filepath.Join(st.Dir(), "layers", strings.TrimPrefix(img.Layers()[0], "sha256:"), "arch"))
	require.NoError(t, err)
	assert.Equal(t, other, string(b))

	_, err = st.Pull(ctx, ref, sandbox.WithPlatform("linux/s390x"))
	var pe *sandbox.PlatformError
	require.ErrorAs(t, err, &pe, "Pull of a platform the index lacks")
	assert.ElementsMatch(t, []string{"linux/" + other, "linux/" + runtime.GOARCH}, pe.Available)
}

// TestImagePullAuth pulls from a registry that wants basic auth: without
// credentials it fails; with WithBasicAuth, and with a Docker config
// file's credentials, it works.
func TestImagePullAuth(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := imageCtx(t)
	host := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "s3cret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	ref := host + "/private:1"
	img := imageOf(t, v1.Config{}, layerOf(t, layerTar(t, entry{name: "f", body: "x"})))
	require.NoError(t, remote.Write(mustRef(t, ref), img, remote.WithAuth(basic("alice", "s3cret"))))

	st := newStore(t)
	_, err := st.Pull(ctx, ref, sandbox.WithAnonymous())
	require.Error(t, err, "Pull without credentials")
	_, err = st.Pull(ctx, ref, sandbox.WithBasicAuth("alice", "wrong"))
	require.Error(t, err, "Pull with a wrong password")
	_, err = st.Pull(ctx, ref, sandbox.WithBasicAuth("alice", "s3cret"))
	require.NoError(t, err, "Pull with WithBasicAuth")

	cfg := filepath.Join(t.TempDir(), "config.json")
	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, host, auth), 0o600))
	_, err = newStore(t).Pull(ctx, ref, sandbox.WithDockerConfig(cfg))
	require.NoError(t, err, "Pull with WithDockerConfig")
}

// TestImagePullCorruptLayer has the registry flip a byte of a layer's
// blob as it serves it: the pull fails naming the layer and leaves it out
// of the store.
func TestImagePullCorruptLayer(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := imageCtx(t)
	l := layerOf(t, layerTar(t, entry{name: "f", body: strings.Repeat("payload ", 4096)}))
	dg, err := l.Digest()
	require.NoError(t, err)
	host := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+dg.String()) {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			b := bytes.Clone(rec.Body.Bytes())
			if len(b) > 0 {
				b[len(b)/2] ^= 0x01
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(b)
		})
	})
	ref := host + "/corrupt:1"
	push(t, ref, imageOf(t, v1.Config{}, l))
	st := newStore(t)
	_, err = st.Pull(ctx, ref)
	require.Error(t, err, "Pull of a corrupted layer")
	assert.Contains(t, err.Error(), dg.String(), "the error names the layer")
	assert.Empty(t, storeEntries(t, st, "layers"))
	assert.Empty(t, storeEntries(t, st, "tmp"))
}

// TestImagePullConcurrent pulls one image from two goroutines, each with
// its own Store of the same directory: both succeed and each layer is
// unpacked once.
func TestImagePullConcurrent(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := imageCtx(t)
	host := newRegistry(t, nil)
	ref := host + "/busybox:c"
	push(t, ref, busyboxImage(t, v1.Config{}, layerOf(t, layerTar(t, entry{name: "f", body: "x"}))))
	dir := t.TempDir()
	var mu sync.Mutex
	unpacked := map[string]int{}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := sandbox.OpenStore(dir)
			if err != nil {
				errs[i] = err
				return
			}
			defer st.Close()
			_, errs[i] = st.Pull(ctx, ref, sandbox.WithProgress(func(p sandbox.Progress) {
				if !p.Cached && p.Done == p.Total {
					mu.Lock()
					unpacked[p.Layer]++
					mu.Unlock()
				}
			}))
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.Len(t, unpacked, 2)
	for l, n := range unpacked {
		assert.Equal(t, 1, n, "layer %s unpacked once", l)
	}
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func basic(user, pass string) authn.Authenticator {
	return &authn.Basic{Username: user, Password: pass}
}

func mustRef(t *testing.T, ref string) name.Reference {
	r, err := name.ParseReference(ref)
	require.NoError(t, err)
	return r
}
