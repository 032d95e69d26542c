// The init for arm64: see init_amd64.s.
.globl _start
_start:
	mov x19, sp                 // argc, argv, envp
	mov x21, #0                 // 1 once a request is read
	sub sp, sp, #256            // [sp] sigset, [sp+8] status, [sp+16] siginfo
	mov x0, #-1
	str x0, [sp]
	mov x0, #0                  // rt_sigprocmask(SIG_BLOCK, all, NULL, 8)
	mov x1, sp
	mov x2, #0
	mov x3, #8
	mov x8, #135
	svc #0
	ldr x0, [x19, #8]           // argv[0] empty: no program
	ldrb w0, [x0]
	cbz w0, noprogram
program:
	mov x0, #17                 // clone(SIGCHLD, 0, 0, 0, 0): a fork
	mov x1, #0
	mov x2, #0
	mov x3, #0
	mov x4, #0
	mov x8, #220
	svc #0
	cbnz x0, parent
	mov x0, #1                  // child: prctl(PR_SET_PDEATHSIG, SIGKILL): it
	mov x1, #9                  // dies with the init, whom a kill of the command
	mov x8, #167                // by its PID reaches
	svc #0
	mov x0, #5                  // fcntl(5, F_GETFD): a terminal at 5?
	mov x1, #1
	mov x8, #25
	svc #0
	tbnz x0, #63, notty
	mov x8, #157                // setsid
	svc #0
	mov x0, #0                  // ioctl(0, TIOCSCTTY, 0)
	mov x1, #0x540e
	mov x2, #0
	mov x8, #29
	svc #0
	mov x0, #5                  // close(5)
	mov x8, #57
	svc #0
notty:
	str xzr, [sp]               // rt_sigprocmask(SIG_SETMASK, none, NULL, 8)
	mov x0, #2
	mov x1, sp
	mov x2, #0
	mov x3, #8
	mov x8, #135
	svc #0
	mov x0, #4                  // close(4)
	mov x8, #57
	svc #0
	mov x0, #3                  // fcntl(3, F_SETFD, FD_CLOEXEC)
	mov x1, #2
	mov x2, #1
	mov x8, #25
	svc #0
	ldr x0, [x19, #8]           // execve(argv[0], argv+1, envp)
	add x1, x19, #16
	ldr x2, [x19]
	add x2, x19, x2, lsl #3
	add x2, x2, #16
	mov x8, #221
	svc #0
execfail:
	neg w0, w0                  // failed: write {0xffffffff, errno} to 3
	mov w1, #-1
	str w1, [sp]
	str w0, [sp, #4]
	mov x0, #3
	mov x1, sp
	mov x2, #8
	mov x8, #64
	svc #0
	mov x0, #127                // exit_group(127)
	mov x8, #94
	svc #0
parent:
	mov x20, x0                 // the program's pid
	mov x0, #3                  // close(3)
	mov x8, #57
	svc #0
	cbz x21, wait               // a request's init closes 0, 1 and 2
	mov x0, #0
	mov x8, #57
	svc #0
	mov x0, #1
	mov x8, #57
	svc #0
	mov x0, #2
	mov x8, #57
	svc #0
wait:
	mov x0, sp                  // rt_sigtimedwait(all, &info, NULL, 8)
	add x1, sp, #16
	mov x2, #0
	mov x3, #8
	mov x8, #137
	svc #0
	cmp x0, #17                 // SIGCHLD
	b.eq reap
	tbnz x0, #63, wait          // interrupted: again
	cbz x20, wait               // idle: nobody to send it to
	mov x1, x0                  // any other signal: kill(program, sig)
	mov x0, x20
	mov x8, #129
	svc #0
	b wait
reap:
	mov x0, #-1                 // wait4(-1, &status, WNOHANG, NULL)
	add x1, sp, #8
	mov x2, #1
	mov x3, #0
	mov x8, #260
	svc #0
	cmp x0, #0
	b.le wait                   // nothing more to reap for now
	cmp x0, x20
	b.ne reap                   // an orphan: reaped, next
	mov x0, #4                  // the program ended: write its status to 4
	add x1, sp, #8
	mov x2, #4
	mov x8, #64
	svc #0
	ldr w1, [sp, #8]            // exit_group(the program's exit code, or 128
	ands w0, w1, #0x7f          // + the signal that killed it): the status of
	b.eq exited                 // a command whose pipe nobody reads
	add w0, w0, #128
	b exit
exited:
	ubfx w0, w1, #8, #8
exit:
	mov x8, #94
	svc #0
noprogram:
	ldr x0, [x19]               // argv ["", ""]: a request
	cmp x0, #2
	b.ne idle
	ldr x0, [x19, #16]
	ldrb w0, [x0]
	cbnz w0, idle
	mov w0, #-3                 // write {0xfffffffd, 0} to 3: waiting
	str w0, [sp, #8]
	str wzr, [sp, #12]
	mov x0, #3
	add x1, sp, #8
	mov x2, #8
	mov x8, #64
	svc #0
	mov x0, #6                  // read(6, &byte, 1): released
	add x1, sp, #8
	mov x2, #1
	mov x8, #63
	svc #0
	cmp x0, #1
	b.ne requestfail
	mov x0, #0x10000000         // mmap(0x10000000, 256 KiB, RW, PRIVATE|ANON|FIXED_NOREPLACE)
	mov x1, #0x40000
	mov x2, #3
	mov x3, #0x22
	movk x3, #0x10, lsl #16
	mov x4, #-1
	mov x5, #0
	mov x8, #222
	svc #0
	mov x1, #0x10000000
	cmp x0, x1
	b.ne requestfail
	mov x19, x0                 // the request is the stack image from now on
	mov x1, x0                  // pread64(7, area, 256 KiB, 0)
	mov x0, #7
	mov x2, #0x40000
	mov x3, #0
	mov x8, #67
	svc #0
	cmp x0, #0
	b.le requestfail
	mov w0, #-4                 // write {0xfffffffc, 0} to 3: read
	str w0, [sp, #8]
	str wzr, [sp, #12]
	mov x0, #3
	add x1, sp, #8
	mov x2, #8
	mov x8, #64
	svc #0
	mov x0, #6                  // close(6) and close(7)
	mov x8, #57
	svc #0
	mov x0, #7
	mov x8, #57
	svc #0
	mov x21, #1
	b program
requestfail:
	mov w0, #-5                 // EIO: report it as a failed exec
	b execfail
idle:
	mov x20, #0                 // no program: pid 0, nothing to forward or report
	mov x0, #3                  // close(3) and close(4)
	mov x8, #57
	svc #0
	mov x0, #4
	mov x8, #57
	svc #0
	b wait
