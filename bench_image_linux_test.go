package sandbox_test

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// BenchmarkImageRun compares a Run of true on a Dir root with one on the
// same busybox as an image, warm (its layers in the store: nothing is
// copied or unpacked per run), as an image of 20 layers, and a first run
// (a new store each iteration: load, unpack, run).
func BenchmarkImageRun(b *testing.B) {
	testutil.RequireRoot(b)
	root := testutil.Rootfs(b)
	layout := writeLayout(b, busyboxImage(b, v1.Config{}))
	var many []v1.Layer
	for i := range 19 {
		many = append(many, layerOf(b, tarOf(b, entry{name: "l/" + string(rune('a'+i)), body: "x"})))
	}
	manyLayout := writeLayout(b, busyboxImage(b, v1.Config{}, many...))
	st, err := sandbox.OpenStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	img, err := st.Load(b.Context(), layout)
	if err != nil {
		b.Fatal(err)
	}
	manyImg, err := st.Load(b.Context(), manyLayout)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("dir", func(b *testing.B) { benchRun(b, sandbox.New(sandbox.Dir(root)).WithMemory(64<<20), "/bin/true") })
	b.Run("image-warm", func(b *testing.B) { benchRun(b, sandbox.New(img).WithMemory(64<<20), "/bin/true") })
	b.Run("image-20-layers", func(b *testing.B) { benchRun(b, sandbox.New(manyImg).WithMemory(64<<20), "/bin/true") })
	b.Run("image-first-run", func(b *testing.B) {
		for b.Loop() {
			st, err := sandbox.OpenStore(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			img, err := st.Load(b.Context(), layout)
			if err != nil {
				b.Fatal(err)
			}
			res, err := sandbox.New(img).WithMemory(64<<20).Run(b.Context(), "/bin/true")
			if err != nil || res.ExitCode != 0 {
				b.Fatal(err, res)
			}
		}
	})
}
