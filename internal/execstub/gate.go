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
	"arm64": words(
		0xd2800020, // mov x0, #1                  PR_SET_PDEATHSIG
		0xd2800001, // mov x1, #0                  no signal
		0xd28014e8, // mov x8, #167                prctl
		0xd4000001, // svc #0
		0xd2800060, // mov x0, #3
		0xd2800728, // mov x8, #57                 close
		0xd4000001, // svc #0
		0xd28000c0, // mov x0, #GateFD
		0xd10043e1, // sub x1, sp, #16
		0xd2800022, // mov x2, #1
		0xd28007e8, // mov x8, #63                 read
		0xd4000001, // svc #0
		0xf100041f, // cmp x0, #1
		0x54000161, // b.ne fail (+44)
		0xd28000c0, // mov x0, #GateFD
		0xd2800728, // mov x8, #57                 close
		0xd4000001, // svc #0
		0xf94007e0, // ldr x0, [sp, #8]            path = argv[0]
		0x910043e1, // add x1, sp, #16             argv+1
		0xf94003e2, // ldr x2, [sp]                argc
		0x8b226fe2, // add x2, sp, x2, lsl #3
		0x91004042, // add x2, x2, #16             envp
		0xd2801ba8, // mov x8, #221                execve
		0xd4000001, // svc #0
		0xd2800fe0, // fail: mov x0, #127
		0xd2800bc8, // mov x8, #94                 exit_group
		0xd4000001, // svc #0
	),
}

// GateELF returns the gated stub as an ELF executable for goarch ("amd64"
// or "arm64"). Its sources are testdata/gate_*.s.
func GateELF(goarch string) ([]byte, error) { return build(gateCode, goarch) }
