// The gated stub for arm64: see gate_amd64.s. Assembled by
// TestGateMachineCodeMatchesTheSources.
.globl _start
_start:
	mov x0, #1                  // prctl(PR_SET_PDEATHSIG, 0): no signal
	mov x1, #0
	mov x8, #167
	svc #0
	mov x0, #3                  // close(3): the starter learns it is ready
	mov x8, #57
	svc #0
	mov x0, #6                  // read(GateFD, sp-16, 1): wait for the start
	sub x1, sp, #16
	mov x2, #1
	mov x8, #63
	svc #0
	cmp x0, #1
	b.ne fail                   // closed (or failed) without the byte
	mov x0, #6                  // close(GateFD)
	mov x8, #57
	svc #0
	ldr x0, [sp, #8]            // execve(argv[0], argv+1, envp)
	add x1, sp, #16
	ldr x2, [sp]                // argc
	add x2, sp, x2, lsl #3
	add x2, x2, #16             // envp
	mov x8, #221
	svc #0
fail:
	mov x0, #127                // exit_group(127)
	mov x8, #94
	svc #0
