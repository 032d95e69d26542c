# The init: PID 1 of a sandbox, and the exec stub's caller side.
# On entry: [rsp] argc, then argv (argv[0] the path to execute), NULL, envp.
# Descriptor 3: the starter's error pipe; 4: the pipe the program's wait
# status goes to. Descriptor 5, when open, is a terminal: the program leads
# a session of its own with it as its controlling terminal (an exec
# starts the init outside the sandbox's PID namespace, where the session
# it leads would be out of the program's sight). An empty argv[0] means no program: the init idles,
# reaping, until it is killed; but argv ["", ""] means a request: the
# init reports {0xfffffffd, 0} on 3, waits for a byte on 6, reads from 7
# a stack image (argc, argv, NULL, envp, NULL, strings) whose pointers
# are into the request area at 0x10000000, and goes on as if it had been
# started with it, once it wrote {0xfffffffc, 0} on 3. Assembled by
# TestMachineCodeMatchesTheSources.
# Once the program ended, the init exits with its exit code, or 128 plus
# the signal that killed it; the program gets SIGKILL if the init dies.
.intel_syntax noprefix
.globl _start
_start:
	mov r12, rsp                # argc, argv, envp
	xor r14d, r14d              # 1 once a request is read
	sub rsp, 256                # [rsp] sigset, [rsp+8] status, [rsp+16] siginfo
	mov qword ptr [rsp], -1
	xor edi, edi                # rt_sigprocmask(SIG_BLOCK, all, NULL, 8)
	mov rsi, rsp
	xor edx, edx
	mov r10d, 8
	mov eax, 14
	syscall
	mov rdi, [r12+8]            # argv[0] empty: no program
	cmp byte ptr [rdi], 0
	je noprogram
program:
	mov eax, 57                 # fork
	syscall
	test rax, rax
	jnz parent
	mov edi, 1                  # child: prctl(PR_SET_PDEATHSIG, SIGKILL): it
	mov esi, 9                  # dies with the init, whom a kill of the command
	mov eax, 157                # by its PID reaches
	syscall
	mov edi, 5                  # fcntl(5, F_GETFD): a terminal at 5?
	mov esi, 1
	mov eax, 72
	syscall
	test rax, rax
	js notty
	mov eax, 112                # setsid: a session of its own, in the sandbox
	syscall
	xor edi, edi                # ioctl(0, TIOCSCTTY, 0): its terminal
	mov esi, 0x540e
	xor edx, edx
	mov eax, 16
	syscall
	mov edi, 5                  # close(5)
	mov eax, 3
	syscall
notty:
	mov qword ptr [rsp], 0      # rt_sigprocmask(SIG_SETMASK, none, NULL, 8)
	mov edi, 2
	mov rsi, rsp
	xor edx, edx
	mov r10d, 8
	mov eax, 14
	syscall
	mov edi, 4                  # close(4): the status pipe is the init's
	mov eax, 3
	syscall
	mov edi, 3                  # fcntl(3, F_SETFD, FD_CLOEXEC)
	mov esi, 2
	mov edx, 1
	mov eax, 72
	syscall
	mov rdi, [r12+8]            # execve(argv[0], argv+1, envp)
	lea rsi, [r12+16]
	mov rax, [r12]
	lea rdx, [r12+rax*8+16]
	mov eax, 59
	syscall
execfail:
	neg eax                     # failed: write {0xffffffff, errno} to 3
	mov dword ptr [rsp], -1
	mov [rsp+4], eax
	mov edi, 3
	mov rsi, rsp
	mov edx, 8
	mov eax, 1
	syscall
	mov edi, 127                # exit_group(127)
	mov eax, 231
	syscall
parent:
	mov r13, rax                # the program's pid
	mov edi, 3                  # close(3): only the program reports there
	mov eax, 3
	syscall
	test r14, r14               # a request's init closes 0, 1 and 2: the
	jz wait                     # output ends with the program's, not with it
	xor edi, edi
	mov eax, 3
	syscall
	mov edi, 1
	mov eax, 3
	syscall
	mov edi, 2
	mov eax, 3
	syscall
wait:
	mov rdi, rsp                # rt_sigtimedwait(all, &info, NULL, 8)
	lea rsi, [rsp+16]
	xor edx, edx
	mov r10d, 8
	mov eax, 128
	syscall
	cmp eax, 17                 # SIGCHLD
	je reap
	test eax, eax
	js wait                     # interrupted: again
	test r13, r13
	jz wait                     # idle: nobody to send it to
	mov edi, r13d               # any other signal: kill(program, sig)
	mov esi, eax
	mov eax, 62
	syscall
	jmp wait
reap:
	mov rdi, -1                 # wait4(-1, &status, WNOHANG, NULL)
	lea rsi, [rsp+8]
	mov edx, 1
	xor r10d, r10d
	mov eax, 61
	syscall
	test rax, rax
	jle wait                    # nothing more to reap for now
	cmp rax, r13
	jne reap                    # an orphan (or idle): reaped, next
	mov edi, 4                  # the program ended: write its status to 4
	lea rsi, [rsp+8]
	mov edx, 4
	mov eax, 1
	syscall
	mov edi, [rsp+8]            # exit_group(the program's exit code, or 128
	and edi, 0x7f               # + the signal that killed it): the status of
	jz exited                   # a command whose pipe nobody reads
	add edi, 128
	jmp exit
exited:
	movzx edi, byte ptr [rsp+9]
exit:
	mov eax, 231
	syscall
noprogram:
	cmp qword ptr [r12], 2      # argv ["", ""]: a request
	jne idle
	mov rdi, [r12+16]
	cmp byte ptr [rdi], 0
	jne idle
	mov dword ptr [rsp+8], -3   # write {0xfffffffd, 0} to 3: waiting
	mov dword ptr [rsp+12], 0
	mov edi, 3
	lea rsi, [rsp+8]
	mov edx, 8
	mov eax, 1
	syscall
	mov edi, 6                  # read(6, &byte, 1): released
	lea rsi, [rsp+8]
	mov edx, 1
	xor eax, eax
	syscall
	cmp rax, 1
	jne requestfail
	mov edi, 0x10000000         # mmap(0x10000000, 256 KiB, RW, PRIVATE|ANON|FIXED_NOREPLACE)
	mov esi, 0x40000
	mov edx, 3
	mov r10d, 0x100022
	mov r8, -1
	xor r9d, r9d
	mov eax, 9
	syscall
	cmp rax, rdi
	jne requestfail
	mov r12, rax                # the request is the stack image from now on
	mov edi, 7                  # pread64(7, area, 256 KiB, 0)
	mov rsi, r12
	mov edx, 0x40000
	xor r10d, r10d
	mov eax, 17
	syscall
	test rax, rax
	jle requestfail
	mov dword ptr [rsp+8], -4   # write {0xfffffffc, 0} to 3: read
	mov dword ptr [rsp+12], 0
	mov edi, 3
	lea rsi, [rsp+8]
	mov edx, 8
	mov eax, 1
	syscall
	mov edi, 6                  # close(6) and close(7)
	mov eax, 3
	syscall
	mov edi, 7
	mov eax, 3
	syscall
	mov r14d, 1
	jmp program
requestfail:
	mov eax, -5                 # EIO: report it as a failed exec
	jmp execfail
idle:
	xor r13d, r13d              # no program: pid 0, nothing to forward or report
	mov edi, 3                  # close(3) and close(4)
	mov eax, 3
	syscall
	mov edi, 4
	mov eax, 3
	syscall
	jmp wait
