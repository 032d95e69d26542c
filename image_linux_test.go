package sandbox_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

func imageCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestImageLayoutRun loads a two-layer busybox image from an OCI layout
// and runs it: its default command, env, working directory and user, and
// the definition's overrides.
func TestImageLayoutRun(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := imageCtx(t)
	top := layerOf(t, layerTar(t,
		entry{name: "srv/", typ: '5'},
		entry{name: "srv/hello", body: "from the top layer\n"},
		entry{name: "etc/hostname", body: "replaced\n"},
	))
	cfg := v1.Config{
		Env:        []string{"PATH=/bin", "GREETING=hi"},
		Entrypoint: []string{"/bin/sh", "-c"},
		Cmd:        []string{`echo "$GREETING $(pwd) $(id -u):$(id -g)"; cat /srv/hello /etc/hostname`},
		WorkingDir: "/srv",
		User:       "user",
	}
	dir := writeLayout(t, busyboxImage(t, cfg, top))
	st := newStore(t)
	before := testutil.SnapshotHost(t)
	img, err := st.Load(ctx, dir)
	require.NoError(t, err, "Load of a layout")
	require.Len(t, img.Layers(), 2)

	res, err := sandbox.New(img).Run(ctx)
	require.NoError(t, err, "Run with no argv on an image")
	assert.Equal(t, 0, res.ExitCode, "stderr: %s", res.Stderr)
	assert.Equal(t, "hi /srv 1000:1000\nfrom the top layer\nreplaced\n", string(res.Stdout))

	res, err = sandbox.New(img).WithUser(0, 0).WithWorkdir("/").WithEnv("GREETING=bye").
		Run(ctx, "sh", "-c", `echo "$GREETING $(pwd) $(id -u)"`)
	require.NoError(t, err)
	assert.Equal(t, "bye / 0\n", string(res.Stdout), "the definition's With methods override the image's")

	again, err := st.Load(ctx, dir)
	require.NoError(t, err, "second Load of the same layout")
	assert.Equal(t, img.ID(), again.ID())
	assert.Empty(t, storeEntries(t, st, "tmp"), "no temporaries left")
	require.NoError(t, st.Close(), "Close releases the overlay kept for the image")
	testutil.CheckFDs(t, before, "after loads and runs and Close")
	assert.Equal(t, before.Mounts, testutil.SnapshotHost(t).Mounts, "no mount left")
}

// TestImageManyLayers runs an image of 60 layers, from a store whose path
// is long enough that their lowerdir= string would pass the page-size
// limit of mount options, and in a user namespace too.
func TestImageManyLayers(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := imageCtx(t)
	const n = 60
	var ls []v1.Layer
	for i := range n {
		ls = append(ls, layerOf(t, layerTar(t, entry{name: fmt.Sprintf("layers/%02d", i), body: "x"})))
	}
	dir := filepath.Join(t.TempDir(), strings.Repeat("long-store-directory-name/", 6))
	st, err := sandbox.OpenStore(dir)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	img, err := st.Load(ctx, writeLayout(t, busyboxImage(t, v1.Config{}, ls...)))
	require.NoError(t, err)
	require.Greater(t, n*len(filepath.Join(dir, "layers", strings.Repeat("0", 64))), 4096)

	res, err := sandbox.New(img).Run(ctx, "sh", "-c", "ls /layers | wc -l")
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintln(n), string(res.Stdout), "stderr: %s", res.Stderr)

	res, err = sandbox.New(img).WithUserNamespace().Run(ctx, "sh", "-c", "ls /layers | wc -l; echo hi > /tmp/x; cat /tmp/x")
	require.NoError(t, err, "Run of an image in a user namespace")
	assert.Equal(t, fmt.Sprintln(n)+"hi\n", string(res.Stdout), "stderr: %s", res.Stderr)
}

// TestImageUserNeverFallsBackToRoot runs an image whose user its
// /etc/passwd lacks: the run is refused as a configuration error naming
// the user, unless WithUser chooses one; a user the image resolves runs as
// it.
func TestImageUserNeverFallsBackToRoot(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := imageCtx(t)
	st := newStore(t)
	img, err := st.Load(ctx, writeLayout(t, busyboxImage(t, v1.Config{User: "ghost"})))
	require.NoError(t, err, "Load of an image with an unknown user")
	_, err = sandbox.New(img).Run(ctx, "id", "-u")
	require.ErrorIs(t, err, sandbox.ErrInvalidConfig, "Run as an unresolvable image user")
	var fe *sandbox.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "user", fe.Field)
	assert.Contains(t, err.Error(), "ghost")
	res, err := sandbox.New(img).WithUser(1000, 1000).Run(ctx, "id", "-u")
	require.NoError(t, err)
	assert.Equal(t, "1000\n", string(res.Stdout))

	img, err = st.Load(ctx, writeLayout(t, busyboxImage(t, v1.Config{User: "4294967295"})))
	require.NoError(t, err)
	_, err = sandbox.New(img).Run(ctx, "id", "-u")
	assert.ErrorIs(t, err, sandbox.ErrInvalidConfig, "Run as a UID that does not fit")
}

// TestImageRunsShareLayersNotWrites starts two sandboxes on one image of
// several layers, whose runs share the store's overlay of them: each sees
// its own writes only, and a later run none of them.
func TestImageRunsShareLayersNotWrites(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := imageCtx(t)
	st := newStore(t)
	img, err := st.Load(ctx, writeLayout(t, busyboxImage(t, v1.Config{}, layerOf(t, layerTar(t, entry{name: "etc/motd", body: "image\n"})))))
	require.NoError(t, err)
	var ins []*sandbox.Instance
	for range 2 {
		in, err := sandbox.New(img).Start(ctx, "sleep", "100")
		require.NoError(t, err)
		t.Cleanup(func() { in.Close() })
		ins = append(ins, in)
	}
	for i, in := range ins {
		require.NoError(t, in.WriteFile("/etc/motd", []byte(fmt.Sprintln("sandbox", i)), 0o644))
	}
	for i, in := range ins {
		b, err := in.ReadFile("/etc/motd")
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintln("sandbox", i), string(b), "sandbox %d reads its own write", i)
	}
	res, err := sandbox.New(img).Run(ctx, "cat", "/etc/motd")
	require.NoError(t, err)
	assert.Equal(t, "image\n", string(res.Stdout), "a later run sees the image's file")
}
