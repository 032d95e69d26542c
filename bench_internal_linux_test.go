package sandbox

import (
	"testing"

	"github.com/sandboxkit/sandbox/internal/testutil"
)

// BenchmarkHardening compares a cold Run of true with the default
// hardening (capabilities, no_new_privs, seccomp, masked paths, rlimits,
// exec stub) against the same Run with none of it.
func BenchmarkHardening(b *testing.B) {
	testutil.RequireRoot(b)
	root := testutil.Rootfs(b)
	hardened := New(Dir(root)).WithMemory(64 << 20)
	bare := hardened.clone()
	bare.bare = true
	for _, c := range []struct {
		name string
		sb   *Sandbox
	}{{"hardened", hardened}, {"bare", bare}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				res, err := c.sb.Run(b.Context(), "/bin/true")
				if err != nil || res.ExitCode != 0 {
					b.Fatal(err, res)
				}
			}
		})
	}
}
