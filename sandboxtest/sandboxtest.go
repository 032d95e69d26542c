// Package sandboxtest runs sandboxes from Go tests: one per test, closed
// when the test ends, skipped with the reason where the host cannot run
// sandboxes (and failed instead under CI=true, where a skipped isolation
// test hides a broken one).
//
//	func TestServer(t *testing.T) {
//		sb := sandbox.New(sandbox.HostRoot()).WithNetwork(net).WithPublish(0, 80)
//		in := sandboxtest.Start(t, sb, "busybox", "httpd", "-f", "-p", "80")
//		sandboxtest.WaitPort(t, in, 80)
//		// ... talk to 127.0.0.1:in.Ports()[0].HostPort ...
//	}
package sandboxtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/sandboxkit/sandbox"
)

// Timeout bounds each wait of this package.
const Timeout = 30 * time.Second

// Requirements skips tb unless the process can run sandboxes (root, on
// Linux); under CI=true it fails tb instead.
func Requirements(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	const reason = "running sandboxes needs root; run: sudo go test ./..."
	if os.Getenv("CI") == "true" {
		tb.Fatal("CI=true: " + reason)
	}
	tb.Skip(reason)
}

// Start starts argv (none: the sandbox idles) in a sandbox of sb, fails tb
// if it cannot, and closes the instance when tb ends.
func Start(tb testing.TB, sb *sandbox.Sandbox, argv ...string) *sandbox.Instance {
	tb.Helper()
	Requirements(tb)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	in, err := sb.Start(ctx, argv...)
	if err != nil {
		tb.Fatalf("start %v: %v", argv, err)
	}
	tb.Cleanup(func() {
		if err := in.Close(); err != nil {
			tb.Errorf("close the sandbox of %v: %v", argv, err)
		}
	})
	return in
}

// WaitPort waits until a process of in listens on TCP port, and fails tb
// if that does not happen within Timeout or the sandbox ends first.
func WaitPort(tb testing.TB, in *sandbox.Instance, port int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := in.WaitPort(ctx, port); err != nil {
		tb.Fatalf("wait for port %d: %v", port, err)
	}
}

// WaitReady waits until in meets every condition (see
// [sandbox.Instance.WaitReady]), and fails tb if that does not happen
// within Timeout or the sandbox ends first.
func WaitReady(tb testing.TB, in *sandbox.Instance, conds ...sandbox.Ready) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := in.WaitReady(ctx, conds...); err != nil {
		tb.Fatalf("wait until ready: %v", err)
	}
}

// Exec runs argv in in, fails tb unless it exits 0, and returns its
// standard output.
func Exec(tb testing.TB, in *sandbox.Instance, argv ...string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	res, err := in.Exec(ctx, argv...)
	if err != nil {
		tb.Fatalf("exec %v: %v", argv, err)
	}
	if res.ExitCode != 0 || res.Signal != 0 {
		tb.Fatalf("exec %v: %v: %s", argv, res, res.Stderr)
	}
	return string(res.Stdout)
}
