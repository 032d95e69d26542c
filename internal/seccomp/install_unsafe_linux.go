package seccomp

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setFilter calls seccomp(SECCOMP_SET_MODE_FILTER, flags, prog).
func setFilter(filter []Instruction, flags uintptr) error {
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&prog)))
	switch {
	case errno != 0:
		return errno
	case r != 0:
		// With TSYNC, a positive result is the ID of a thread that could
		// not be synchronized.
		return fmt.Errorf("thread %d could not be synchronized: %w", r, unix.ESRCH)
	}
	return nil
}
