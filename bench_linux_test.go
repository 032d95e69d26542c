package sandbox_test

import (
	"testing"
	"time"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// benchRun runs argv in sb once per iteration and fails on any error or a
// non-zero exit.
func benchRun(b *testing.B, sb *sandbox.Sandbox, argv ...string) {
	b.Helper()
	for b.Loop() {
		res, err := sb.Run(b.Context(), argv...)
		if err != nil {
			b.Fatal(err)
		}
		if res.ExitCode != 0 {
			b.Fatalf("exit %d: %s", res.ExitCode, res.Stderr)
		}
	}
}

// BenchmarkRun measures a cold Run of true: a new cgroup, namespaces,
// overlay root and hardening, the exec, and the whole teardown.
func BenchmarkRun(b *testing.B) {
	testutil.RequireRoot(b)
	root := testutil.Rootfs(b)
	b.Run("busybox", func(b *testing.B) {
		benchRun(b, sandbox.New(sandbox.Dir(root)).WithMemory(64<<20), "/bin/true")
	})
	b.Run("busybox-new-each-run", func(b *testing.B) {
		// A service that builds its definition per request.
		for b.Loop() {
			res, err := sandbox.New(sandbox.Dir(root)).WithMemory(64<<20).Run(b.Context(), "/bin/true")
			if err != nil || res.ExitCode != 0 {
				b.Fatal(err, res)
			}
		}
	})
	b.Run("busybox-limits", func(b *testing.B) {
		benchRun(b, sandbox.New(sandbox.Dir(root)).WithMemory(64<<20).WithCPU(1).WithPids(64), "/bin/true")
	})
	b.Run("hostroot", func(b *testing.B) {
		benchRun(b, sandbox.New(sandbox.HostRoot()).WithMemory(64<<20), "/bin/true")
	})
	b.Run("host-network", func(b *testing.B) {
		benchRun(b, sandbox.New(sandbox.Dir(root)).WithMemory(64<<20).WithNetwork(sandbox.HostNetwork()), "/bin/true")
	})
}

// BenchmarkRunParallel measures throughput with one Run per core at once.
func BenchmarkRunParallel(b *testing.B) {
	testutil.RequireRoot(b)
	sb := sandbox.New(sandbox.Dir(testutil.Rootfs(b))).WithMemory(64 << 20)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := sb.Run(b.Context(), "/bin/true")
			if err != nil || res.ExitCode != 0 {
				b.Fatal(err, res)
			}
		}
	})
}

// BenchmarkInstance compares, in one loop, a cold Run of true, an Exec of
// true into a running sandbox, and a Start of an idle sandbox with its
// Close.
func BenchmarkInstance(b *testing.B) {
	testutil.RequireRoot(b)
	sb := sandbox.New(sandbox.Dir(testutil.Rootfs(b))).WithMemory(64 << 20)
	in, err := sb.Start(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	var run, exec, start []time.Duration
	for b.Loop() {
		t := time.Now()
		if res, err := sb.Run(b.Context(), "/bin/true"); err != nil || res.ExitCode != 0 {
			b.Fatal(err, res)
		}
		run = append(run, time.Since(t))
		t = time.Now()
		if res, err := in.Exec(b.Context(), "/bin/true"); err != nil || res.ExitCode != 0 {
			b.Fatal(err, res)
		}
		exec = append(exec, time.Since(t))
		t = time.Now()
		idle, err := sb.Start(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		start = append(start, time.Since(t))
		idle.Close()
	}
	r, e, s := quantile(run, 0.5), quantile(exec, 0.5), quantile(start, 0.5)
	b.ReportMetric(r, "run-ns")
	b.ReportMetric(e, "exec-ns")
	b.ReportMetric(s, "start-ns")
	b.ReportMetric(quantile(exec, 0.9), "exec-p90-ns")
	b.ReportMetric(quantile(start, 0.9), "start-p90-ns")
	b.ReportMetric(e/r, "exec/run")
	b.ReportMetric(s/r, "start/run")
}
