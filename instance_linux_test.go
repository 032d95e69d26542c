package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// start starts argv in sb and closes the instance when t ends.
func start(t *testing.T, sb *sandbox.Sandbox, argv ...string) *sandbox.Instance {
	t.Helper()
	in, err := sb.Start(testCtx(t), argv...)
	require.NoError(t, err)
	t.Cleanup(func() { in.Close() })
	return in
}

func TestStartSignalWait(t *testing.T) {
	sb, _ := busybox(t)
	for name, sb := range variants(sb) {
		before := testutil.SnapshotHost(t)
		in := start(t, sb, "/bin/sh", "-c", "trap 'echo got TERM; exit 7' TERM; echo started; while :; do sleep 0.05; done")
		// The program runs after Start returns, and outlives Start's ctx.
		ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
		_, err := in.Wait(ctx)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "%s: Wait's ctx bounds the wait only", name)
		require.NoError(t, in.Signal(syscall.SIGTERM), name)
		res, err := in.Wait(testCtx(t))
		require.NoError(t, err, name)
		assert.Equal(t, 7, res.ExitCode, "%s: %v", name, res)
		assert.Equal(t, "started\ngot TERM\n", string(res.Stdout), name)
		again, err := in.Wait(testCtx(t))
		require.NoError(t, err)
		assert.Same(t, res, again, "later Waits return the same result")
		require.NoError(t, in.Close())
		assert.ErrorIs(t, in.Signal(syscall.SIGTERM), sandbox.ErrClosed)
		after := testutil.SnapshotHost(t)
		assert.Empty(t, after.Cgroups, "%s: Close leaves no cgroup", name)
		assert.Equal(t, before.Mounts, after.Mounts)
	}
}

func TestStartIdleUntilClosed(t *testing.T) {
	sb, _ := busybox(t)
	for name, sb := range variants(sb) {
		in := start(t, sb)
		require.NoError(t, in.Signal(syscall.SIGTERM), "%s: an idle sandbox's init ignores SIGTERM", name)
		time.Sleep(20 * time.Millisecond)
		ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
		_, err := in.Wait(ctx)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "%s: idles until closed", name)
		// Close from several goroutines at once: one teardown, one result.
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = in.Close() }()
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		res, err := in.Wait(testCtx(t))
		require.NoError(t, err)
		assert.Equal(t, syscall.SIGKILL, res.Signal, "%s: Close kills it: %v", name, res)
		assert.Empty(t, testutil.SandboxCgroups(t))
	}
}

func TestStartTimeoutBoundsTheInstance(t *testing.T) {
	sb, _ := busybox(t)
	in := start(t, sb.WithTimeout(200*time.Millisecond), "sleep", "30")
	res, err := in.Wait(testCtx(t))
	require.NoError(t, err)
	assert.True(t, res.TimedOut, "%v", res)
	assert.Less(t, res.Wall, 5*time.Second)
}

func TestStartValidates(t *testing.T) {
	_, err := sandbox.New(sandbox.Dir("/srv/root")).WithInit(false).Start(t.Context())
	var fe *sandbox.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "argv", fe.Field, "no program needs the init")
	var nilInstance *sandbox.Instance
	assert.NoError(t, nilInstance.Close())
}

func TestInstanceFilesStayInsideTheRoot(t *testing.T) {
	sb, root := busybox(t)
	for name, sb := range variants(sb.WithUser(1000, 1000)) {
		in := start(t, sb)
		// In and out, owned by the sandbox's user.
		require.NoError(t, in.WriteFile("/tmp/in", []byte("hello"), 0o640), name)
		got, err := in.ReadFile("/tmp/in")
		require.NoError(t, err)
		assert.Equal(t, "hello", string(got))
		// A hostile root holds links to the host; none leads out.
		host := filepath.Join(t.TempDir(), "host-secret")
		require.NoError(t, os.WriteFile(host, []byte("secret"), 0o600))
		for link, target := range map[string]string{
			"/tmp/abs": host, "/tmp/up": "../../../../../../" + host, "/tmp/fd": "/proc/self/fd/0",
			"/tmp/sys": "/proc/sys/kernel/hostname",
		} {
			require.NoError(t, os.Symlink(target, filepath.Join(root, "etc", filepath.Base(link))), name)
			_, err := in.ReadFile("/etc/" + filepath.Base(link))
			assert.Error(t, err, "%s: ReadFile through %s -> %s", name, link, target)
			if filepath.Base(link) == "abs" {
				err = in.WriteFile("/etc/abs", []byte("x"), 0o644)
				assert.Error(t, err, "%s: a link at the path is not followed", name)
			}
			require.NoError(t, os.Remove(filepath.Join(root, "etc", filepath.Base(link))))
		}
		b, err := os.ReadFile(host)
		require.NoError(t, err)
		assert.Equal(t, "secret", string(b), "%s: the host file is untouched", name)
		// The host writes as root: a link onto /proc/sys would change the
		// host's own kernel settings.
		hostname, err := os.ReadFile("/proc/sys/kernel/hostname")
		require.NoError(t, err)
		require.NoError(t, os.Symlink("/proc/sys/kernel", filepath.Join(root, "etc", "kernel")))
		err = in.WriteFile("/etc/kernel/hostname", []byte("pwned"), 0o644)
		assert.ErrorIs(t, err, sandbox.ErrUnsafePath, "%s: no write through a link onto /proc/sys", name)
		require.NoError(t, os.Remove(filepath.Join(root, "etc", "kernel")))
		now, err := os.ReadFile("/proc/sys/kernel/hostname")
		require.NoError(t, err)
		assert.Equal(t, string(hostname), string(now), "%s: the host's host name is untouched", name)
		// A FIFO does not hold the caller up.
		require.NoError(t, unix.Mkfifo(filepath.Join(root, "etc", "fifo"), 0o644))
		_, err = in.ReadFile("/etc/fifo")
		assert.ErrorIs(t, err, errors.ErrUnsupported, "%s: a FIFO is no regular file", name)
		os.Remove(filepath.Join(root, "etc", "fifo"))
		require.NoError(t, in.Close())
		_, err = in.ReadFile("/tmp/in")
		assert.ErrorIs(t, err, sandbox.ErrClosed)
	}
}

func TestInstanceOnABridge(t *testing.T) {
	sb, _ := busybox(t)
	n, subnet := testBridge(t)
	for name, sb := range variants(sb.WithNetwork(n).WithPublish(0, 8080)) {
		// The server starts a moment after the program does: WaitPort
		// tells when it listens, read from the sandbox's namespace.
		in := start(t, sb, "/bin/sh", "-c", "sleep 0.2; exec httpd -f -p 8080 -h /etc")
		require.NoError(t, in.WaitPort(testCtx(t), 8080), name)
		assert.True(t, subnet.Contains(in.IP()), "%s: IP %v in %v", name, in.IP(), subnet)
		ports := in.Ports()
		require.Len(t, ports, 1)
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/hostname", ports[0].HostPort))
		require.NoError(t, err, "%s: the published port answers once WaitPort returned", name)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "rootfs-fixture\n", string(body))
		st, err := in.Stats()
		require.NoError(t, err)
		assert.Positive(t, st.Memory, name)
		assert.GreaterOrEqual(t, st.Processes, 2, "%s: the init and httpd", name)
		assert.Positive(t, st.RxBytes, "%s: eth0 received the request", name)
		assert.Positive(t, st.TxBytes, name)
		require.NoError(t, in.Close())
		_, err = in.Stats()
		assert.ErrorIs(t, err, sandbox.ErrClosed)
		assert.ErrorIs(t, in.WaitPort(testCtx(t), 8080), sandbox.ErrClosed)
	}
	assert.Zero(t, bridgePorts(t, n), "Close leaves no veth")
}

func TestWaitPortEndsWithTheSandbox(t *testing.T) {
	sb, _ := busybox(t)
	in := start(t, sb, "sleep", "0.1")
	assert.ErrorIs(t, in.WaitPort(testCtx(t), 9), sandbox.ErrClosed, "nothing will listen: the sandbox ended")
	ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	idle := start(t, sb)
	assert.ErrorIs(t, idle.WaitPort(ctx, 9), context.DeadlineExceeded)
}

func TestInstanceExec(t *testing.T) {
	sb, _ := busybox(t)
	n, _ := testBridge(t)
	for name, sb := range variants(sb.WithUser(1000, 1000).WithWorkdir("/home/user").WithEnv("WHO=sandbox")) {
		for _, net := range []sandbox.Network{sandbox.NoNetwork(), n, sandbox.HostNetwork()} {
			in := start(t, sb.WithNetwork(net), "/bin/sh", "-c", "echo main > /tmp/mark; hostname > /tmp/host; exec sleep 30")
			require.Eventually(t, func() bool { b, _ := in.ReadFile("/tmp/mark"); return len(b) > 0 }, 10*time.Second, 5*time.Millisecond)
			// The same root, user, namespaces and environment as the
			// program; its own exit status and output.
			res, err := in.Exec(testCtx(t), "/bin/sh", "-c",
				`cat /tmp/mark; id -u; pwd; echo $WHO; [ "$(hostname)" = "$(cat /tmp/host)" ] && echo same-uts; `+
					`echo /proc/[0-9]* | wc -w; readlink /proc/self/ns/net; echo err >&2; exit 3`)
			require.NoError(t, err, "%s %v", name, net)
			assert.Equal(t, 3, res.ExitCode, "%s %v: %v %s", name, net, res, res.Stderr)
			lines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
			require.Len(t, lines, 7, "%s: %s", name, res.Stdout)
			assert.Equal(t, []string{"main", "1000", "/home/user", "sandbox", "same-uts"}, lines[:5], name)
			// The init, sh, sleep, and this sh (and its pipeline): only
			// the sandbox's processes; the entering process is invisible.
			count, _ := strconv.Atoi(lines[5])
			assert.GreaterOrEqual(t, count, 4, "%s: %s", name, lines[5])
			mainNet, err := in.Exec(testCtx(t), "readlink", "/proc/1/ns/net")
			require.NoError(t, err)
			assert.Equal(t, strings.TrimSpace(string(mainNet.Stdout)), lines[6], "%s: the sandbox's network namespace", name)
			assert.Equal(t, "err\n", string(res.Stderr))
			// ctx ends an exec; the sandbox runs on.
			ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
			_, err = in.Exec(ctx, "sleep", "30")
			cancel()
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			_, err = in.Exec(testCtx(t), "no-such-command")
			assert.ErrorIs(t, err, os.ErrNotExist)
			require.NoError(t, in.Close())
			_, err = in.Exec(testCtx(t), "true")
			assert.ErrorIs(t, err, sandbox.ErrClosed)
		}
	}
	assert.Empty(t, testutil.SandboxCgroups(t))
}

// The process that enters a sandbox for Exec starts as a copy of the host
// process; a process of the sandbox that could reach it would read the
// host's memory and environment (CVE-2016-9962). It never is in the
// sandbox's PID namespace: only the program is, born from a fresh image.
func TestExecLeavesNothingOfTheHostToSee(t *testing.T) {
	sb, _ := busybox(t)
	t.Setenv("SANDBOXKIT_HOST_SECRET", "hunter2")
	self, err := os.Executable()
	require.NoError(t, err)
	sb = sb.WithCapabilities(append(sandbox.DefaultCapabilities(), "CAP_SYS_PTRACE")...).
		WithSeccomp(sandbox.DefaultSeccompProfile().Allow("ptrace"))
	for name, sb := range variants(sb) {
		// A watcher with CAP_SYS_PTRACE reads every process's environment,
		// executable and memory map, over and over, while Exec runs.
		in := start(t, sb, "/bin/sh", "-c", `while :; do for p in /proc/[0-9]*; do
			cat $p/environ $p/maps 2>/dev/null; readlink $p/exe 2>/dev/null; done; done > /tmp/seen`)
		for range 40 {
			res, err := in.Exec(testCtx(t), "true")
			require.NoError(t, err, name)
			require.Equal(t, 0, res.ExitCode)
		}
		seen, err := in.ReadFile("/tmp/seen")
		require.NoError(t, err)
		require.NotEmpty(t, seen, "%s: the watcher saw processes", name)
		assert.NotContains(t, string(seen), "hunter2", "%s: the host's environment must not be visible", name)
		assert.NotContains(t, string(seen), self, "%s: the host's binary must not be visible", name)
	}
}

func TestCloseWaitsForExecsInFlight(t *testing.T) {
	sb, _ := busybox(t)
	for name, sb := range variants(sb) {
		in := start(t, sb)
		done := make(chan error, 1)
		var res *sandbox.Result
		go func() {
			var err error
			res, err = in.Exec(testCtx(t), "sleep", "30")
			done <- err
		}()
		// The exec's process is in the sandbox's cgroup: Close must not
		// remove the cgroup before it is gone.
		var st *sandbox.Stats
		require.Eventually(t, func() bool {
			select {
			case err := <-done:
				require.Failf(t, "the exec ended before Close", "%s: %v %v", name, err, res)
			default:
			}
			var err error
			st, err = in.Stats()
			return err == nil && st.Processes >= 3
		}, 10*time.Second, 5*time.Millisecond, "%s: the exec runs: %+v", name, st)
		require.NoError(t, in.Close(), "%s: Close with an exec in flight", name)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the exec outlived Close", name)
		}
		assert.Empty(t, testutil.SandboxCgroups(t), "%s: nothing left after Close", name)
	}
}

// rssKiB returns this process's resident memory in KiB.
func rssKiB(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// 200 idle instances at once on a 2-core machine, each still answering
// Exec, without a thread of the caller's per instance.
func TestTwoHundredIdleInstancesAnswerExec(t *testing.T) {
	sb, _ := busybox(t)
	const n = 200
	runtime.GC()
	threadsBefore, rssBefore := threads(t), rssKiB(t)
	instances := make([]*sandbox.Instance, n)
	for i := range instances {
		instances[i] = start(t, sb)
	}
	runtime.GC()
	threadsIdle, rssIdle := threads(t), rssKiB(t)
	var sandboxMem int64
	for _, in := range instances {
		st, err := in.Stats()
		require.NoError(t, err)
		sandboxMem += st.Memory
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, in := range instances {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			res, err := in.Exec(testCtx(t), "echo", strconv.Itoa(i))
			if assert.NoError(t, err, "instance %d", i) {
				assert.Equal(t, strconv.Itoa(i)+"\n", string(res.Stdout), "instance %d", i)
			}
		})
	}
	wg.Wait()
	t.Logf("%d idle instances: caller threads %d -> %d (%.2f per instance), caller RSS %d -> %d KiB (%.0f KiB per instance), sandbox memory %.0f KiB per instance (cgroup)",
		n, threadsBefore, threadsIdle, float64(threadsIdle-threadsBefore)/n, rssBefore, rssIdle, float64(rssIdle-rssBefore)/n, float64(sandboxMem)/1024/n)
	assert.Less(t, threadsIdle-threadsBefore, 32, "idle instances must not hold a thread each")
	for _, in := range instances {
		require.NoError(t, in.Close())
	}
	assert.Empty(t, testutil.SandboxCgroups(t))
}
