// Package seccomp builds seccomp-bpf system call filters for sandboxed
// processes, without cgo or libseccomp.
//
// [Default] returns a profile equivalent to Docker's default one; a custom
// [Profile] lists allowed calls and conditional rules. [Profile.Compile]
// turns a profile into a classic BPF program for one architecture; the
// program checks the audit architecture first, then binary-searches the
// system call number. On Linux the program's [Instruction] is
// unix.SockFilter, ready for prctl(PR_SET_SECCOMP) in a forked child, and
// [Install] loads it into the calling process.
//
//	prog, err := seccomp.Default().Compile(runtime.GOARCH)
//	if err != nil {
//		return err
//	}
//	err = seccomp.Install(prog) // Linux only; irreversible
//
// # Requirements
//
// Linux 3.17 or later for seccomp(2) with TSYNC, 4.14 for
// SECCOMP_RET_KILL_PROCESS. Installing needs no privileges, because
// [Install] sets no_new_privs first. Compiling works on every OS.
//
// # Errors
//
// Compile returns *[UnknownSyscallError] for a misspelt call name,
// *[ProfileError] for an invalid profile and an error wrapping
// errors.ErrUnsupported for an architecture without a table.
//
// # Security
//
// A system call from a foreign ABI (i386 int 0x80 or x32 on amd64, arm32 on
// arm64) never reaches the rules: foreign architectures kill the process
// and x32 calls fail with EPERM, so a filter cannot be bypassed by
// switching ABI.
package seccomp
