package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sandboxkit/sandbox/internal/oci"
	"golang.org/x/sys/unix"
)

// In its own PID namespace a sandbox ends with its first process, PID 1:
// the kernel kills every other process of the namespace. In a PID
// namespace joined by path (a pod's) that process is not the namespace's
// init, and what it leaves runs on. The sandbox keeps the same life: once
// its first process is reaped, every process left in its cgroup (the
// program's orphans, which the init, a subreaper, had until it ended, and
// Exec's programs) is killed too. Signals and Wait still address the
// first process, which is the sandbox's init by default (and no longer
// shielded by the kernel as a namespace's init is: the init blocks every
// signal and forwards them itself, so nothing changes for the program).

// joinsPID reports whether the plan's sandbox is born in a PID namespace
// that is not its own.
func (pl *plan) joinsPID() bool { return pl.oci.joinsNS(specs.PIDNamespace) }

// killLeft kills every process left in the cgroup, and returns once none
// is listed or after teardownTimeout.
func (r *running) killLeft() error {
	ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
	defer cancel()
	return killProcs(ctx, r.cg.procsFile())
}

// killProcs kills every process the cgroup.procs file lists until it
// lists none, or ctx ends. Each is killed through a pidfd taken while it
// is listed and found listed again after, so that a PID that was recycled
// meanwhile is never signalled.
func killProcs(ctx context.Context, file string) error {
	err := backoff(ctx, 100*time.Microsecond, 20*time.Millisecond, func() (bool, error) {
		pids, err := oci.ReadPIDs(file)
		if errors.Is(err, fs.ErrNotExist) {
			return true, nil // the cgroup is gone
		}
		if err != nil || len(pids) == 0 {
			return len(pids) == 0, err
		}
		fds := make(map[int]int, len(pids))
		for _, pid := range pids {
			if fd, err := unix.PidfdOpen(pid, 0); err == nil {
				fds[pid] = fd
			}
		}
		again, err := oci.ReadPIDs(file)
		for pid, fd := range fds {
			if err == nil && slices.Contains(again, pid) {
				unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) // one that ended meanwhile is no error
			}
			unix.Close(fd)
		}
		return false, err
	})
	if err != nil {
		return fmt.Errorf("kill the processes left in %s: %w", file, err)
	}
	return nil
}
