// Package vmtest runs the cgroup v2 lane from go test: the privileged
// integration tests of the root package and of the OCI runtime, again,
// inside a qemu VM whose kernel has a pure cgroup v2 hierarchy. See
// README.md in this directory.
package vmtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sandboxkit/sandbox/internal/testutil"
)

// TestCgroupV2Lane boots the VM and runs the root package's and the OCI
// runtime's tests in it.
// It takes about 4 min on two cores without KVM, so outside CI it runs only
// when SANDBOXKIT_VMTEST=1; under CI=true it always runs.
func TestCgroupV2Lane(t *testing.T) {
	if os.Getenv("VMTEST") == "1" {
		t.Skip("already inside the VM")
	}
	if !testutil.InCI() && os.Getenv("SANDBOXKIT_VMTEST") != "1" {
		t.Skip("the cgroup v2 VM lane takes about 4 min; run it with SANDBOXKIT_VMTEST=1 go test ./vmtest/ (root)")
	}
	testutil.RequireRoot(t)
	// End the lane before go test's own timeout would kill this process
	// and orphan the script and its qemu: SIGTERM lets run.sh's exit trap
	// stop qemu and remove its work directory.
	ctx := t.Context()
	if deadline, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-30*time.Second))
		defer cancel()
	}
	script, err := filepath.Abs("run.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	cmd.Dir = ".."
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("vmtest/run.sh: %v (the VM's console is above)", err)
	}
}
