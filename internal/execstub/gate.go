package execstub

// GateFD is the descriptor on which the gated stub waits for its start:
// above 4 (the init's status) and 5 (the init's controlling terminal).
const GateFD = 6

// gateCode is the gated stub per GOARCH, for a sandbox that outlives its
// creator and runs its payload only when told (an OCI container between
// create and start): prctl(PR_SET_PDEATHSIG, 0), so that it no longer
// dies with the thread that cloned it; close(3), which tells its starter
// that the sandbox is ready (the starter waits for descriptor 3 to close
// at the exec); a blocking read of one byte from descriptor GateFD, and
// exit status 127 if it gets none; close(GateFD); then execve(argv[0],
// argv+1, envp), and exit status 127 if that fails (no one is left to
// tell).
var gateCode = map[string][]byte{
	"amd64": {
		0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi, 1               PR_SET_PDEATHSIG
		0x31, 0xf6, //                   xor esi, esi             no signal
		0xb8, 0x9d, 0x00, 0x00, 0x00, // mov eax, 157             prctl
		0x0f, 0x05, //                   syscall
		0xbf, 0x03, 0x00, 0x00, 0x00, // mov edi, 3
		0xb8, 0x03, 0x00, 0x00, 0x00, // mov eax, 3               close
		0x0f, 0x05, //                   syscall
		0xbf, GateFD, 0x00, 0x00, 0x00, // mov edi, GateFD
		0x48, 0x8d, 0x74, 0x24, 0xf8, // lea rsi, [rsp-8]
		0xba, 0x01, 0x00, 0x00, 0x00, // mov edx, 1
		0x31, 0xc0, //                   xor eax, eax             read
		0x0f, 0x05, //                   syscall
		0x83, 0xf8, 0x01, //             cmp eax, 1
		0x75, 0x26, //                   jne fail (+38)
		0xbf, GateFD, 0x00, 0x00, 0x00, // mov edi, GateFD
		0xb8, 0x03, 0x00, 0x00, 0x00, // mov eax, 3               close
		0x0f, 0x05, //                   syscall
		0x48, 0x8b, 0x7c, 0x24, 0x08, // mov rdi, [rsp+8]         path = argv[0]
		0x48, 0x8d, 0x74, 0x24, 0x10, // lea rsi, [rsp+16]        argv+1
		0x48, 0x8b, 0x04, 0x24, //       mov rax, [rsp]           argc
		0x48, 0x8d, 0x54, 0xc4, 0x10, // lea rdx, [rsp+rax*8+16]  envp
		0xb8, 0x3b, 0x00, 0x00, 0x00, // mov eax, 59              execve
		0x0f, 0x05, //                   syscall
		0xbf, 0x7f, 0x00, 0x00, 0x00, // fail: mov edi, 127
		0xb8, 0xe7, 0x00, 0x00, 0x00, // mov eax, 231             exit_group
		0x0f, 0x05, //                   syscall
	},
}

// GateELF returns the gated stub as an ELF executable for goarch; only
// amd64 has one yet.
func GateELF(goarch string) ([]byte, error) { return build(gateCode, goarch) }
