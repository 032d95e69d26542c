// Package execstub builds the tiny program a sandbox's child executes last,
// so that the host's own binary is never what /proc/self/exe points to while
// the payload is being executed.
//
// The sandbox's child is a vfork of the host process: until it calls
// execve, /proc/self/exe is the host program. A payload named
// /proc/self/exe, or a script whose interpreter line says so, would make
// the kernel execute the host program inside the sandbox, where another
// sandboxed process could then open it through /proc/PID/exe and overwrite
// it on the host (the class of CVE-2019-5736). The child therefore first
// executes this stub from a sealed memfd; the stub executes the payload. By
// then /proc/self/exe is the sealed stub, which nobody can write.
//
// The stub is a static ELF executable of a few dozen instructions, written
// here as machine code: fcntl(3, F_SETFD, FD_CLOEXEC), execve(argv[0],
// argv+1, envp), and if that fails, a write to descriptor 3 of 8 bytes,
// 0xffffffff then the errno (native endian 32-bit words), and exit status
// 127. Descriptor 3, when open, is how its starter learns why the exec
// failed; it closes when the exec succeeds. It has no dependencies and no
// loader.
package execstub

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// loadAddr is where the stub's single segment is mapped.
const loadAddr = 0x400000

const (
	ehdrSize = 64
	phdrSize = 56
)

// ExecFailed is the first word of the record the stub writes to
// descriptor 3 when its execve fails; the errno follows.
const ExecFailed = 0xffffffff

// code is the stub's machine code per GOARCH. On entry the stack pointer
// points at argc, followed by argv[0..argc-1], NULL, then envp.
var code = map[string][]byte{
	"amd64": {
		0xbf, 0x03, 0x00, 0x00, 0x00, // mov edi, 3
		0xbe, 0x02, 0x00, 0x00, 0x00, // mov esi, 2               F_SETFD
		0xba, 0x01, 0x00, 0x00, 0x00, // mov edx, 1               FD_CLOEXEC
		0xb8, 0x48, 0x00, 0x00, 0x00, // mov eax, 72              fcntl
		0x0f, 0x05, //                   syscall
		0x48, 0x8b, 0x7c, 0x24, 0x08, // mov rdi, [rsp+8]         path = argv[0]
		0x48, 0x8d, 0x74, 0x24, 0x10, // lea rsi, [rsp+16]        argv+1
		0x48, 0x8b, 0x04, 0x24, //       mov rax, [rsp]           argc
		0x48, 0x8d, 0x54, 0xc4, 0x10, // lea rdx, [rsp+rax*8+16]  envp
		0xb8, 0x3b, 0x00, 0x00, 0x00, // mov eax, 59              execve
		0x0f, 0x05, //                   syscall
		0xf7, 0xd8, //                   neg eax                  errno
		0xc7, 0x44, 0x24, 0xf8, 0xff, 0xff, 0xff, 0xff, // mov dword [rsp-8], -1
		0x89, 0x44, 0x24, 0xfc, //       mov [rsp-4], eax
		0xbf, 0x03, 0x00, 0x00, 0x00, // mov edi, 3
		0x48, 0x8d, 0x74, 0x24, 0xf8, // lea rsi, [rsp-8]
		0xba, 0x08, 0x00, 0x00, 0x00, // mov edx, 8
		0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1               write
		0x0f, 0x05, //                   syscall
		0xbf, 0x7f, 0x00, 0x00, 0x00, // mov edi, 127
		0xb8, 0xe7, 0x00, 0x00, 0x00, // mov eax, 231             exit_group
		0x0f, 0x05, //                   syscall
	},
	"arm64": words(
		0xd2800060, // mov x0, #3
		0xd2800041, // mov x1, #2                  F_SETFD
		0xd2800022, // mov x2, #1                  FD_CLOEXEC
		0xd2800328, // mov x8, #25                 fcntl
		0xd4000001, // svc #0
		0xf94007e0, // ldr x0, [sp, #8]            path = argv[0]
		0x910043e1, // add x1, sp, #16             argv+1
		0xf94003e2, // ldr x2, [sp]                argc
		0x8b226fe2, // add x2, sp, x2, uxtx #3
		0x91004042, // add x2, x2, #16             envp
		0xd2801ba8, // mov x8, #221                execve
		0xd4000001, // svc #0
		0x4b0003e0, // neg w0, w0                  errno
		0xd10043ff, // sub sp, sp, #16
		0x12800001, // mov w1, #-1
		0xb90003e1, // str w1, [sp]
		0xb90007e0, // str w0, [sp, #4]
		0xd2800060, // mov x0, #3
		0x910003e1, // mov x1, sp
		0xd2800102, // mov x2, #8
		0xd2800808, // mov x8, #64                 write
		0xd4000001, // svc #0
		0xd2800fe0, // mov x0, #127
		0xd2800bc8, // mov x8, #94                 exit_group
		0xd4000001, // svc #0
	),
}

var machine = map[string]uint16{"amd64": 62, "arm64": 183} // EM_X86_64, EM_AARCH64

func words(ws ...uint32) []byte {
	b := make([]byte, 4*len(ws))
	for i, w := range ws {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
	return b
}

// ErrUnsupportedArch is returned by ELF for an architecture without a stub.
var ErrUnsupportedArch = errors.New("execstub: no stub for this architecture")

// ELF returns the stub as an ELF executable for goarch ("amd64" or
// "arm64").
func ELF(goarch string) ([]byte, error) { return build(code, goarch) }

// build wraps the machine code for goarch in an ELF executable.
func build(code map[string][]byte, goarch string) ([]byte, error) {
	c, ok := code[goarch]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedArch, goarch)
	}
	size := ehdrSize + phdrSize + len(c)
	b := make([]byte, size)
	le := binary.LittleEndian
	// ELF header.
	copy(b[0:], "\x7fELF")
	b[4] = 2                // ELFCLASS64
	b[5] = 1                // ELFDATA2LSB
	b[6] = 1                // EV_CURRENT
	le.PutUint16(b[16:], 2) // ET_EXEC
	le.PutUint16(b[18:], machine[goarch])
	le.PutUint32(b[20:], 1)                          // EV_CURRENT
	le.PutUint64(b[24:], loadAddr+ehdrSize+phdrSize) // e_entry
	le.PutUint64(b[32:], ehdrSize)                   // e_phoff
	le.PutUint16(b[52:], ehdrSize)                   // e_ehsize
	le.PutUint16(b[54:], phdrSize)                   // e_phentsize
	le.PutUint16(b[56:], 1)                          // e_phnum
	// Program header: one loadable, readable, executable segment holding
	// the whole file.
	ph := b[ehdrSize:]
	le.PutUint32(ph[0:], 1)         // PT_LOAD
	le.PutUint32(ph[4:], 5)         // PF_R|PF_X
	le.PutUint64(ph[8:], 0)         // p_offset
	le.PutUint64(ph[16:], loadAddr) // p_vaddr
	le.PutUint64(ph[24:], loadAddr) // p_paddr
	le.PutUint64(ph[32:], uint64(size))
	le.PutUint64(ph[40:], uint64(size))
	le.PutUint64(ph[48:], 0x1000) // p_align
	copy(b[ehdrSize+phdrSize:], c)
	return b, nil
}
