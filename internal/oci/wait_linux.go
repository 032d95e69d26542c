package oci

import (
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// WaitExec waits, up to timeout, until the process pid (which started at
// start) no longer runs the gated exec stub: it has executed its program,
// or ended.
//
// It polls every 50µs with nanosleep(2) itself: the Go runtime's timers
// round a time.Sleep that short up to a millisecond here, which had made
// every start a millisecond longer than the exec.
func WaitExec(pid int, start uint64, timeout time.Duration) {
	exe := "/proc/" + strconv.Itoa(pid) + "/exe"
	pause := unix.NsecToTimespec((50 * time.Microsecond).Nanoseconds())
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); unix.Nanosleep(&pause, nil) {
		target, err := os.Readlink(exe)
		if err != nil || !strings.HasPrefix(target, "/memfd:") || !ProcessAlive(pid, start) {
			return
		}
	}
}
