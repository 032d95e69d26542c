package sandbox_test

import (
	"slices"
	"testing"
	"time"

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
		many = append(many, layerOf(b, layerTar(b, entry{name: "l/" + string(rune('a'+i)), body: "x"})))
	}
	manyLayout := writeLayout(b, busyboxImage(b, v1.Config{}, many...))
	st, err := sandbox.OpenStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	img, err := st.Load(b.Context(), layout)
	if err != nil {
		b.Fatal(err)
	}
	manyImg, err := st.Load(b.Context(), manyLayout)
	if err != nil {
		b.Fatal(err)
	}
	// Interleaved, so that the machine's drift hits each variant alike:
	// the medians and the ratios to the Dir root are reported.
	b.Run("interleaved", func(b *testing.B) {
		variants := []struct {
			name string
			sb   *sandbox.Sandbox
		}{
			{"dir", sandbox.New(sandbox.Dir(root)).WithMemory(64 << 20)},
			{"image-warm", sandbox.New(img).WithMemory(64 << 20)},
			{"image-20-layers", sandbox.New(manyImg).WithMemory(64 << 20)},
		}
		times := make([][]time.Duration, len(variants))
		for b.Loop() {
			for i, v := range variants {
				start := time.Now()
				res, err := v.sb.Run(b.Context(), "/bin/true")
				if err != nil || res.ExitCode != 0 {
					b.Fatal(err, res)
				}
				times[i] = append(times[i], time.Since(start))
			}
		}
		dir := median(times[0])
		for i, v := range variants {
			m := median(times[i])
			b.ReportMetric(float64(m.Microseconds())/1000, v.name+"-ms")
			if i > 0 {
				b.ReportMetric(float64(m)/float64(dir), v.name+"/dir")
			}
		}
	})
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
			st.Close()
		}
	})
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
