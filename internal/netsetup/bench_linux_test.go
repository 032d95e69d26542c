package netsetup

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkAttach measures what bridge networking adds to a sandbox start and
// end, on an existing bridge: newNetns, Attach, closing the namespace and
// Detach. "started" closes the namespace before Detach, as after a sandbox
// ran (the kernel removes the veth with the namespace); "unstarted" calls
// Detach first, as after a failed start (Detach deletes the veth). The
// metrics split the time: netns-ns/op (newNetns), attach-ns/op,
// detach-ns/op (including the close).
//
// Lease files live under b.TempDir(); set TMPDIR to the filesystem of the
// real StateDir (/run) for representative numbers.
func BenchmarkAttach(b *testing.B) {
	for _, bc := range []struct {
		name    string
		started bool
	}{{"started", true}, {"unstarted", false}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := testConfig(b)
			ctx := context.Background()
			w, err := attachNetns(ctx, cfg, newNetns(b)) // creates the bridge and table
			require.NoError(b, err)
			b.Cleanup(func() { _ = w.Detach(ctx) })
			var mk, attach, detach time.Duration
			for b.Loop() {
				t0 := time.Now()
				ns, err := makeNetns()
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				a, err := attachNetns(ctx, cfg, ns)
				if err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				if bc.started {
					ns.Close()
				}
				if err := a.Detach(ctx); err != nil {
					b.Fatal(err)
				}
				if !bc.started {
					ns.Close()
				}
				t3 := time.Now()
				mk += t1.Sub(t0)
				attach += t2.Sub(t1)
				detach += t3.Sub(t2)
			}
			n := float64(b.N)
			b.ReportMetric(float64(mk.Nanoseconds())/n, "netns-ns/op")
			b.ReportMetric(float64(attach.Nanoseconds())/n, "attach-ns/op")
			b.ReportMetric(float64(detach.Nanoseconds())/n, "detach-ns/op")
		})
	}
}
