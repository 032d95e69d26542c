package seccomp

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"golang.org/x/sys/unix"
)

// TestOpcodesMatchUnix checks the portable BPF, seccomp and audit constants
// against golang.org/x/sys/unix.
func TestOpcodesMatchUnix(t *testing.T) {
	amd64, _ := lookupArch("amd64")
	arm64, _ := lookupArch("arm64")
	tests := []struct {
		name      string
		got, want uint32
	}{
		{"ld abs", opLdAbs, unix.BPF_LD | unix.BPF_W | unix.BPF_ABS},
		{"and k", opAndK, unix.BPF_ALU | unix.BPF_AND | unix.BPF_K},
		{"ja", opJa, unix.BPF_JMP | unix.BPF_JA},
		{"jeq k", opJeqK, unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K},
		{"jge k", opJgeK, unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K},
		{"jset k", opJsetK, unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K},
		{"ret k", opRetK, unix.BPF_RET | unix.BPF_K},
		{"kill process", retKillProcess, unix.SECCOMP_RET_KILL_PROCESS},
		{"trap", retTrap, unix.SECCOMP_RET_TRAP},
		{"errno", retErrno, unix.SECCOMP_RET_ERRNO},
		{"log", retLog, unix.SECCOMP_RET_LOG},
		{"allow", retAllow, unix.SECCOMP_RET_ALLOW},
		{"EPERM", errnoEPERM, uint32(unix.EPERM)},
		{"ENOSYS", errnoENOSYS, uint32(unix.ENOSYS)},
		{"AF_VSOCK", afVSOCK, unix.AF_VSOCK},
		{"AF_ALG", afALG, unix.AF_ALG},
		{"AF_MAX", afMax, unix.AF_MAX},
		{"namespace flags", namespaceFlags, unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
			unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP},
		{"audit arch x86_64", amd64.audit, unix.AUDIT_ARCH_X86_64},
		{"audit arch aarch64", arm64.audit, unix.AUDIT_ARCH_AARCH64},
		{"max instructions", MaxInstructions, unix.BPF_MAXINSNS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.got)
		})
	}
	assert.Equal(t, []uint64{unix.AF_DECnet, unix.AF_ECONET, unix.AF_ATMSVC, unix.AF_IRDA, unix.AF_WANPIPE,
		unix.AF_ISDN, unix.AF_CAIF, unix.AF_ALG, unix.AF_VSOCK}, deniedFamilies, "deniedFamilies, by name")
}
