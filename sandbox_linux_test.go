package sandbox_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
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

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// testCtx returns a context for one integration test, bounded so that a
// hung sandbox fails the test instead of the whole run.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// busybox returns a sandbox on a fresh busybox root, and the root's path.
func busybox(t *testing.T) (*sandbox.Sandbox, string) {
	testutil.RequireRoot(t)
	root := testutil.Rootfs(t)
	return sandbox.New(sandbox.Dir(root)), root
}

// runInBackground starts script with /bin/sh in sb on a goroutine and
// returns a function that waits for the run's end. When the test ends, its
// context stops the sandbox, and a cleanup (run before those of anything
// the test made earlier, such as a bridge) waits for it: a failed check
// leaves nothing running.
func runInBackground(t *testing.T, sb *sandbox.Sandbox, script string) (wait func() (*sandbox.Result, error)) {
	var res *sandbox.Result
	var err error
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		res, err = sb.Run(testCtx(t), "/bin/sh", "-c", script)
	}()
	wait = func() (*sandbox.Result, error) {
		<-finished
		return res, err
	}
	t.Cleanup(func() { wait() })
	return wait
}

// sh runs script with /bin/sh in sb and requires that it ran.
func sh(t *testing.T, sb *sandbox.Sandbox, script string) *sandbox.Result {
	t.Helper()
	res, err := sb.Run(testCtx(t), "/bin/sh", "-c", script)
	require.NoError(t, err, "Run(sh -c %q)", script)
	require.NotNil(t, res)
	return res
}

func TestRunReportsExitCodeAndOutput(t *testing.T) {
	sb, _ := busybox(t)
	res := sh(t, sb, "echo out; echo err >&2; exit 7")
	assert.Equal(t, 7, res.ExitCode)
	assert.Equal(t, "out\n", string(res.Stdout))
	assert.Equal(t, "err\n", string(res.Stderr))
	assert.Zero(t, res.Signal)
	assert.False(t, res.TimedOut)
	assert.Positive(t, res.Wall)
	assert.Positive(t, res.CPU, "CPU time is read from the cgroup")
	assert.Positive(t, res.MemoryPeak, "memory peak is read from the cgroup")
}

func TestRunIsolatesNamespaces(t *testing.T) {
	sb, _ := busybox(t)
	sb = sb.WithHostname("box").WithEnv("ONLY=this")
	t.Setenv("HOST_SECRET", "leak")
	res := sh(t, sb, `echo pid=$$; hostname; echo /proc/[0-9]*; ls /sys/class/net; env | sort`)
	assert.Equal(t, "pid=2\nbox\n/proc/1 /proc/2\nlo\nONLY=this\nPATH="+sandbox.DefaultPath+"\nPWD=/\nSHLVL=1\n", string(res.Stdout),
		"the program must be the init's child, see only the init and its own processes, only lo, and only the given environment")
	res = sh(t, sb.WithInit(false), `echo pid=$$; echo /proc/[0-9]*`)
	assert.Equal(t, "pid=1\n/proc/1\n", string(res.Stdout), "WithInit(false): the program is PID 1")
	assert.NotContains(t, string(res.Stdout), "HOST_SECRET")
}

func TestRunLoopbackIsUp(t *testing.T) {
	sb, _ := busybox(t)
	res := sh(t, sb, `nc -l -p 7000 > /tmp/got &
		for i in $(seq 50); do echo ping | nc -w 1 127.0.0.1 7000 2>/dev/null && break; sleep 0.1; done
		wait; cat /tmp/got`)
	assert.Equal(t, "ping\n", string(res.Stdout), "a server on the sandbox's loopback must be reachable from inside")
}

func TestRunCgroupNamespaceIsRootedAtTheSandbox(t *testing.T) {
	sb, _ := busybox(t)
	res := sh(t, sb, "cat /proc/self/cgroup")
	for _, line := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
		_, path, _ := strings.Cut(line[strings.Index(line, ":")+1:], ":")
		assert.Equal(t, "/", path, "cgroup line %q: the sandbox must see its cgroup as the root", line)
	}
}

func TestRunRootIsAThrowAwayOverlay(t *testing.T) {
	sb, root := busybox(t)
	res := sh(t, sb, "echo changed > /etc/hostname && rm /bin/ls && mkdir /newdir && cat /etc/hostname")
	assert.Equal(t, 0, res.ExitCode, "stderr: %s", res.Stderr)
	assert.Equal(t, "changed\n", string(res.Stdout))

	got, err := os.ReadFile(filepath.Join(root, "etc/hostname"))
	require.NoError(t, err)
	assert.Equal(t, "rootfs-fixture\n", string(got), "the base root must never be written")
	assert.FileExists(t, filepath.Join(root, "bin/ls"))
	assert.NoDirExists(t, filepath.Join(root, "newdir"))
	assert.NoDirExists(t, filepath.Join(root, "proc"), "mount points are created in the overlay, not in the base")

	res = sh(t, sb, "cat /etc/hostname; ls -d /newdir 2>&1")
	assert.Equal(t, "rootfs-fixture\nls: /newdir: No such file or directory\n", string(res.Stdout),
		"a new run must not see the previous run's changes")
}

func TestRunHostFilesAreNotReachable(t *testing.T) {
	sb, _ := busybox(t)
	secret := filepath.Join(t.TempDir(), "host-secret")
	require.NoError(t, os.WriteFile(secret, []byte("secret"), 0o600))
	res := sh(t, sb, fmt.Sprintf("cat %s; cat /proc/1/root%s; ls /run/sandboxkit; cat /proc/mounts", secret, secret))
	assert.NotContains(t, string(res.Stdout), "secret")
	assert.NotContains(t, string(res.Stdout), "/dev/vda", "no host mount may be visible")
	assert.Contains(t, string(res.Stdout), "overlay / overlay")
}

func TestRunDevProcSysTmp(t *testing.T) {
	sb, _ := busybox(t)
	res := sh(t, sb, `
		echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c
		echo x > /dev/full 2>/dev/null || echo full-ok
		ls /dev | tr '\n' ' '; echo
		touch /sys/x 2>/dev/null || echo sys-ro
		touch /tmp/x && echo tmp-rw
		grep -E ' /(tmp|dev|sys|proc|dev/pts|dev/shm) ' /proc/mounts | cut -d' ' -f2,3 | sort | tr '\n' ' '`)
	assert.Equal(t, "4\n4\nfull-ok\nfd full null ptmx pts random shm stderr stdin stdout tty urandom zero \nsys-ro\ntmp-rw\n"+
		"/dev tmpfs /dev/pts devpts /dev/shm tmpfs /proc proc /sys sysfs /tmp tmpfs ", string(res.Stdout), "stderr: %s", res.Stderr)
}

func TestRunHostRootHasHostTools(t *testing.T) {
	testutil.RequireRoot(t)
	res, err := sandbox.New(sandbox.HostRoot()).Run(testCtx(t), "sh", "-c", "test -x /usr/bin/env && echo found; hostname")
	require.NoError(t, err)
	assert.Equal(t, "found\n"+sandbox.DefaultHostname+"\n", string(res.Stdout), "stderr: %s", res.Stderr)
}

func TestRunUserAndWorkdir(t *testing.T) {
	sb, _ := busybox(t)
	res := sh(t, sb.WithUser(1000, 1000).WithWorkdir("/home/user/work"), "id -u; id -g; id -G; pwd; touch f && echo writable")
	assert.Equal(t, "1000\n1000\n1000\n/home/user/work\nwritable\n", string(res.Stdout), "stderr: %s", res.Stderr)
}

func TestRunDropsTheCallersSupplementaryGroups(t *testing.T) {
	sb, _ := busybox(t)
	// Give this process an extra group, as a service in a docker or disk
	// group would have; the sandbox's root must not keep it.
	groups, err := syscall.Getgroups()
	require.NoError(t, err)
	require.NoError(t, syscall.Setgroups(append(groups, 4242)))
	t.Cleanup(func() { syscall.Setgroups(groups) })
	for _, sb := range []*sandbox.Sandbox{sb, sb.WithUser(1000, 1000)} {
		res := sh(t, sb, "grep Groups: /proc/self/status | tr -d ' \t'")
		assert.Equal(t, "Groups:\n", string(res.Stdout), "stderr: %s", res.Stderr)
	}
}

func TestRunStdio(t *testing.T) {
	sb, _ := busybox(t)
	var out, errOut bytes.Buffer
	res, err := sb.WithStdin(strings.NewReader("from stdin\n")).WithStdout(&out).WithStderr(&errOut).
		Run(testCtx(t), "/bin/sh", "-c", "cat; echo e >&2")
	require.NoError(t, err)
	assert.Equal(t, "from stdin\n", out.String())
	assert.Equal(t, "e\n", errOut.String())
	assert.Nil(t, res.Stdout, "output sent to a writer is not captured")

	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	require.NoError(t, err)
	defer f.Close()
	_, err = sb.WithStdout(f).Run(testCtx(t), "/bin/echo", "to a file")
	require.NoError(t, err)
	got, err := os.ReadFile(f.Name())
	require.NoError(t, err)
	assert.Equal(t, "to a file\n", string(got))
}

func TestRunOutputLimit(t *testing.T) {
	sb, _ := busybox(t)
	res := sh(t, sb.WithOutputLimit(10), "yes | head -c 100000; echo done >&2")
	assert.Equal(t, "y\ny\ny\ny\ny\n", string(res.Stdout))
	assert.True(t, res.StdoutTruncated)
	assert.False(t, res.StderrTruncated)
	assert.Equal(t, 0, res.ExitCode, "output beyond the limit is read and dropped, so the program never blocks")
}

func TestRunCommandNotFound(t *testing.T) {
	sb, _ := busybox(t)
	res, err := sb.Run(testCtx(t), "no-such-command", "arg")
	require.Error(t, err)
	assert.Nil(t, res)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Contains(t, err.Error(), `"no-such-command" is in no directory of PATH=`+sandbox.DefaultPath,
		"the error names every directory tried, not only the last")
	assert.Empty(t, testutil.SandboxCgroups(t), "a failed start must remove its cgroup")
}

func TestRunRootMissing(t *testing.T) {
	testutil.RequireRoot(t)
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := sandbox.New(sandbox.Dir(missing)).Run(testCtx(t), "/bin/true")
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Contains(t, err.Error(), missing)
}

func TestRunTimeoutKillsEveryProcess(t *testing.T) {
	sb, _ := busybox(t)
	start := time.Now()
	res := sh(t, sb.WithTimeout(300*time.Millisecond), "sleep 100 & sleep 100 & (sleep 100 &); sleep 100")
	assert.True(t, res.TimedOut)
	assert.Equal(t, -1, res.ExitCode)
	assert.Equal(t, syscall.SIGKILL, res.Signal)
	assert.Less(t, time.Since(start), 20*time.Second, "the timeout must end the run promptly")
	assert.Empty(t, testutil.SandboxCgroups(t), "every process must be gone, or the cgroup could not be removed")
}

func TestRunContextCancelKillsTheSandbox(t *testing.T) {
	sb, _ := busybox(t)
	ctx, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
	defer cancel()
	res, err := sb.Run(ctx, "/bin/sh", "-c", "sleep 100 & sleep 100")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotNil(t, res, "the program started, so there is a Result")
	assert.False(t, res.TimedOut, "TimedOut is for WithTimeout, not for the caller's ctx")
	assert.Empty(t, testutil.SandboxCgroups(t))
}

func TestRunMainExitKillsLeftovers(t *testing.T) {
	sb, _ := busybox(t)
	start := time.Now()
	res := sh(t, sb, "sleep 100 & sleep 100 & echo started")
	assert.Equal(t, "started\n", string(res.Stdout))
	assert.Less(t, time.Since(start), 20*time.Second, "background processes must die with the program")
	assert.Empty(t, testutil.SandboxCgroups(t))
}

func TestRunConcurrentSandboxesAreIsolated(t *testing.T) {
	sb, _ := busybox(t)
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	outs := make([]string, n)
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("box%d", i)
			res, err := sb.WithHostname(name).WithEnv("I="+fmt.Sprint(i)).Run(testCtx(t),
				"/bin/sh", "-c", "echo $(hostname) $I $$ > /tmp/f; sleep 0.1; cat /tmp/f")
			errs[i] = err
			if res != nil {
				outs[i] = string(res.Stdout)
			}
		})
	}
	wg.Wait()
	for i := range n {
		assert.NoError(t, errs[i])
		assert.Equal(t, fmt.Sprintf("box%d %d 2\n", i, i), outs[i], "sandbox %d must see only its own hostname, env and /tmp", i)
	}
}

func TestRunHostNetwork(t *testing.T) {
	sb, _ := busybox(t)
	hostNS, err := os.Readlink("/proc/self/ns/net")
	require.NoError(t, err)
	res := sh(t, sb.WithNetwork(sandbox.HostNetwork()), "readlink /proc/self/ns/net")
	assert.Equal(t, hostNS+"\n", string(res.Stdout), "HostNetwork shares the host's network namespace")
	res = sh(t, sb, "readlink /proc/self/ns/net")
	assert.NotEqual(t, hostNS+"\n", string(res.Stdout), "the default network is a namespace of the sandbox's own")
}

func TestRunSurvivesThreadsEndedByOtherGoroutines(t *testing.T) {
	sb, _ := busybox(t)
	// Goroutines that lock their thread and return make the runtime end
	// that thread. The sandbox dies with the thread that cloned it, so Run
	// must keep that thread to itself.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				done := make(chan struct{})
				go func() {
					runtime.LockOSThread()
					close(done)
				}()
				<-done
			}
		})
	}
	res := sh(t, sb, "sleep 0.5; echo alive")
	close(stop)
	wg.Wait()
	assert.Equal(t, "alive\n", string(res.Stdout), "the sandbox was killed: signal %v", res.Signal)
}

func TestRunDoesNotWaitForAStdinThatNeverEnds(t *testing.T) {
	sb, _ := busybox(t)
	r, w := io.Pipe() // a reader that ends only when the test says so
	t.Cleanup(func() { w.Close() })
	done := make(chan error, 1)
	go func() {
		_, err := sb.WithStdin(r).Run(testCtx(t), "/bin/true")
		done <- err
	}()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(20 * time.Second): // Run takes milliseconds; this is "never"
		t.Fatal("Run waited for a stdin reader after its program had exited")
	}
}

func TestRunStdioIsBlocking(t *testing.T) {
	sb, _ := busybox(t)
	// Programs expect blocking standard descriptors: on a non-blocking
	// pipe, a write to a full pipe fails with EAGAIN instead of waiting.
	for _, s := range []*sandbox.Sandbox{sb, sb.WithStdin(strings.NewReader("in")).WithStdout(&bytes.Buffer{})} {
		var out bytes.Buffer
		res, err := s.WithStderr(&out).Run(testCtx(t), "/bin/sh", "-c",
			"for fd in 0 1 2; do grep flags /proc/self/fdinfo/$fd >&2; done")
		require.NoError(t, err)
		require.Equal(t, 0, res.ExitCode)
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			flags, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(line, "flags:")), 8, 64)
			require.NoError(t, err, "fdinfo line %q", line)
			assert.Zero(t, flags&syscall.O_NONBLOCK, "a standard descriptor is non-blocking: %s", line)
		}
	}
}

func TestRunEndingAtItsDeadlineIsNotTimedOut(t *testing.T) {
	sb, _ := busybox(t)
	sb = sb.WithTimeout(100 * time.Millisecond)
	// Programs that end within a millisecond or two of the deadline: a
	// run the timeout did not stop must not say it did.
	var timedOut, finished int
	for range 30 {
		res, err := sb.Run(testCtx(t), "sleep", "0.099")
		require.NoError(t, err)
		if res.TimedOut {
			timedOut++
			assert.Equal(t, syscall.SIGKILL, res.Signal, "TimedOut must mean the timeout killed the run: %+v", res)
			assert.Equal(t, -1, res.ExitCode)
		} else {
			finished++
			assert.Equal(t, 0, res.ExitCode, "a run that was not stopped ended by itself: %+v", res)
		}
	}
	t.Logf("%d timed out, %d finished", timedOut, finished)
}

func TestRunReportsWhyTheExecFailed(t *testing.T) {
	sb, root := busybox(t)
	write := func(name, data string, mode os.FileMode) {
		require.NoError(t, os.WriteFile(filepath.Join(root, name), []byte(data), mode))
	}
	require.NoError(t, os.Mkdir(filepath.Join(root, "adir"), 0o755))
	write("noshebang", "echo hi\n", 0o755)
	write("badinterp", "#!/no/such/interpreter\necho hi\n", 0o755)
	write("garbage", "\x7fELF\x02\x01\x01garbage that is no executable", 0o755)
	write("noexec", "#!/bin/sh\necho hi\n", 0o644)
	tests := []struct {
		argv []string
		want error
		msg  string
	}{
		{[]string{"/adir"}, syscall.EACCES, "exec /adir: permission denied"},
		{[]string{"/noshebang"}, syscall.ENOEXEC, "exec /noshebang: exec format error"},
		{[]string{"/badinterp"}, syscall.ENOENT, "exec /badinterp: no such file or directory (its #! interpreter or ELF loader is missing)"},
		{[]string{"/garbage"}, syscall.ENOEXEC, "exec /garbage: exec format error"},
		{[]string{"/noexec"}, syscall.EACCES, "exec /noexec: permission denied"},
	}
	for _, tt := range tests {
		for name, sb := range variants(sb) {
			res, err := sb.Run(testCtx(t), tt.argv...)
			require.ErrorIs(t, err, tt.want, "%s: Run(%v) must say why, not exit 127 silently: %v", name, tt.argv, res)
			assert.ErrorContains(t, err, tt.msg, name)
		}
	}
}

func TestRunWithTooLittleMemoryToStartIsRefused(t *testing.T) {
	sb, _ := busybox(t)
	// 4096 bytes once gave a silent exit 127: the child could not even
	// report its failure. Such a limit is refused, as Docker refuses one
	// under 6 MiB; at the minimum a program starts.
	_, err := sb.WithMemory(4096).Run(testCtx(t), "/bin/true")
	var fe *sandbox.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "memory", fe.Field)
	res, err := sb.WithMemory(sandbox.MinMemory).Run(testCtx(t), "/bin/true")
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode, "/bin/true under the smallest memory limit: %+v", res)
}

func TestRunProgramSignalsBehaveAsOutsideASandbox(t *testing.T) {
	sb, _ := busybox(t)
	tests := []struct {
		name, script string
		exit         int
		signal       syscall.Signal
		stdout       string
	}{
		// As PID 1 the program ignored these: the kernel drops a signal
		// to a namespace's init that it has no handler for.
		{"its own SIGABRT", "kill -ABRT $$; echo survived", -1, syscall.SIGABRT, ""},
		{"its own SIGTERM", "kill -TERM $$; echo survived", -1, syscall.SIGTERM, ""},
		{"a signal to PID 1 reaches it", "trap 'echo got TERM; exit 3' TERM; kill -TERM 1; sleep 5 & wait", 3, 0, "got TERM\n"},
		// An orphan is reaped by the init, not left a zombie.
		{"orphans are reaped", "(sleep 0.05 &); sleep 0.5; grep -l '^State:.*Z' /proc/[0-9]*/status | wc -l", 0, 0, "0\n"},
	}
	for _, tt := range tests {
		for name, sb := range variants(sb) {
			res := sh(t, sb, tt.script)
			assert.Equal(t, tt.exit, res.ExitCode, "%s %s: %+v", tt.name, name, res)
			assert.Equal(t, tt.signal, res.Signal, "%s %s", tt.name, name)
			assert.Equal(t, tt.stdout, string(res.Stdout), "%s %s", tt.name, name)
		}
	}
	// Without the init, the program is PID 1 and the kernel shields it.
	res := sh(t, sb.WithInit(false), "kill -ABRT $$; echo survived")
	assert.Equal(t, "survived\n", string(res.Stdout), "WithInit(false): PID 1 ignores its own SIGABRT")
}

// threads returns how many OS threads this process has.
func threads(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("no Threads: line in /proc/self/status")
	return 0
}

func TestManyRunningSandboxesUseFewThreads(t *testing.T) {
	sb, root := busybox(t)
	share := t.TempDir()
	sb = sb.WithBind(share, "/share")
	const n = 200
	before := threads(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	ctx, stop := context.WithCancel(testCtx(t))
	// Starts overlap 8 at a time: a burst of 200 would leave the runtime
	// with a thread per start blocked in a system call, idle afterwards,
	// which says nothing of what a running sandbox holds.
	started := func(i int) bool {
		_, err := os.Stat(filepath.Join(share, strconv.Itoa(i)))
		return err == nil
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i >= 8 && !started(i-8) {
				time.Sleep(time.Millisecond)
			}
			// Each says it runs, then sleeps until the test ends it.
			_, err := sb.Run(ctx, "/bin/sh", "-c", fmt.Sprintf("touch /share/%d; exec sleep 60", i))
			errs <- err
		}()
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	require.Eventually(t, func() bool {
		entries, _ := os.ReadDir(share)
		return len(entries) == n
	}, 60*time.Second, 20*time.Millisecond, "all %d sandboxes must start", n)
	during := threads(t)
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.ErrorIs(t, err, context.Canceled, "each ran until the test cancelled it")
	}
	t.Logf("threads: %d before, %d with %d sandboxes running (root %s)", before, during, n, root)
	assert.LessOrEqual(t, during-before, 16, "running sandboxes must not each hold an OS thread of the caller")
}
