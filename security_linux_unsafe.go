//go:build linux

package sandbox

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/seccomp"
	"github.com/sandboxkit/sandbox/internal/spawn"
)

// addSeccomp appends the installation of filter. It keeps filter alive
// through the program.
func addSeccomp(p *spawn.Program, filter []seccomp.Instruction) {
	if len(filter) == 0 {
		return
	}
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&filter[0])), len(filter)*int(unsafe.Sizeof(filter[0])))
	prog := make([]byte, unsafe.Sizeof(unix.SockFprog{}))
	binary.NativeEndian.PutUint16(prog[0:], uint16(len(filter)))
	binary.NativeEndian.PutUint64(prog[unsafe.Offsetof(unix.SockFprog{}.Filter):], uint64(p.Bytes(raw)))
	p.Syscall(spawn.Step{Op: "seccomp", Path: "install filter"}, unix.SYS_SECCOMP,
		unix.SECCOMP_SET_MODE_FILTER, 0, p.Bytes(prog))
}
