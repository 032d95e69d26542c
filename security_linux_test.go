package sandbox_test

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// escapeRoot returns a busybox root holding this test binary at /escape
// and a setuid-root copy at /escape-suid, to run escape attempts inside.
func escapeRoot(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	self, err := os.Executable()
	require.NoError(t, err)
	f, err := elf.Open(self)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			testutil.SkipOrFail(t, "the escape tests copy the test binary into a busybox root, so it must be static; run: CGO_ENABLED=0 go test")
		}
	}
	root := testutil.Rootfs(t)
	copyFile(t, self, filepath.Join(root, "escape"), 0o755)
	copyFile(t, self, filepath.Join(root, "escape-suid"), 0o4755)
	return root
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	in, err := os.Open(src)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
	require.NoError(t, os.Chmod(dst, mode))
}

// attempt runs one escape attempt in sb and returns its one-line outcome.
func attempt(t *testing.T, sb *sandbox.Sandbox, what string, args ...string) string {
	t.Helper()
	res, err := sb.WithEnv(escapeEnv+"="+what).Run(testCtx(t), append([]string{"/escape"}, args...)...)
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitCode, "escape helper %s: stderr %s", what, res.Stderr)
	return strings.TrimSpace(string(res.Stdout))
}

// masked returns what reading the masked file path gives in a sandbox:
// nothing, or ENOENT where the host's kernel lacks the file.
func masked(path string) string {
	if _, err := os.Stat(path); err != nil {
		return "ENOENT"
	}
	return "read 0 bytes"
}

// maskedDir returns what listing the masked directory path gives in a
// sandbox: no entries, or ENOENT where the host's kernel lacks it.
func maskedDir(path string) string {
	if _, err := os.Stat(path); err != nil {
		return "ENOENT"
	}
	return "0 entries"
}

// readOnly returns what writing the read-only file path gives in a
// sandbox: EROFS, or ENOENT where the host's kernel lacks the file.
func readOnly(path string) string {
	if _, err := os.Stat(path); err != nil {
		return "ENOENT"
	}
	return "EROFS"
}

// rootDevice returns the device number of the host's root file system.
func rootDevice(t *testing.T) uint64 {
	var st unix.Stat_t
	require.NoError(t, unix.Stat("/", &st))
	return st.Dev
}

// TestEscapeSuite tries, from inside a sandbox with the defaults, each way
// out that SECURITY.md says is closed, and asserts the exact failure.
func TestEscapeSuite(t *testing.T) {
	root := escapeRoot(t)
	sb := sandbox.New(sandbox.Dir(root))
	hostPID := strconv.Itoa(os.Getpid())
	tests := []struct {
		name    string
		attempt string
		args    []string
		want    string
	}{
		{"mount a file system", "mount", []string{"/tmp"}, "EPERM"},
		{"unmount /proc", "umount", nil, "EPERM"},
		{"unshare a mount namespace", "unshare-mount", nil, "EPERM"},
		{"unshare a user namespace", "unshare-user", nil, "EPERM"},
		{"setns into a namespace", "setns", nil, "EPERM"},
		{"ptrace a host process", "ptrace", []string{hostPID}, "ESRCH"},
		{"signal a host process", "kill", []string{hostPID}, "ESRCH"},
		{"read /proc/kcore", "read", []string{"/proc/kcore"}, masked("/proc/kcore")},
		{"read /proc/keys", "read", []string{"/proc/keys"}, masked("/proc/keys")},
		{"read /proc/timer_list", "read", []string{"/proc/timer_list"}, masked("/proc/timer_list")},
		{"read /proc/latency_stats", "read", []string{"/proc/latency_stats"}, masked("/proc/latency_stats")},
		{"read /proc/timer_stats", "read", []string{"/proc/timer_stats"}, masked("/proc/timer_stats")},
		{"read /proc/sched_debug", "read", []string{"/proc/sched_debug"}, masked("/proc/sched_debug")},
		{"list /proc/acpi", "list", []string{"/proc/acpi"}, maskedDir("/proc/acpi")},
		{"list /proc/asound", "list", []string{"/proc/asound"}, maskedDir("/proc/asound")},
		{"list /proc/scsi", "list", []string{"/proc/scsi"}, maskedDir("/proc/scsi")},
		{"list /sys/firmware", "list", []string{"/sys/firmware"}, maskedDir("/sys/firmware")},
		{"list /sys/devices/virtual/powercap", "list", []string{"/sys/devices/virtual/powercap"}, maskedDir("/sys/devices/virtual/powercap")},
		{"write /proc/sysrq-trigger", "write", []string{"/proc/sysrq-trigger"}, readOnly("/proc/sysrq-trigger")},
		{"write /proc/sys", "write", []string{"/proc/sys/kernel/hostname"}, "EROFS"},
		{"write /sys", "write", []string{"/sys/kernel/profiling"}, "EROFS"},
		{"load a module from a file", "finit_module", nil, "EPERM"},
		{"load a module from memory", "init_module", nil, "EPERM"},
		{"reboot", "reboot", nil, "EPERM"},
		{"open the host's disk through mknod in the root", "mknod-block", []string{"/disk", fmt.Sprint(rootDevice(t))}, "open: EACCES"},
		{"add a device node to /dev", "mknod-block", []string{"/dev/disk", fmt.Sprint(rootDevice(t))}, "mknod: EROFS"},
		{"open the host's disk through mknod in /tmp", "mknod-block", []string{"/tmp/disk", fmt.Sprint(rootDevice(t))}, "open: EACCES"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, attempt(t, sb, tt.attempt, tt.args...))
		})
	}
}

// Socket families as the escape helper takes them.
var (
	afVSOCK = strconv.Itoa(unix.AF_VSOCK) // host/guest sockets, not namespaced
	afALG   = strconv.Itoa(unix.AF_ALG)   // the kernel's crypto API
)

// rootAndUser returns sb as the sandbox's root and as user 1000.
func rootAndUser(sb *sandbox.Sandbox) []struct {
	name string
	sb   *sandbox.Sandbox
} {
	return []struct {
		name string
		sb   *sandbox.Sandbox
	}{{"root", sb}, {"uid 1000", sb.WithUser(1000, 1000)}}
}

// TestEscapeKernelSurface tries, as root and as a user, kernel interfaces
// that no capability guards and the default filter refuses: io_uring,
// whose requests the kernel runs where no seccomp filter sees them, and
// the socket families Docker refuses.
func TestEscapeKernelSurface(t *testing.T) {
	root := escapeRoot(t)
	tests := []struct {
		name    string
		attempt string
		args    []string
		want    string
	}{
		{"io_uring_setup", "io_uring_setup", nil, "EPERM"},
		{"an AF_VSOCK socket through io_uring", "io_uring-socket", []string{afVSOCK}, "setup: EPERM"},
		{"an AF_VSOCK socket", "socket", []string{afVSOCK}, "EPERM"},
		{"an AF_ALG socket", "socket", []string{afALG}, "EPERM"},
	}
	for _, u := range rootAndUser(sandbox.New(sandbox.Dir(root))) {
		for _, tt := range tests {
			t.Run(u.name+"/"+tt.name, func(t *testing.T) {
				assert.Equal(t, tt.want, attempt(t, u.sb, tt.attempt, tt.args...))
			})
		}
	}
}

// TestEscapeKernelSurfaceControl makes TestEscapeKernelSurface's attempts
// where a filter lets them through, to show that its EPERMs are the
// filter's and that the io_uring attempt is real: with no filter the
// sockets reach the kernel, and with io_uring allowed IORING_OP_SOCKET gets
// the AF_VSOCK socket that socket(2) gets without a filter, past the socket
// rule that still refuses socket(2) itself.
func TestEscapeKernelSurfaceControl(t *testing.T) {
	root := escapeRoot(t)
	if b, err := os.ReadFile("/proc/sys/kernel/io_uring_disabled"); err == nil && strings.TrimSpace(string(b)) != "0" {
		testutil.SkipOrFail(t, "io_uring is disabled on this host (kernel.io_uring_disabled="+strings.TrimSpace(string(b))+
			"); run: sysctl kernel.io_uring_disabled=0")
	}
	withIOUring := sandbox.DefaultSeccompProfile().Allow("io_uring_setup", "io_uring_enter", "io_uring_register")
	for _, u := range rootAndUser(sandbox.New(sandbox.Dir(root))) {
		t.Run(u.name, func(t *testing.T) {
			open := u.sb.WithSeccomp(nil)
			vsock := attempt(t, open, "socket", afVSOCK)
			alg := attempt(t, open, "socket", afALG)
			t.Logf("without a filter: socket(AF_VSOCK) %s, socket(AF_ALG) %s", vsock, alg)
			assert.NotEqual(t, "EPERM", vsock, "socket(AF_VSOCK) without a filter must reach the kernel")
			assert.NotEqual(t, "EPERM", alg, "socket(AF_ALG) without a filter must reach the kernel")
			assert.Equal(t, "ok", attempt(t, open, "io_uring_setup"), "io_uring_setup without a filter")

			allowed := u.sb.WithSeccomp(withIOUring)
			assert.Equal(t, "ok", attempt(t, allowed, "io_uring_setup"), "io_uring_setup under a profile that allows it")
			assert.Equal(t, "EPERM", attempt(t, allowed, "socket", afVSOCK), "socket(AF_VSOCK) under that profile")
			assert.Equal(t, vsock, attempt(t, allowed, "io_uring-socket", afVSOCK),
				"IORING_OP_SOCKET(AF_VSOCK) under that profile must get what socket(2) gets without a filter")
		})
	}
}

func TestEscapeSetuidBinaryGainsNothing(t *testing.T) {
	root := escapeRoot(t)
	sb := sandbox.New(sandbox.Dir(root)).WithUser(1000, 1000)
	res, err := sb.WithEnv(escapeEnv+"=status").Run(testCtx(t), "/escape-suid")
	require.NoError(t, err)
	assert.Equal(t, "euid=1000 Uid=1000,1000,1000,1000 NoNewPrivs=1 Seccomp=2 CapInh=0000000000000000 "+
		"CapPrm=0000000000000000 CapEff=0000000000000000 CapBnd=00000000a80425fb CapAmb=0000000000000000",
		sortStatus(strings.TrimSpace(string(res.Stdout))),
		"a setuid-root binary run by a user must gain neither root nor capabilities (no_new_privs)")
}

// sortStatus puts the fields of a status line in a fixed order.
func sortStatus(s string) string {
	fields := strings.Fields(s)
	order := []string{"euid", "Uid", "NoNewPrivs", "Seccomp", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}
	var out []string
	for _, k := range order {
		for _, f := range fields {
			if strings.HasPrefix(f, k+"=") {
				out = append(out, f)
			}
		}
	}
	return strings.Join(out, " ")
}

func TestCapabilities(t *testing.T) {
	root := escapeRoot(t)
	sb := sandbox.New(sandbox.Dir(root))
	tests := []struct {
		name string
		sb   *sandbox.Sandbox
		want string
	}{
		// Docker's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID
		// SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD
		// AUDIT_WRITE SETFCAP.
		{"root keeps the default set", sb,
			"euid=0 Uid=0,0,0,0 NoNewPrivs=1 Seccomp=2 CapInh=0000000000000000 CapPrm=00000000a80425fb " +
				"CapEff=00000000a80425fb CapBnd=00000000a80425fb CapAmb=0000000000000000"},
		{"a user has none", sb.WithUser(1000, 1000),
			"euid=1000 Uid=1000,1000,1000,1000 NoNewPrivs=1 Seccomp=2 CapInh=0000000000000000 CapPrm=0000000000000000 " +
				"CapEff=0000000000000000 CapBnd=00000000a80425fb CapAmb=0000000000000000"},
		{"WithCapabilities replaces the set", sb.WithCapabilities("CAP_NET_ADMIN", "sys_ptrace"),
			"euid=0 Uid=0,0,0,0 NoNewPrivs=1 Seccomp=2 CapInh=0000000000000000 CapPrm=0000000000081000 " +
				"CapEff=0000000000081000 CapBnd=0000000000081000 CapAmb=0000000000000000"},
		{"WithSeccomp(nil) turns the filter off", sb.WithSeccomp(nil),
			"euid=0 Uid=0,0,0,0 NoNewPrivs=1 Seccomp=0 CapInh=0000000000000000 CapPrm=00000000a80425fb " +
				"CapEff=00000000a80425fb CapBnd=00000000a80425fb CapAmb=0000000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, sortStatus(attempt(t, tt.sb, "status")))
		})
	}
}

func TestSeccompProfileCanAllowAndDeny(t *testing.T) {
	root := escapeRoot(t)
	sb := sandbox.New(sandbox.Dir(root))
	// With CAP_SYS_ADMIN, only the filter stands between the program and
	// mount; allowing it there lets the call reach the kernel.
	admin := sb.WithCapabilities(append(sandbox.DefaultCapabilities(), "CAP_SYS_ADMIN")...)
	assert.Equal(t, "EPERM", attempt(t, admin, "mount", "/tmp"), "the default filter denies mount even with CAP_SYS_ADMIN")
	assert.Equal(t, "ok", attempt(t, admin.WithSeccomp(sandbox.DefaultSeccompProfile().Allow("mount")), "mount", "/tmp"))
	assert.Equal(t, "EPERM", attempt(t, sb.WithSeccomp(sandbox.DefaultSeccompProfile().Deny("getppid", "kill")), "kill", "1"))
}

func TestOnlyStandardDescriptorsReachTheProgram(t *testing.T) {
	sb, _ := busybox(t)
	// A descriptor the host process holds without close-on-exec: a
	// directory of the host, which would be a way out of the root
	// (CVE-2024-21626).
	leak, err := unix.Open(t.TempDir(), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(leak) })
	// exec: ls replaces the shell, keeping exactly what the shell was
	// given, and lists it with its own directory descriptor, 3.
	res := sh(t, sb.WithWorkdir("/tmp"), "readlink /proc/self/cwd; exec ls -l /proc/self/fd")
	lines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
	require.NotEmpty(t, lines)
	assert.Equal(t, "/tmp", lines[0], "the program's cwd must be inside the root")
	var fds []string
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) >= 9 {
			fds = append(fds, f[8])
		}
	}
	assert.Equal(t, []string{"0", "1", "2", "3"}, fds,
		"only 0, 1 and 2 may reach the program (3 is ls's own): %s", res.Stdout)
}

func TestRlimits(t *testing.T) {
	sb, _ := busybox(t)
	res := sh(t, sb, "ulimit -n; ulimit -c")
	assert.Equal(t, "1024\n0\n", string(res.Stdout), "defaults: NOFILE 1024, CORE 0")
	res = sh(t, sb.WithRlimit(sandbox.RlimitNOFILE, 64, 128), "ulimit -n; ulimit -Hn")
	assert.Equal(t, "64\n128\n", string(res.Stdout))
}

func TestEscapeThroughHostBinaryIsImpossible(t *testing.T) {
	sb, root := busybox(t)
	// The child of Run is a fork of this test binary until it executes the
	// payload. Executing /proc/self/exe then, directly or as a script's
	// interpreter, must not run the host binary inside the sandbox
	// (CVE-2019-5736): it would expose the host file to writes through
	// /proc/PID/exe. The sealed exec stub is what /proc/self/exe is.
	require.NoError(t, os.WriteFile(filepath.Join(root, "script"), []byte("#!/proc/self/exe\n"), 0o755))
	for _, sb := range []*sandbox.Sandbox{sb, sb.WithInit(false)} {
		for _, argv := range [][]string{{"/proc/self/exe", "-test.list", ".*"}, {"/script", "-test.list", ".*"}} {
			// /proc/self/exe names the init, or without it the exec
			// stub, which runs itself again (the script: in a loop until
			// the timeout): harmless, and never the host binary.
			res, err := sb.WithTimeout(time.Second).Run(testCtx(t), argv...)
			require.NoError(t, err)
			assert.Empty(t, res.Stdout, "%v must not run the host's binary: %+v", argv, res)
		}
	}
	res := sh(t, sb, "readlink /proc/self/exe; cat /proc/1/exe > /dev/null && echo readable")
	assert.Equal(t, "/bin/busybox\nreadable\n", string(res.Stdout), "the payload's exe is the root's own program")
}

func TestHostProcessesAndEnvironmentAreInvisible(t *testing.T) {
	sb, _ := busybox(t)
	t.Setenv("SANDBOXKIT_HOST_SECRET", "hunter2")
	res := sh(t, sb, fmt.Sprintf("ls -d /proc/%d 2>&1; echo /proc/[0-9]*; cat /proc/1/environ | tr '\\0' '\\n'", os.Getpid()))
	assert.Equal(t, fmt.Sprintf("ls: /proc/%d: No such file or directory\n/proc/1 /proc/2\nPATH=%s\n", os.Getpid(), sandbox.DefaultPath),
		string(res.Stdout))
}

func TestProcIsReadOnlyUnlessAsked(t *testing.T) {
	root := escapeRoot(t)
	sb := sandbox.New(sandbox.Dir(root))
	writable := sb.WithWritableProc()
	// By default the whole /proc is read only.
	assert.Equal(t, "EROFS", attempt(t, sb, "write", "/proc/self/oom_score_adj"))
	// WithWritableProc lets a program write its own files...
	assert.Equal(t, "ok", attempt(t, writable, "write", "/proc/self/comm"))
	// ...and never the kernel's tunables and triggers.
	for _, path := range []string{"/proc/sys/kernel/hostname", "/proc/sysrq-trigger", "/proc/irq/default_smp_affinity"} {
		assert.Equal(t, readOnly(path), attempt(t, writable, "write", path), "write %s with a writable /proc", path)
	}
}
