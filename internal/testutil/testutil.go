// Package testutil holds the helpers the integration tests share: skip
// helpers that fail instead under CI, and fixtures built by the test.
package testutil

import (
	"os"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where a test that
// needs root or a kernel feature must fail rather than skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireRoot skips tb unless the process is root. Under CI it fails
// instead: CI runs as root, and a skipped isolation test hides a broken
// sandbox.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	skipOrFail(tb, "needs root; run: sudo go test ./...")
}

func skipOrFail(tb testing.TB, reason string) {
	tb.Helper()
	if InCI() {
		tb.Fatalf("CI=true: %s", reason)
	}
	tb.Skip(reason)
}

// SkipOrFail skips tb with reason, or fails it under CI.
func SkipOrFail(tb testing.TB, reason string) {
	tb.Helper()
	skipOrFail(tb, reason)
}
