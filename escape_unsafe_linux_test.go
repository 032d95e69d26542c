package sandbox_test

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The part of the io_uring ABI (linux/io_uring.h) the escape helper uses:
// one ring of one entry and one IORING_OP_SOCKET request. x/sys/unix has
// the system call numbers only.
const (
	ioringOffSQRing      = 0          // mmap offset of the submission ring
	ioringOffCQRing      = 0x8000000  // of the completion ring
	ioringOffSQEs        = 0x10000000 // of the submission entries
	ioringOpSocket       = 45         // IORING_OP_SOCKET, Linux 5.19
	ioringEnterGetEvents = 1          // IORING_ENTER_GETEVENTS
	ioringParamsSize     = 120        // struct io_uring_params
	ioringSQESize        = 64         // struct io_uring_sqe
	ioringCQESize        = 16         // struct io_uring_cqe
)

// ioUringSetup makes a ring of one entry. It returns the ring's descriptor
// and the io_uring_params the kernel filled in.
func ioUringSetup() (int, []byte, error) {
	params := make([]byte, ioringParamsSize)
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])), 0)
	if e != 0 {
		return -1, nil, e
	}
	return int(fd), params, nil
}

// ioUringSocket asks for a socket of family through an io_uring ring and
// returns the outcome as tryEscape prints it. The kernel runs the request
// itself, where no seccomp filter sees it: only the ring's own system calls
// pass the filter.
func ioUringSocket(family int) string {
	fd, p, err := ioUringSetup()
	if err != nil {
		return "setup: " + outcome(err)
	}
	defer unix.Close(fd)
	ne := binary.NativeEndian
	sqEntries, cqEntries := int(ne.Uint32(p[0:])), int(ne.Uint32(p[4:]))
	sqOff, cqOff := p[40:80], p[80:120] // io_sqring_offsets, io_cqring_offsets
	rw, shared := unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE
	sq, err := unix.Mmap(fd, ioringOffSQRing, int(ne.Uint32(sqOff[24:]))+4*sqEntries, rw, shared)
	if err != nil {
		return "mmap: " + outcome(err)
	}
	defer unix.Munmap(sq)
	cq, err := unix.Mmap(fd, ioringOffCQRing, int(ne.Uint32(cqOff[20:]))+ioringCQESize*cqEntries, rw, shared)
	if err != nil {
		return "mmap: " + outcome(err)
	}
	defer unix.Munmap(cq)
	sqes, err := unix.Mmap(fd, ioringOffSQEs, ioringSQESize*sqEntries, rw, shared)
	if err != nil {
		return "mmap: " + outcome(err)
	}
	defer unix.Munmap(sqes)

	// The request in entry 0: opcode, then the domain in fd, the type in
	// off and the protocol (0) in len, as socket(2) takes them.
	clear(sqes[:ioringSQESize])
	sqes[0] = ioringOpSocket
	ne.PutUint32(sqes[4:], uint32(family))
	ne.PutUint64(sqes[8:], uint64(socketType(family)))
	tail, mask := ne.Uint32(sq[ne.Uint32(sqOff[4:]):]), ne.Uint32(sq[ne.Uint32(sqOff[8:]):])
	ne.PutUint32(sq[ne.Uint32(sqOff[24:])+4*(tail&mask):], 0)
	ne.PutUint32(sq[ne.Uint32(sqOff[4:]):], tail+1)
	// The system call orders the plain stores above before the kernel
	// reads the ring, and the completion after it returns.
	if _, _, e := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), 1, 1, ioringEnterGetEvents, 0, 0); e != 0 {
		return "enter: " + outcome(e)
	}
	head, cmask := ne.Uint32(cq[ne.Uint32(cqOff[0:]):]), ne.Uint32(cq[ne.Uint32(cqOff[8:]):])
	cqe := cq[ne.Uint32(cqOff[20:])+ioringCQESize*(head&cmask):]
	res := int32(ne.Uint32(cqe[8:]))
	if res < 0 {
		return outcome(unix.Errno(-res))
	}
	unix.Close(int(res))
	return "ok"
}

// socketType is the socket type a family supports: AF_ALG sockets are
// SOCK_SEQPACKET, the others tried here SOCK_STREAM.
func socketType(family int) int {
	if family == unix.AF_ALG {
		return unix.SOCK_SEQPACKET
	}
	return unix.SOCK_STREAM
}
