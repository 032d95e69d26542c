//go:build linux && (amd64 || arm64)

package spawn

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// vforkFlags share the parent's memory with the child until it execs, so
// starting a sandbox costs no copy of the parent's page tables, however big
// its heap.
const vforkFlags = unix.CLONE_VM | unix.CLONE_VFORK

// rawVfork is implemented in assembly (vfork_linux_$GOARCH.s) and must be
// called directly from forkAndRun: a Go wrapper's frame would be clobbered
// by the child before the parent returns through it.
func rawVfork(trap, a1, a2, a3 uintptr) (r1 uintptr, err syscall.Errno)
