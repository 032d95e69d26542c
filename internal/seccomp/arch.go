package seccomp

//go:generate go run gen_sysnum.go

// arch describes one architecture a filter can be compiled for.
type arch struct {
	name  string                           // GOARCH spelling
	audit uint32                           // AUDIT_ARCH_* value in seccomp_data.arch
	x32   bool                             // deny syscall numbers with the x32 bit set
	nr    func(name string) (uint32, bool) // system call table
}

// x32SyscallBit marks x32 system calls on x86_64 (__X32_SYSCALL_BIT).
const x32SyscallBit = 0x40000000

// lookupArch returns the architecture named goarch. Both supported
// architectures are little-endian, so the low 32 bits of each argument
// come first in seccomp_data.
func lookupArch(goarch string) (arch, bool) {
	switch goarch {
	case "amd64":
		// AUDIT_ARCH_X86_64 = EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
		return arch{name: goarch, audit: 0xc000003e, x32: true, nr: sysnumX8664}, true
	case "arm64":
		// AUDIT_ARCH_AARCH64 = EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
		return arch{name: goarch, audit: 0xc00000b7, nr: sysnumAarch64}, true
	}
	return arch{}, false
}

// Arches returns the GOARCH names [Profile.Compile] supports.
func Arches() []string { return []string{"amd64", "arm64"} }

// knownSyscall reports whether name is a system call on any Linux
// architecture, so that a profile may list it even where it is missing.
func knownSyscall(name string) bool {
	if _, ok := sysnumX8664(name); ok {
		return true
	}
	if _, ok := sysnumAarch64(name); ok {
		return true
	}
	return otherArchSyscall(name)
}
