package sandbox_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// quantile returns the q-quantile of d (sorted in place), in ns.
func quantile(d []time.Duration, q float64) float64 {
	slices.Sort(d)
	return float64(d[min(len(d)-1, int(q*float64(len(d))))])
}

// BenchmarkPool compares, in one loop, a cold Run of true, a pool.Run of
// true in a fresh prepared sandbox of the same definition, and an Exec of
// true into a running idle sandbox (what a pool of idle instances would
// pay per run): medians and p90s.
func BenchmarkPool(b *testing.B) {
	testutil.RequireRoot(b)
	sb := sandbox.New(sandbox.Dir(testutil.Rootfs(b))).WithMemory(64 << 20)
	p, err := sandbox.NewPool(sb, 4)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	in, err := sb.Start(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	var run, pool, exec []time.Duration
	for b.Loop() {
		t := time.Now()
		if res, err := sb.Run(b.Context(), "/bin/true"); err != nil || res.ExitCode != 0 {
			b.Fatal(err, res)
		}
		run = append(run, time.Since(t))
		t = time.Now()
		if res, err := p.Run(b.Context(), "/bin/true"); err != nil || res.ExitCode != 0 {
			b.Fatal(err, res)
		}
		pool = append(pool, time.Since(t))
		t = time.Now()
		if res, err := in.Exec(b.Context(), "/bin/true"); err != nil || res.ExitCode != 0 {
			b.Fatal(err, res)
		}
		exec = append(exec, time.Since(t))
	}
	r, r90 := quantile(run, 0.5), quantile(run, 0.9)
	m, m90 := quantile(pool, 0.5), quantile(pool, 0.9)
	e := quantile(exec, 0.5)
	b.ReportMetric(e/r, "exec/run")
	b.ReportMetric(r, "run-ns")
	b.ReportMetric(r90, "run-p90-ns")
	b.ReportMetric(m, "pool-ns")
	b.ReportMetric(m90, "pool-p90-ns")
	b.ReportMetric(m/r, "pool/run")
	b.ReportMetric(m90/r, "pool-p90/run")
	st := p.Stats()
	b.ReportMetric(float64(st.StartedCold), "cold")
}

// BenchmarkPoolThroughput measures fresh sandboxed runs of true per
// second with two workers, from a pool (size 8) and cold.
func BenchmarkPoolThroughput(b *testing.B) {
	testutil.RequireRoot(b)
	sb := sandbox.New(sandbox.Dir(testutil.Rootfs(b))).WithMemory(64 << 20)
	const workers = 2
	measure := func(b *testing.B, run func() error) {
		var wg sync.WaitGroup
		n := b.N
		next := make(chan struct{}, n)
		for range n {
			next <- struct{}{}
		}
		close(next)
		b.ResetTimer()
		t := time.Now()
		for range workers {
			wg.Go(func() {
				for range next {
					if err := run(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(n)/time.Since(t).Seconds(), "runs/s")
	}
	b.Run("pool", func(b *testing.B) {
		p, err := sandbox.NewPool(sb, 8)
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		time.Sleep(100 * time.Millisecond) // filled
		measure(b, func() error {
			res, err := p.Run(b.Context(), "/bin/true")
			if err == nil && res.ExitCode != 0 {
				b.Fatal(res)
			}
			return err
		})
		b.ReportMetric(float64(p.Stats().StartedCold), "cold")
	})
	b.Run("cold", func(b *testing.B) {
		measure(b, func() error {
			res, err := sb.Run(b.Context(), "/bin/true")
			if err == nil && res.ExitCode != 0 {
				b.Fatal(res)
			}
			return err
		})
	})
}
