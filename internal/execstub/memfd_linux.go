package execstub

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Open writes the stub for this machine into a new memfd, seals it against
// any change, and returns the descriptor (close-on-exec). The caller closes
// it; a process executing it keeps its own reference.
func Open() (int, error) {
	elf, err := ELF(runtime.GOARCH)
	if err != nil {
		return -1, err
	}
	return openSealed(elf)
}

// OpenInit is Open for the init (see InitELF).
func OpenInit() (int, error) {
	elf, err := InitELF(runtime.GOARCH)
	if err != nil {
		return -1, err
	}
	return openSealed(elf)
}

// MinFD is the lowest descriptor a stub is given: the child's program
// moves descriptors to numbers below it before it executes the stub.
const MinFD = 10

// openSealed returns a sealed, close-on-exec memfd holding elf, at a
// descriptor of MinFD or more.
func openSealed(elf []byte) (int, error) {
	const flags = unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate("sandboxkit-exec", flags|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		// Kernels before 6.3 know no MFD_EXEC; memfds are executable there.
		fd, err = unix.MemfdCreate("sandboxkit-exec", flags)
	}
	if err != nil {
		return -1, fmt.Errorf("memfd_create: %w", err)
	}
	if _, err := unix.Write(fd, elf); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("write stub: %w", err)
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("seal stub: %w", err)
	}
	// The child sets up descriptors 0 to 9 (stdio, the status pipe at
	// 4, the terminal at 5, a gate or a request at 6 and 7, the error
	// pipe at 3) before it executes the stub: a stub below 10, which the
	// lowest free number may be, would be overwritten first (execveat
	// then fails with EACCES on what replaced it).
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, MinFD)
	unix.Close(fd)
	if err != nil {
		return -1, fmt.Errorf("move stub above %d: %w", MinFD, err)
	}
	return high, nil
}
