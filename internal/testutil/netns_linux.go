package testutil

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// NewNetns returns a new, empty network namespace of the test's own,
// closed when tb ends (the namespace dies with its last reference).
func NewNetns(tb testing.TB) *os.File {
	tb.Helper()
	type made struct {
		f   *os.File
		err error
	}
	done := make(chan made, 1)
	go func() {
		// The thread unshares its namespace and, unless it gets back,
		// exits still locked, so that the runtime discards it.
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- made{nil, err}
			runtime.UnlockOSThread()
			return
		}
		defer own.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- made{nil, err}
			runtime.UnlockOSThread()
			return
		}
		f, err := os.Open("/proc/thread-self/ns/net")
		done <- made{f, err}
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	m := <-done
	if m.err != nil {
		tb.Fatalf("new network namespace: %v", m.err)
	}
	tb.Cleanup(func() { m.f.Close() })
	return m.f
}
