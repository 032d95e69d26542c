# The gated stub: the last program of a sandbox whose payload runs only
# when its starter says so (an OCI container between create and start).
# On entry: [rsp] argc, then argv (argv[0] the path to execute), NULL, envp.
# Descriptor 3 is the starter's error pipe, whose close at this stub's
# start tells it the sandbox is ready; descriptor 6 (GateFD) is the gate:
# one byte read from it starts the payload, its close without one ends
# the stub with status 127. Assembled by
# TestGateMachineCodeMatchesTheSources.
.intel_syntax noprefix
.globl _start
_start:
	mov edi, 1                  # prctl(PR_SET_PDEATHSIG, 0): no signal
	xor esi, esi
	mov eax, 157
	syscall
	mov edi, 3                  # close(3): the starter learns it is ready
	mov eax, 3
	syscall
	mov edi, 6                  # read(GateFD, rsp-8, 1): wait for the start
	lea rsi, [rsp-8]
	mov edx, 1
	xor eax, eax
	syscall
	cmp eax, 1
	jne fail                    # closed (or failed) without the byte
	mov edi, 6                  # close(GateFD)
	mov eax, 3
	syscall
	mov rdi, [rsp+8]            # execve(argv[0], argv+1, envp)
	lea rsi, [rsp+16]
	mov rax, [rsp]              # argc
	lea rdx, [rsp+rax*8+16]     # envp
	mov eax, 59
	syscall
fail:
	mov edi, 127                # exit_group(127)
	mov eax, 231
	syscall
