package seccomp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/testutil"
)

// helperEnv carries the helper mode to the re-executed test binary.
const helperEnv = "SANDBOXKIT_SECCOMP_TEST_HELPER"

// markErrno is the default errno of the "marked" helper mode: seeing it
// proves that the filter, not a missing capability, refused a call.
const markErrno = uint16(unix.EHWPOISON)

// TestHelperProcess is not a test: it is the child that the tests below
// start. It installs a filter on itself and then runs the probes of its
// mode, printing one "name errno" line per probe.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for the seccomp tests; runs only when re-executed by them")
	}
	p := Default()
	if mode == "marked" {
		p.DefaultErrno = markErrno
	}
	prog, err := p.Compile(runtime.GOARCH)
	if err == nil {
		err = Install(prog)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "install filter:", err)
		os.Exit(2)
	}
	switch mode {
	case "runtime":
		if err := exerciseRuntime(); err != nil {
			fmt.Fprintln(os.Stderr, "runtime under filter:", err)
			os.Exit(3)
		}
		fmt.Println("runtime ok")
	default:
		for _, pr := range probes() {
			fmt.Printf("%s %d\n", pr.name, int(pr.run()))
		}
	}
	os.Exit(0)
}

type probe struct {
	name string
	run  func() unix.Errno // 0 means the call succeeded
}

// probes attempt system calls with arguments chosen so that, should the
// filter wrongly allow a dangerous call, the kernel rejects it anyway
// (EINVAL, EFAULT, ENOENT...) with an errno other than the expected one.
func probes() []probe {
	raw := func(nr uintptr, args ...uintptr) func() unix.Errno {
		return func() unix.Errno {
			var a [6]uintptr
			copy(a[:], args)
			_, _, e := unix.RawSyscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
			return e
		}
	}
	errnoOf := func(err error) unix.Errno {
		if err == nil {
			return 0
		}
		var e unix.Errno
		if errors.As(err, &e) {
			return e
		}
		return unix.Errno(255)
	}
	neg := func(v int) uintptr { return uintptr(v) } // -1 as an argument
	return []probe{
		{"getpid", raw(unix.SYS_GETPID)},
		{"openat", func() unix.Errno {
			fd, err := unix.Openat(unix.AT_FDCWD, "/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err == nil {
				unix.Close(fd)
			}
			return errnoOf(err)
		}},
		{"read", func() unix.Errno {
			fd, err := unix.Open("/dev/zero", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return errnoOf(err)
			}
			defer unix.Close(fd)
			_, err = unix.Read(fd, make([]byte, 8))
			return errnoOf(err)
		}},
		{"write", func() unix.Errno {
			fd, err := unix.Open("/dev/null", unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return errnoOf(err)
			}
			defer unix.Close(fd)
			_, err = unix.Write(fd, []byte("x"))
			return errnoOf(err)
		}},
		{"socket_unix", func() unix.Errno {
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err == nil {
				unix.Close(fd)
			}
			return errnoOf(err)
		}},
		{"personality_query", raw(unix.SYS_PERSONALITY, 0xffffffff)},
		{"exec_true", func() unix.Errno { // clone without namespace flags, then execve
			return errnoOf(exec.Command("/bin/true").Run())
		}},
		{"mount", func() unix.Errno { return errnoOf(unix.Mount("none", "", "tmpfs", 0, "")) }},
		{"umount2", func() unix.Errno { return errnoOf(unix.Unmount("", 0)) }},
		{"unshare_newns", func() unix.Errno {
			// Should the filter fail, only this thread changes namespace;
			// it stays locked, so the runtime discards it.
			ch := make(chan unix.Errno)
			go func() {
				runtime.LockOSThread()
				ch <- errnoOf(unix.Unshare(unix.CLONE_NEWNS))
			}()
			return <-ch
		}},
		{"setns", raw(unix.SYS_SETNS, neg(-1), unix.CLONE_NEWNS)},
		// CLONE_NEWNS|CLONE_FS and CLONE_NEWUSER|CLONE_FS are EINVAL to the kernel.
		{"clone_newns", raw(unix.SYS_CLONE, unix.CLONE_NEWNS|unix.CLONE_FS)},
		{"clone_newuser", raw(unix.SYS_CLONE, unix.CLONE_NEWUSER|unix.CLONE_FS)},
		{"clone3", raw(unix.SYS_CLONE3, 0, 0)},
		{"keyctl", raw(unix.SYS_KEYCTL, 0xffff)},
		{"add_key", raw(unix.SYS_ADD_KEY)},
		{"request_key", raw(unix.SYS_REQUEST_KEY)},
		{"bpf", raw(unix.SYS_BPF, 0xffff)},
		{"perf_event_open", raw(unix.SYS_PERF_EVENT_OPEN, 0, 0, neg(-1), neg(-1), 0)},
		{"reboot", raw(unix.SYS_REBOOT, 0, 0, 0, 0)},
		{"init_module", raw(unix.SYS_INIT_MODULE, 0, 0, 0)},
		{"socket_vsock", func() unix.Errno {
			fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err == nil {
				unix.Close(fd)
			}
			return errnoOf(err)
		}},
		{"socket_alg", func() unix.Errno {
			fd, err := unix.Socket(unix.AF_ALG, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
			if err == nil {
				unix.Close(fd)
			}
			return errnoOf(err)
		}},
		// No params: EFAULT should the filter let the call through.
		{"io_uring_setup", raw(unix.SYS_IO_URING_SETUP, 1, 0)},
	}
}

// exerciseRuntime makes the Go runtime do what programs commonly make it
// do: start threads, collect garbage, sleep, handle signals, use the
// network poller, read files and start processes.
func exerciseRuntime() error {
	runtime.GOMAXPROCS(4)
	var wg sync.WaitGroup
	results := make(chan int, 64)
	for i := range 64 {
		wg.Go(func() {
			runtime.LockOSThread() // forces extra OS threads
			defer runtime.UnlockOSThread()
			buf := make([]byte, 1<<16)
			for j := range buf {
				buf[j] = byte(i + j)
			}
			time.Sleep(time.Millisecond)
			results <- int(buf[len(buf)-1])
		})
	}
	wg.Wait()
	close(results)
	runtime.GC()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGUSR1)
	if err := unix.Kill(os.Getpid(), unix.SIGUSR1); err != nil {
		return fmt.Errorf("kill self: %w", err)
	}
	select {
	case <-sigs:
	case <-time.After(5 * time.Second):
		return errors.New("SIGUSR1 not delivered")
	}
	signal.Stop(sigs)

	if _, err := os.ReadFile("/proc/self/status"); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = io.Copy(c, c)
			c.Close()
		}
	}()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply := make([]byte, 4)
	if _, err := io.ReadFull(c, reply); err != nil || string(reply) != "ping" {
		return fmt.Errorf("echo: %q, %w", reply, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/bin/sh", "-c", "echo hi").Output()
	if err != nil || strings.TrimSpace(string(out)) != "hi" {
		return fmt.Errorf("sh -c 'echo hi': %q, %w", out, err)
	}
	return nil
}

// requireSeccomp skips when the kernel lacks seccomp filters.
func requireSeccomp(t testing.TB) {
	t.Helper()
	if _, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err != nil {
		testutil.SkipOrFail(t, fmt.Sprintf("seccomp unavailable (prctl(PR_GET_SECCOMP): %v); needs CONFIG_SECCOMP_FILTER", err))
	}
}

// runHelper re-executes the test binary in mode and returns its output.
func runHelper(t *testing.T, mode string) string {
	t.Helper()
	requireSeccomp(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "helper %q: stderr:\n%s", mode, stderr.String())
	return string(out)
}

// parseProbes reads "name errno" lines.
func parseProbes(t *testing.T, out string) map[string]unix.Errno {
	t.Helper()
	got := map[string]unix.Errno{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		name, num, ok := strings.Cut(sc.Text(), " ")
		require.True(t, ok, "helper output line %q", sc.Text())
		n, err := strconv.Atoi(num)
		require.NoError(t, err, "helper output line %q", sc.Text())
		got[name] = unix.Errno(n)
	}
	return got
}

func TestInstallDefault(t *testing.T) {
	got := parseProbes(t, runHelper(t, "probes"))
	tests := []probeWant{
		{"getpid", 0}, {"openat", 0}, {"read", 0}, {"write", 0},
		{"socket_unix", 0}, {"personality_query", 0}, {"exec_true", 0},
		{"mount", unix.EPERM}, {"umount2", unix.EPERM},
		{"unshare_newns", unix.EPERM}, {"setns", unix.EPERM},
		{"clone_newns", unix.EPERM}, {"clone_newuser", unix.EPERM},
		{"clone3", unix.ENOSYS},
		{"keyctl", unix.EPERM}, {"add_key", unix.EPERM}, {"request_key", unix.EPERM},
		{"bpf", unix.EPERM}, {"perf_event_open", unix.EPERM},
		{"reboot", unix.EPERM}, {"init_module", unix.EPERM},
		{"socket_vsock", unix.EPERM}, {"socket_alg", unix.EPERM},
		{"io_uring_setup", unix.EPERM},
	}
	assertProbes(t, got, tests)
}

func TestInstallDeniedByFilter(t *testing.T) {
	// With a distinctive default errno, every call that falls through to
	// the default action reports it, so the EPERMs above come from the
	// filter and not from missing privileges.
	got := parseProbes(t, runHelper(t, "marked"))
	mark := unix.Errno(markErrno)
	tests := []probeWant{
		{"getpid", 0}, {"exec_true", 0},
		{"mount", mark}, {"umount2", mark}, {"unshare_newns", mark},
		{"setns", mark}, {"clone_newns", mark}, {"clone_newuser", mark},
		{"keyctl", mark}, {"add_key", mark}, {"request_key", mark},
		{"bpf", mark}, {"perf_event_open", mark}, {"reboot", mark},
		{"init_module", mark}, {"io_uring_setup", mark},
		{"clone3", unix.ENOSYS},      // explicit rule
		{"socket_vsock", unix.EPERM}, // explicit rule
		{"socket_alg", unix.EPERM},   // explicit rule
	}
	assertProbes(t, got, tests)
}

// probeWant is one system call the helper tried and the errno it must
// give.
type probeWant struct {
	probe string
	want  unix.Errno
}

// assertProbes checks each probe's result, as the helper printed it.
func assertProbes(t *testing.T, got map[string]unix.Errno, tests []probeWant) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.probe, func(t *testing.T) {
			e, ok := got[tt.probe]
			require.True(t, ok, "helper printed no result for %s", tt.probe)
			assert.Equal(t, tt.want, e, "%s: got %q (%d), want %q (%d)",
				tt.probe, e.Error(), int(e), tt.want.Error(), int(tt.want))
		})
	}
}

func TestInstallGoRuntime(t *testing.T) {
	out := runHelper(t, "runtime")
	assert.Equal(t, "runtime ok\n", out, "a Go program under the default filter")
}

func TestInstallEmpty(t *testing.T) {
	// Installing nothing must not touch the test process.
	require.NoError(t, Install(nil))
	mode, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	if err == nil {
		assert.Equal(t, 0, mode, "Install(nil) must not enable seccomp")
	}
}
