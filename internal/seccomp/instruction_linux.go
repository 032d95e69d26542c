package seccomp

import "golang.org/x/sys/unix"

// Instruction is one classic BPF instruction (struct sock_filter). On Linux
// it is unix.SockFilter, so a compiled program can be passed straight to
// prctl(PR_SET_SECCOMP) or seccomp(2) in a unix.SockFprog.
type Instruction = unix.SockFilter
