package seccomp

// Linux error numbers, spelled out so that compiling a filter gives the same
// program on every host OS.
const (
	errnoEPERM  = 1
	errnoENOSYS = 38
)

// Argument values used by the default profile.
const (
	afALG   = 38 // AF_ALG
	afVSOCK = 40 // AF_VSOCK

	// afMax is AF_MAX of Linux 6.18, one past the highest address family.
	afMax = 46

	// namespaceFlags are the clone flags that create namespaces:
	// CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|
	// CLONE_NEWPID|CLONE_NEWNET.
	namespaceFlags = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 |
		0x10000000 | 0x20000000 | 0x40000000
)

// Default returns the profile Docker applies to a container that has no
// extra capabilities (moby's default seccomp profile, including the calls
// moby added for kernels up to 6.7): calls outside the allowlist fail with
// EPERM, clone may not create namespaces, clone3 fails with ENOSYS so that
// libcs fall back to clone, personality accepts only the values Docker
// allows, and socket refuses the address families Docker refuses (see
// deniedFamilies), AF_ALG and AF_VSOCK among them, with EPERM. ptrace,
// process_vm_readv and process_vm_writev are allowed, as Docker does on
// kernels 4.8 and later. io_uring_setup, io_uring_enter and
// io_uring_register are not allowed, as in Docker since 25.0: the kernel
// runs a ring's requests where no filter sees them, so a ring would undo
// the socket rule (IORING_OP_SOCKET) and every other argument check. A
// caller who needs io_uring adds the three names to Allow, and gives that
// up.
//
// It is stricter than Docker in three respects: adjtimex, clock_adjtime and
// name_to_handle_at are denied; the family checks look only at the low 32
// bits of socket's first argument, as the kernel does, so that upper bits
// cannot hide a refused family; and every family from AF_MAX of Linux 6.18
// (46) up is refused, not only those a newer Docker profile knows of.
// Everything that needs a capability Docker drops by default (mount,
// unshare, setns, bpf, perf_event_open, reboot, the module, keyring, swap
// and clock-setting calls, ...) is denied.
//
// Each call returns a new Profile that the caller may modify.
func Default() *Profile {
	rules := []Rule{
		{Names: []string{"clone"}, Action: ActAllow, Args: []Arg{
			{Index: 0, Op: OpMaskedEqual, Mask: namespaceFlags, Value: 0},
		}},
		{Names: []string{"clone3"}, Action: ActErrno, Errno: errnoENOSYS},
	}
	rules = append(rules, socketRules()...)
	rules = append(rules,
		personality(0x0),        // PER_LINUX
		personality(0x8),        // PER_LINUX32
		personality(0x20000),    // UNAME26
		personality(0x20008),    // UNAME26|PER_LINUX32
		personality(0xffffffff), // query the current persona
	)
	return &Profile{
		DefaultAction: ActErrno,
		DefaultErrno:  errnoEPERM,
		Allow:         defaultAllow(),
		Rules:         rules,
	}
}

// deniedFamilies are the address families below afMax that Docker's
// default profile refuses (moby/profiles, seccomp/default_linux.go):
// AF_ALG, the kernel's crypto API, which containers have no need of and
// whose algif_aead code let any user write to the page cache
// (CVE-2026-31431); AF_VSOCK, which by default reaches the host's virtual
// machines from every network namespace; and the families that current
// Linux no longer implements, though an older kernel such as 6.18 may.
var deniedFamilies = []uint64{
	12,      // AF_DECnet, removed in Linux 6.1
	19,      // AF_ECONET, removed in 3.5
	20,      // AF_ATMSVC, removed in 7.2
	23,      // AF_IRDA, removed in 4.17
	25,      // AF_WANPIPE, without code since before 2.6.12
	34,      // AF_ISDN, removed in 7.1
	37,      // AF_CAIF, removed in 7.1
	afALG,   // 38
	afVSOCK, // 40
}

// socketRules refuse deniedFamilies and every family from afMax up, and
// allow socket for the others. socket's family is an int: each check
// compares the low 32 bits only, so that setting upper bits can neither
// hide a refused family nor turn an allowed one into a refusal. socket is
// not in the allowlist; a family the rules do not allow gets the default
// action.
func socketRules() []Rule {
	family := func(mask, value uint64) []Arg {
		return []Arg{{Index: 0, Op: OpMaskedEqual, Mask: mask, Value: value}}
	}
	var rules []Rule
	for _, f := range deniedFamilies {
		rules = append(rules, Rule{Names: []string{"socket"}, Action: ActErrno, Errno: errnoEPERM, Args: family(0xffffffff, f)})
	}
	// 46 and 47, then 48 to 63; 64 and above fail the allow rule's mask.
	rules = append(rules,
		Rule{Names: []string{"socket"}, Action: ActErrno, Errno: errnoEPERM, Args: family(0xfffffffe, afMax)},
		Rule{Names: []string{"socket"}, Action: ActErrno, Errno: errnoEPERM, Args: family(0xfffffff0, 48)},
		Rule{Names: []string{"socket"}, Action: ActAllow, Args: family(0xffffffc0, 0)},
	)
	return rules
}

func personality(persona uint64) Rule {
	return Rule{Names: []string{"personality"}, Action: ActAllow, Args: []Arg{
		{Index: 0, Op: OpEqual, Value: persona},
	}}
}

// defaultAllow is Docker's unconditional allowlist. Names that do not exist
// on the architecture being compiled for (the 32-bit and other-arch calls)
// are skipped by Compile.
func defaultAllow() []string {
	return []string{
		"accept", "accept4", "access", "alarm", "bind", "brk",
		"cachestat", "capget", "capset", "chdir", "chmod", "chown", "chown32",
		"clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
		"clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
		"connect", "copy_file_range", "creat",
		"dup", "dup2", "dup3",
		"epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
		"epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old",
		"eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group",
		"faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
		"fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2",
		"fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync",
		"fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr",
		"fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync",
		"ftruncate", "ftruncate64", "futex", "futex_requeue", "futex_time64",
		"futex_wait", "futex_waitv", "futex_wake", "futimesat",
		"getcpu", "getcwd", "getdents", "getdents64",
		"getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
		"getgroups", "getgroups32", "getitimer", "getpeername", "getpgid",
		"getpgrp", "getpid", "getppid", "getpriority", "getrandom",
		"getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit",
		"get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt",
		"get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32",
		"getxattr",
		"inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch",
		"io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
		"io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup",
		"io_submit", "ipc", "kill",
		"landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
		"lchown", "lchown32", "lgetxattr", "link", "linkat", "listen",
		"listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek",
		"lsetxattr", "lstat", "lstat64",
		"madvise", "map_shadow_stack", "membarrier", "memfd_create",
		"memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat",
		"mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
		"mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
		"mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
		"mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync",
		"munlock", "munlockall", "munmap",
		"nanosleep", "newfstatat", "_newselect",
		"open", "openat", "openat2",
		"pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2",
		"pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll",
		"ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
		"process_mrelease", "pselect6", "pselect6_time64", "pwrite64",
		"pwritev", "pwritev2",
		"read", "readahead", "readlink", "readlinkat", "readv", "recv",
		"recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
		"remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
		"restart_syscall", "rmdir", "rseq",
		"rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
		"rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
		"rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
		"sched_getaffinity", "sched_getattr", "sched_getparam",
		"sched_get_priority_max", "sched_get_priority_min",
		"sched_getscheduler", "sched_rr_get_interval",
		"sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
		"sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
		"select", "semctl", "semget", "semop", "semtimedop",
		"semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg",
		"sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid",
		"setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32",
		"setitimer", "setpgid", "setpriority", "setregid", "setregid32",
		"setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid",
		"setreuid32", "setrlimit", "set_robust_list", "setsid", "setsockopt",
		"set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr",
		"shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack",
		"signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall",
		"socketpair", "splice", "stat", "stat64", "statfs", "statfs64",
		"statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
		"sysinfo",
		"tee", "tgkill", "time", "timer_create", "timer_delete",
		"timer_getoverrun", "timer_gettime", "timer_gettime64",
		"timer_settime", "timer_settime64", "timerfd_create",
		"timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
		"timerfd_settime64", "times", "tkill", "truncate", "truncate64",
		"ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime",
		"utimensat", "utimensat_time64", "utimes",
		"vfork", "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",

		// Allowed by Docker on kernels >= 4.8, where seccomp runs after
		// ptrace and a tracer can no longer bypass the filter.
		"process_vm_readv", "process_vm_writev", "ptrace",

		// Architecture-specific calls (each exists on few architectures).
		"arch_prctl", "modify_ldt", // x86
		"arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2",
		"breakpoint", "cacheflush", "set_tls", // arm
		"swapcontext",                                                     // ppc64le
		"s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr", // s390x
		"riscv_flush_icache", // riscv64
	}
}
