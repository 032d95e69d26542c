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

// TestProfileChildSteps prints where a sandbox's child spends its time,
// step by step (median over many runs), when SANDBOXKIT_PROFILE=1. It is a
// measuring tool for BENCHMARKS.md, not a check: timings never decide a
// test.
func TestProfileChildSteps(t *testing.T) {
	if os.Getenv("SANDBOXKIT_PROFILE") != "1" {
		t.Skip("a profiling tool; run with SANDBOXKIT_PROFILE=1")
	}
	testutil.RequireRoot(t)
	const runs = 300
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
	for range runs {
		if _, err := sb.Run(t.Context(), "/bin/true"); err != nil {
			t.Fatal(err)
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
