package sandbox_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"

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
	requireInReadme(t, `img, err := store.Pull(ctx, ref)`,
		`res, err := sandbox.New(img).WithMemory(256 << 20).Run(ctx)`)
	ctx := imageCtx(t)
	ref := newRegistry(t, nil) + "/hello:1"
	push(t, ref, busyboxImage(t, v1.Config{Cmd: []string{"echo", "hello from an image"}}))
	store, err := sandbox.OpenStore(t.TempDir())
	require.NoError(t, err)
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
	goBin, err := exec.LookPath("go")
	if err != nil {
		testutil.SkipOrFail(t, "building examples/image needs the go command in PATH")
	}
	bin := filepath.Join(t.TempDir(), "image")
	out, err := exec.Command(goBin, "build", "-o", bin, "./examples/image").CombinedOutput()
	require.NoError(t, err, "go build ./examples/image: %s", out)
	layout := writeLayout(t, busyboxImage(t, v1.Config{Cmd: []string{"echo", "example ran"}}))
	store := t.TempDir()
	cmd := exec.CommandContext(imageCtx(t), bin, "-store", store, layout)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "examples/image on a layout: %s", stderr.String())
	assert.Equal(t, "example ran\n", stdout.String())

	cmd = exec.CommandContext(imageCtx(t), bin, "-store", store, layout, "sh", "-c", "exit 7")
	err = cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 7, ee.ExitCode(), "the example exits with the command's status")
}
