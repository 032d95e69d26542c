package sandbox

import (
	"slices"
	"testing"
	"time"

	"github.com/sandboxkit/sandbox/internal/testutil"
)

// interleave runs each of sbs once per iteration, in turn, so that a drift
// of the machine's speed hits every variant alike, and reports each
// variant's median as name-ns/run, its 90th percentile as name-p90-ns/run,
// plus the ratio of each median to the first.
// This machine's speed drifts by 10 to 20 percent between separate
// benchmark runs; interleaving is what makes a few percent visible.
func interleave(b *testing.B, names []string, sbs []*Sandbox) {
	b.Helper()
	times := make([][]time.Duration, len(sbs))
	for b.Loop() {
		for i, sb := range sbs {
			start := time.Now()
			res, err := sb.Run(b.Context(), "/bin/true")
			if err != nil || res.ExitCode != 0 {
				b.Fatal(names[i], err, res)
			}
			times[i] = append(times[i], time.Since(start))
		}
	}
	medians := make([]float64, len(sbs))
	for i, t := range times {
		slices.Sort(t)
		medians[i] = float64(t[len(t)/2])
		b.ReportMetric(medians[i], names[i]+"-ns/run")
		b.ReportMetric(float64(t[len(t)*9/10]), names[i]+"-p90-ns/run")
	}
	for i := 1; i < len(sbs); i++ {
		b.ReportMetric(medians[i]/medians[0], names[i]+"/"+names[0])
	}
}

// BenchmarkHardening compares a cold Run of true with the default
// hardening (seccomp, capabilities and no_new_privs, masked and read-only
// paths, rlimits) against the same Run with none of it. Both execute the
// payload through the exec stub; BenchmarkExec in internal/execstub prices
// that on its own.
func BenchmarkHardening(b *testing.B) {
	testutil.RequireRoot(b)
	bare := New(Dir(testutil.Rootfs(b))).WithMemory(64 << 20)
	hardened := bare.clone()
	bare.bare = true
	interleave(b, []string{"bare", "hardened"}, []*Sandbox{bare, hardened})
}

// BenchmarkNetwork compares a cold Run of true with no network (loopback
// only), with the host's, and with its own address on a bridge; then the
// same with a user namespace, loopback only and on the bridge.
func BenchmarkNetwork(b *testing.B) {
	testutil.RequireRoot(b)
	sb := New(Dir(testutil.Rootfs(b))).WithMemory(64 << 20)
	n := Bridge(BridgeName("sbxbench"))
	testutil.KeepIPForward(b)
	b.Cleanup(func() { RemoveBridge(b.Context(), n) })
	interleave(b, []string{"none", "host", "bridge", "publish", "userns", "userns-bridge"},
		[]*Sandbox{sb, sb.WithNetwork(HostNetwork()), sb.WithNetwork(n), sb.WithNetwork(n).WithPublish(0, 80),
			sb.WithUserNamespace(), sb.WithUserNamespace().WithNetwork(n)})
}

// BenchmarkInit compares a cold Run of true with the init as PID 1 (the
// default) against the program as PID 1 (WithInit(false)).
func BenchmarkInit(b *testing.B) {
	testutil.RequireRoot(b)
	sb := New(Dir(testutil.Rootfs(b))).WithMemory(64 << 20)
	interleave(b, []string{"no-init", "init", "userns-no-init", "userns-init"},
		[]*Sandbox{sb.WithInit(false), sb, sb.WithUserNamespace().WithInit(false), sb.WithUserNamespace()})
}
