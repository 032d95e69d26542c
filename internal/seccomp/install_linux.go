package seccomp

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Install sets no_new_privs and then loads filter into the calling process
// with seccomp(2) and SECCOMP_FILTER_FLAG_TSYNC, so that every thread of
// the process, and every process it later starts, is filtered. A filter
// cannot be removed; each later Install stacks another one, and the kernel
// applies the strictest result.
//
// filter is usually the result of [Profile.Compile] for runtime.GOARCH.
// An empty filter installs nothing and returns nil. Errors name the failed
// operation and wrap its errno, e.g. EINVAL for a malformed program, or
// ESRCH when another thread could not be synchronized.
//
// Install is for a normal Go process (tests, a re-executed init). A raw
// forked child should instead call prctl(PR_SET_NO_NEW_PRIVS) and
// prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &unix.SockFprog{...}) itself.
func Install(filter []Instruction) error {
	if len(filter) == 0 {
		return nil
	}
	if len(filter) > MaxInstructions {
		return &ProfileError{Field: "filter", Reason: fmt.Sprintf(
			"%d BPF instructions, more than the kernel's limit of %d", len(filter), MaxInstructions)}
	}
	// no_new_privs is a per-thread attribute: set it on the thread that
	// then installs the filter; TSYNC copies both to the other threads.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	if err := setFilter(filter, unix.SECCOMP_FILTER_FLAG_TSYNC); err != nil {
		return fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER, TSYNC): %w", err)
	}
	return nil
}
