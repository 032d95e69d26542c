package sandbox

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/sandboxkit/sandbox/internal/seccomp"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// BenchmarkChildSteps prints where a sandbox's child spends its time, step
// by step: the median and p99 of each step over b.N runs, as in
// BENCHMARKS.md. SANDBOXKIT_PROFILE_TINY_FILTER=1 swaps the seccomp filter
// for a three-instruction one, to price the filter's length.
//
//	go test -run XXX -bench ChildSteps -benchtime 300x
func BenchmarkChildSteps(b *testing.B) {
	testutil.RequireRoot(b)
	t := b
	sums := map[string][]int64{}
	var order []string
	sb := New(Dir(testutil.Rootfs(t))).WithMemory(64 << 20)
	if os.Getenv("SANDBOXKIT_PROFILE_TINY_FILTER") == "1" {
		sb = sb.WithSeccomp(&SeccompProfile{p: &seccomp.Profile{DefaultAction: seccomp.ActAllow}})
	}
	sb.trace = func(steps []string, ns []int64) {
		for i, st := range steps {
			if ns[i+1] == 0 || ns[i] == 0 {
				continue
			}
			key := fmt.Sprintf("%03d %s", i, st)
			if _, ok := sums[key]; !ok {
				order = append(order, key)
			}
			sums[key] = append(sums[key], ns[i+1]-ns[i])
		}
	}
	for b.Loop() {
		if _, err := sb.Run(b.Context(), "/bin/true"); err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(order)
	groups := map[string]int64{}
	var total int64
	for _, k := range order {
		d := sums[k]
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		med := d[len(d)/2]
		total += med
		op := strings.Fields(k)[1]
		groups[op] += med
		fmt.Printf("%-60s %7.1f us  p99 %7.1f us\n", k, float64(med)/1e3, float64(d[len(d)*99/100])/1e3)
	}
	fmt.Printf("total of medians: %.1f us\n", float64(total)/1e3)
	for op, ns := range groups {
		fmt.Printf("  %-20s %7.1f us\n", op, float64(ns)/1e3)
	}
}
