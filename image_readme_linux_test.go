package sandbox_test

import (
	"bytes"
	"os"
	"os/exec"
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

// TestReadmeImage runs the README's image example against an in-process
// registry.
func TestReadmeImage(t *testing.T) {
	testutil.RequireRoot(t)
	requireInReadme(t, `defer store.Close() // releases the mounts it keeps for later runs`, `img, err := store.Pull(ctx, ref)`,
		`res, err := sandbox.New(img).WithMemory(256 << 20).Run(ctx)`)
	ctx := imageCtx(t)
	ref := newRegistry(t, nil) + "/hello:1"
	push(t, ref, busyboxImage(t, v1.Config{Cmd: []string{"echo", "hello from an image"}}))
	store, err := sandbox.OpenStore(t.TempDir())
	require.NoError(t, err)
	defer store.Close()
	img, err := store.Pull(ctx, ref)
	require.NoError(t, err)
	res, err := sandbox.New(img).WithMemory(256 << 20).Run(ctx)
	require.NoError(t, err)
	assert.Equal(t, "hello from an image\n", string(res.Stdout))
}

// TestExampleImage builds examples/image and runs it on a layout: it
// loads the image into its store and runs the image's command.
func TestExampleImage(t *testing.T) {
	testutil.RequireRoot(t)
	requireInReadme(t, "examples/image")
	bin := buildExample(t)
	layout := writeLayout(t, busyboxImage(t, v1.Config{Cmd: []string{"echo", "example ran"}}))
	store := t.TempDir()
	cmd := exec.CommandContext(imageCtx(t), bin, "-store", store, layout)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "examples/image on a layout: %s", stderr.String())
	assert.Equal(t, "example ran\n", stdout.String())

	cmd = exec.CommandContext(imageCtx(t), bin, "-store", store, layout, "sh", "-c", "exit 7")
	err := cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 7, ee.ExitCode(), "the example exits with the command's status")
}

// buildExample builds examples/image and returns the binary.
func buildExample(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		testutil.SkipOrFail(t, "building examples/image needs the go command in PATH")
	}
	bin := filepath.Join(t.TempDir(), "image")
	out, err := exec.Command(goBin, "build", "-o", bin, "./examples/image").CombinedOutput()
	require.NoError(t, err, "go build ./examples/image: %s", out)
	return bin
}

// TestImageTwoProcesses loads one image from two processes at once into
// one store: both succeed and the store holds each layer once. Then a
// process killed mid-unpack leaves only a temporary, which the next
// OpenStore removes, and the image loads.
func TestImageTwoProcesses(t *testing.T) {
	testutil.RequireRoot(t)
	requireInReadme(t, "examples/image")
	bin := buildExample(t)
	big := layerOf(t, layerTar(t, entry{name: "big", body: strings.Repeat("0123456789abcdef", 8<<20)}))
	layout := writeLayout(t, busyboxImage(t, v1.Config{Cmd: []string{"true"}}, big))
	store := t.TempDir()
	ctx := imageCtx(t)
	var cmds []*exec.Cmd
	for range 2 {
		c := exec.CommandContext(ctx, bin, "-store", store, layout)
		require.NoError(t, c.Start())
		cmds = append(cmds, c)
	}
	for i, c := range cmds {
		assert.NoError(t, c.Wait(), "process %d", i)
	}
	st, err := sandbox.OpenStore(store)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	assert.Len(t, storeEntries(t, st, "layers"), 2)
	assert.Empty(t, storeEntries(t, st, "tmp"))

	fresh := t.TempDir()
	c := exec.CommandContext(ctx, bin, "-store", fresh, layout)
	require.NoError(t, c.Start())
	tmp := filepath.Join(fresh, "tmp")
	sawTemp := false
	for !sawTemp {
		select {
		case <-ctx.Done():
			t.Fatal("no unpack seen before the timeout")
		case <-time.After(time.Millisecond):
		}
		es, _ := os.ReadDir(tmp)
		for _, e := range es {
			if strings.Contains(e.Name(), ".layer.") {
				sawTemp = true
			}
		}
	}
	require.NoError(t, c.Process.Kill())
	c.Wait()
	require.True(t, sawTemp, "the killed process was unpacking")
	st, err = sandbox.OpenStore(fresh)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	assert.Empty(t, storeEntries(t, st, "tmp"), "what the killed process left")
	img, err := st.Load(ctx, layout)
	require.NoError(t, err, "Load after a killed unpack")
	assert.Len(t, storeEntries(t, st, "layers"), 2)
	res, err := sandbox.New(img).Run(ctx, "wc", "-c", "/big")
	require.NoError(t, err)
	assert.Equal(t, "134217728 /big\n", string(res.Stdout))
}
