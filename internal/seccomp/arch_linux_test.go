package seccomp

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestArchTableMatchesUnix checks the generated table of the host's
// architecture against golang.org/x/sys/unix.
func TestArchTableMatchesUnix(t *testing.T) {
	a, ok := lookupArch(runtime.GOARCH)
	if !ok {
		t.Skipf("no seccomp table for %s", runtime.GOARCH)
	}
	tests := []struct {
		name string
		want uintptr
	}{
		{"read", unix.SYS_READ}, {"write", unix.SYS_WRITE}, {"openat", unix.SYS_OPENAT},
		{"newfstatat", unix.SYS_NEWFSTATAT}, {"clone", unix.SYS_CLONE}, {"clone3", unix.SYS_CLONE3},
		{"execve", unix.SYS_EXECVE}, {"exit_group", unix.SYS_EXIT_GROUP}, {"futex", unix.SYS_FUTEX},
		{"mmap", unix.SYS_MMAP}, {"mount", unix.SYS_MOUNT}, {"umount2", unix.SYS_UMOUNT2},
		{"unshare", unix.SYS_UNSHARE}, {"setns", unix.SYS_SETNS}, {"bpf", unix.SYS_BPF},
		{"keyctl", unix.SYS_KEYCTL}, {"personality", unix.SYS_PERSONALITY}, {"socket", unix.SYS_SOCKET},
		{"rt_sigreturn", unix.SYS_RT_SIGRETURN}, {"futex_waitv", unix.SYS_FUTEX_WAITV},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nr, ok := a.nr(tt.name)
			require.True(t, ok, "table for %s lacks %s", runtime.GOARCH, tt.name)
			assert.Equal(t, uint32(tt.want), nr, "number of %s on %s", tt.name, runtime.GOARCH)
		})
	}
}
