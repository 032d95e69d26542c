//go:build !linux

package seccomp

// Instruction is one classic BPF instruction (struct sock_filter). On Linux
// it is unix.SockFilter; elsewhere it is this struct with the same layout,
// so that filters can be compiled and inspected on any host.
type Instruction struct {
	Code uint16
	Jt   uint8
	Jf   uint8
	K    uint32
}
