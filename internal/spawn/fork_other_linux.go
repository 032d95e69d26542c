//go:build linux && !amd64 && !arm64

package spawn

import "syscall"

// vforkFlags is empty where no vfork-safe clone is written in assembly: the
// child gets a copy of the parent's memory, which is slower for a large heap
// but equally correct.
const vforkFlags = 0

//go:nosplit
func rawVfork(trap, a1, a2, a3 uintptr) (uintptr, syscall.Errno) {
	r1, _, e := syscall.RawSyscall(trap, a1, a2, a3)
	return r1, e
}
