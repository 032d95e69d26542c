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
// here as machine code: execve(argv[0], argv+1, envp), and exit status 127
// if that fails. It has no dependencies and no loader.
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

// code is the stub's machine code per GOARCH. On entry the stack pointer
// points at argc, followed by argv[0..argc-1], NULL, then envp.
var code = map[string][]byte{
	"amd64": {
		0x48, 0x8b, 0x7c, 0x24, 0x08, // mov rdi, [rsp+8]         path = argv[0]
		0x48, 0x8d, 0x74, 0x24, 0x10, // lea rsi, [rsp+16]        argv+1
		0x48, 0x8b, 0x04, 0x24, //       mov rax, [rsp]           argc
		0x48, 0x8d, 0x54, 0xc4, 0x10, // lea rdx, [rsp+rax*8+16]  envp
		0xb8, 0x3b, 0x00, 0x00, 0x00, // mov eax, 59              execve
		0x0f, 0x05, //                   syscall
		0xbf, 0x7f, 0x00, 0x00, 0x00, // mov edi, 127
		0xb8, 0xe7, 0x00, 0x00, 0x00, // mov eax, 231             exit_group
		0x0f, 0x05, //                   syscall
	},
	"arm64": words(
		0xf94007e0, // ldr x0, [sp, #8]            path = argv[0]
		0x910043e1, // add x1, sp, #16             argv+1
		0xf94003e2, // ldr x2, [sp]                argc
		0x8b226fe2, // add x2, sp, x2, uxtx #3
		0x91004042, // add x2, x2, #16             envp
		0xd2801ba8, // mov x8, #221                execve
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
func ELF(goarch string) ([]byte, error) {
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
