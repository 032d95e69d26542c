package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/spawn"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// newPool returns a pool of size of sb, closed when t ends.
func newPool(t *testing.T, sb *sandbox.Sandbox, size int) *sandbox.Pool {
	t.Helper()
	p, err := sandbox.NewPool(sb, size)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

// requireNothingLeft fails t unless the pool's Close left no sandbox
// cgroup, mount, child process or descriptor beyond those of before.
func requireNothingLeft(t *testing.T, before testutil.HostState) {
	t.Helper()
	assert.Empty(t, testutil.OwnCgroups(t), "no sandbox cgroup may be left")
	var left []string // this pool's: not a process that was there before
	for _, pid := range testutil.Children(t) {
		if slices.Contains(before.Children, pid) {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		left = append(left, pid+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
	}
	assert.Empty(t, left, "no sandbox process may be left")
	assert.Equal(t, before.Mounts, testutil.SnapshotHost(t).Mounts, "no mount may be left")
	assert.Empty(t, ownLeases(t), "no IP lease may be left")
	testutil.CheckFDs(t, before, "pool")
}

// ownLeases lists the bridge leases in the state directory that this
// process holds.
func ownLeases(t *testing.T) []string {
	t.Helper()
	holder := `"holder":{"pid":` + strconv.Itoa(os.Getpid()) + ","
	var own []string
	filepath.WalkDir("/run/sandboxkit/net", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(holder)) {
			own = append(own, path)
		}
		return nil
	})
	return own
}

func TestPoolRun(t *testing.T) {
	sb, _ := busybox(t)
	before := testutil.SnapshotHost(t)
	p := newPool(t, sb.WithMemory(64<<20), 2)
	for i := range 5 {
		res, err := p.Run(testCtx(t), "sh", "-c", "echo hello; echo err >&2; exit 3")
		require.NoError(t, err, "run %d", i)
		assert.Equal(t, 3, res.ExitCode)
		assert.Equal(t, "hello\n", string(res.Stdout))
		assert.Equal(t, "err\n", string(res.Stderr))
		assert.NotZero(t, res.MemoryPeak)
		assert.NotZero(t, res.CPU)
	}
	res, err := p.Run(testCtx(t), "sh", "-c", "kill -SEGV $$")
	require.NoError(t, err)
	assert.Equal(t, syscall.SIGSEGV, res.Signal)
	assert.Equal(t, -1, res.ExitCode)

	_, err = p.Run(testCtx(t), "no-such-command")
	assert.ErrorIs(t, err, fs.ErrNotExist, "Run of a command in no PATH directory")
	assert.Contains(t, err.Error(), "no-such-command")
	_, err = p.Run(testCtx(t), "/etc/passwd")
	assert.ErrorIs(t, err, syscall.EACCES, "Run of a file that is not executable")
	var se *spawn.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "exec /etc/passwd: permission denied", se.Error(), "the error names the path")
	st := p.Stats()
	assert.EqualValues(t, 8, st.Runs)
	assert.LessOrEqual(t, st.Ready, 2)
	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "Close is idempotent")
	_, err = p.Run(testCtx(t), "true")
	assert.ErrorIs(t, err, sandbox.ErrClosed, "Run after Close")
	requireNothingLeft(t, before)
}

func TestPoolRejectsBadDefinitionsAndJobs(t *testing.T) {
	sb, _ := busybox(t)
	for _, tt := range []struct {
		name  string
		sb    *sandbox.Sandbox
		size  int
		field string
	}{
		{"size", sb, 0, "size"},
		{"no init", sb.WithInit(false), 1, "init"},
		{"stdout", sb.WithStdout(os.Stdout), 1, "stdout"},
		{"bad definition", sb.WithMemory(-1), 1, "memory"},
	} {
		_, err := sandbox.NewPool(tt.sb, tt.size)
		var fe *sandbox.FieldError
		require.ErrorAs(t, err, &fe, tt.name)
		assert.Equal(t, tt.field, fe.Field, tt.name)
		assert.ErrorIs(t, err, sandbox.ErrInvalidConfig, tt.name)
	}
	p := newPool(t, sb.WithMemory(64<<20).WithTimeout(time.Minute), 1)
	for _, tt := range []struct {
		name  string
		job   *sandbox.Job
		field string
	}{
		{"no argv", sandbox.NewJob(), "argv"},
		{"looser memory", sandbox.NewJob("true").WithMemory(128 << 20), "memory"},
		{"pids the pool lacks", sandbox.NewJob("true").WithPids(10), "pids"},
		{"cpu the pool lacks", sandbox.NewJob("true").WithCPU(0.5), "cpu"},
		{"looser timeout", sandbox.NewJob("true").WithTimeout(time.Hour), "timeout"},
		{"relative file", sandbox.NewJob("true").WithFile("x.py", nil, 0o644), "file"},
		{"bad env", sandbox.NewJob("true").WithEnv("NOEQUALS"), "env"},
	} {
		_, err := p.RunJob(testCtx(t), tt.job)
		var fe *sandbox.FieldError
		require.ErrorAs(t, err, &fe, tt.name)
		assert.Equal(t, tt.field, fe.Field, tt.name)
	}
}

func TestPoolRunsAreFresh(t *testing.T) {
	sb, _ := busybox(t)
	p := newPool(t, sb, 4)
	// Each run looks for what an earlier one left: a file in / and in
	// /tmp, a process in the background.
	const script = `ls /left /tmp/left 2>/dev/null; ps -o comm | grep -c sleep; echo > /left; echo > /tmp/left; sleep 100 &`
	for i := range 4 {
		res, err := p.Run(testCtx(t), "sh", "-c", script)
		require.NoError(t, err)
		assert.Equal(t, "0\n", string(res.Stdout), "run %d sees no file nor process of an earlier run: %s", i, res.Stderr)
	}
	// Runs at once have namespaces of their own (a namespace's number
	// is reused once it is gone: only those alive together can differ).
	const ns = `for ns in pid mnt net uts cgroup ipc; do readlink /proc/self/ns/$ns; done; sleep 0.5`
	var mu sync.Mutex
	var wg sync.WaitGroup
	seen := map[string]int{}
	for i := range 4 {
		wg.Go(func() {
			res, err := p.Run(testCtx(t), "sh", "-c", ns)
			assert.NoError(t, err)
			mu.Lock()
			defer mu.Unlock()
			for _, n := range strings.Fields(string(res.Stdout)) {
				seen[n]++
			}
			assert.Len(t, strings.Fields(string(res.Stdout)), 6, "run %d: %s", i, res.Stderr)
		})
	}
	wg.Wait()
	for n, count := range seen {
		assert.Equal(t, 1, count, "namespace %s was shared by runs at once", n)
	}
}

func TestPoolLimits(t *testing.T) {
	sb, _ := busybox(t)
	// The timeout leaves the memory hogs time to reach their limits on
	// the VM lane's emulated CPUs; the timeout tests tighten it per job.
	p := newPool(t, sb.WithMemory(64<<20).WithPids(32).WithTimeout(20*time.Second).WithOutputLimit(1000), 2)
	ctx := testCtx(t)

	res, err := p.Run(ctx, "sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo $x")
	require.NoError(t, err)
	assert.True(t, res.OOMKilled, "a memory hog over the pool's 64 MiB: %v", res)

	res, err = p.RunJob(ctx, sandbox.NewJob("sh", "-c", "x=$(head -c 30000000 /dev/zero | tr '\\0' a); echo ${#x}").WithMemory(16<<20))
	require.NoError(t, err)
	assert.True(t, res.OOMKilled, "a 30 MB hog under the job's 16 MiB: %v", res)
	res, err = p.Run(ctx, "sh", "-c", "x=$(head -c 30000000 /dev/zero | tr '\\0' a); echo ${#x}")
	require.NoError(t, err)
	assert.False(t, res.OOMKilled, "the next run has the pool's limit again: %v %s", res, res.Stderr)

	res, err = p.RunJob(ctx, sandbox.NewJob("sh", "-c", "for i in $(seq 20); do sleep 5 & done; wait").WithPids(8).WithTimeout(time.Second))
	require.NoError(t, err)
	assert.Contains(t, string(res.Stderr), "fork", "the job's pids limit of 8 refuses the 9th process: %v", res)

	res, err = p.Run(ctx, "sh", "-c", "for i in $(seq 40); do sleep 5 & done; wait")
	require.NoError(t, err)
	assert.Contains(t, string(res.Stderr), "fork", "the pool's pids limit of 32")

	res, err = p.RunJob(ctx, sandbox.NewJob("sleep", "10").WithTimeout(200*time.Millisecond))
	require.NoError(t, err)
	assert.True(t, res.TimedOut, "the job's timeout: %v", res)
	assert.Equal(t, syscall.SIGKILL, res.Signal)
	assert.Less(t, res.Wall, 3*time.Second)

	res, err = p.RunJob(ctx, sandbox.NewJob("sh", "-c", "while :; do echo spam; done").WithTimeout(time.Second))
	require.NoError(t, err)
	assert.True(t, res.TimedOut, "the timeout ends endless output")
	assert.True(t, res.StdoutTruncated)
	assert.Len(t, res.Stdout, 1000, "the pool's output limit")

	res, err = p.RunJob(ctx, sandbox.NewJob("sh", "-c", "echo 0123456789abcdef").WithOutputLimit(10))
	require.NoError(t, err)
	assert.Equal(t, "0123456789", string(res.Stdout), "the job's output limit")
	assert.True(t, res.StdoutTruncated)

	res, err = p.RunJob(ctx, sandbox.NewJob("sh", "-c", "while :; do echo spam; done").WithKillOnOutputLimit(true))
	require.NoError(t, err)
	assert.True(t, res.StdoutTruncated)
	assert.Equal(t, syscall.SIGKILL, res.Signal, "killed once its output passed the limit")
	assert.False(t, res.TimedOut)
	assert.Less(t, res.Wall, time.Second)

	cpu := newPool(t, sb.WithCPU(1).WithTimeout(time.Second), 1)
	for _, tt := range []struct {
		job  *sandbox.Job
		want time.Duration // CPU time of a second of spinning, at most
	}{
		{sandbox.NewJob("sh", "-c", "while :; do :; done"), 1500 * time.Millisecond},
		{sandbox.NewJob("sh", "-c", "while :; do :; done").WithCPU(0.1), 400 * time.Millisecond},
	} {
		res, err := cpu.RunJob(ctx, tt.job)
		require.NoError(t, err)
		assert.True(t, res.TimedOut)
		assert.Less(t, res.CPU, tt.want, "a second of spinning under the job's CPU limit: %v", res.CPU)
	}

	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	res, err = p.Run(short, "sleep", "10")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "ctx ends the run")
	require.NotNil(t, res)
	assert.False(t, res.TimedOut)
}

func TestPoolJobInput(t *testing.T) {
	sb, _ := busybox(t)
	p := newPool(t, sb.WithUser(1000, 1000).WithEnv("A=pool", "B=pool"), 2)
	job := sandbox.NewJob("sh", "-c", `cat /tmp/main.txt; ls -ln /tmp/main.txt | awk '{print $1, $3}'; echo $A $B $C; id -u; tr a-z A-Z`).
		WithFile("/tmp/main.txt", []byte("source\n"), 0o640).
		WithEnv("B=job", "C=job").
		WithStdin(strings.NewReader("from stdin\n"))
	res, err := p.RunJob(testCtx(t), job)
	require.NoError(t, err)
	assert.Equal(t, "source\n-rw-r----- 1000\npool job job\n1000\nFROM STDIN\n", string(res.Stdout), "stderr: %s", res.Stderr)

	res, err = p.Run(testCtx(t), "sh", "-c", "cat /tmp/main.txt; echo $C; cat")
	require.NoError(t, err)
	assert.Equal(t, "\n", string(res.Stdout), "the next run has no file, env or stdin of the last")

	big := bytes.Repeat([]byte("x"), 1<<20)
	res, err = p.RunJob(testCtx(t), sandbox.NewJob("wc", "-c").WithStdin(bytes.NewReader(big)))
	require.NoError(t, err)
	assert.Equal(t, "1048576", strings.TrimSpace(string(res.Stdout)))

	_, err = p.RunJob(testCtx(t), sandbox.NewJob("true").WithFile("/etc/cant", nil, 0o644))
	assert.ErrorIs(t, err, fs.ErrPermission, "the job's files are written as the sandbox's user")
}

func TestPoolBurstLargerThanThePool(t *testing.T) {
	sb, _ := busybox(t)
	before := testutil.SnapshotHost(t)
	const size, burst = 2, 12
	p := newPool(t, sb, size)
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	var worst int
	sampler.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			inUse := p.Stats().InUse
			n := len(testutil.OwnCgroups(t))
			inUse = max(inUse, p.Stats().InUse)
			if over := n - (size + inUse); over > worst {
				worst = over
			}
			time.Sleep(time.Millisecond)
		}
	})
	var wg sync.WaitGroup
	errs := make([]error, burst)
	for i := range burst {
		wg.Go(func() {
			res, err := p.Run(testCtx(t), "sh", "-c", "sleep 0.2; echo done")
			if err == nil && string(res.Stdout) != "done\n" {
				err = errors.New("wrong output: " + string(res.Stdout))
			}
			errs[i] = err
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "run %d of the burst", i)
	}
	assert.LessOrEqual(t, worst, 0, "the pool held more sandboxes than its size plus the runs in flight")
	st := p.Stats()
	assert.NotZero(t, st.StartedCold, "a burst of %d in a pool of %d starts some cold", burst, size)
	require.Eventually(t, func() bool { return p.Stats().Ready == size }, 10*time.Second, time.Millisecond, "the pool refills")
	assert.Positive(t, p.Stats().RefillRate)
	t.Logf("%+v", st)
	require.NoError(t, p.Close())
	requireNothingLeft(t, before)
}

func TestPoolCloseWhileRunsAreInFlight(t *testing.T) {
	sb, _ := busybox(t)
	before := testutil.SnapshotHost(t)
	p := newPool(t, sb, 2)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { _, errs[i] = p.Run(testCtx(t), "sleep", "30") })
	}
	require.Eventually(t, func() bool { return p.Stats().InUse == 3 }, 10*time.Second, time.Millisecond)
	time.Sleep(100 * time.Millisecond) // all three started
	start := time.Now()
	require.NoError(t, p.Close())
	wg.Wait()
	assert.Less(t, time.Since(start), 10*time.Second)
	for i, err := range errs {
		assert.ErrorIs(t, err, sandbox.ErrClosed, "run %d, in flight when Close was called", i)
	}
	requireNothingLeft(t, before)
}

// A pool dies with its crashed caller: prepared sandboxes with it (their
// PID 1 dies with the thread that cloned it), and Collect removes their
// cgroups.
func TestPoolDiesWithACrashedCaller(t *testing.T) {
	testutil.RequireRoot(t)
	root := testutil.Rootfs(t)
	left := crashedRun(t, root, "pool")
	require.NotEmpty(t, left, "the killed caller's pool had cgroups")
	require.Eventually(t, func() bool {
		return sandbox.Collect(testCtx(t)) == nil && len(deadOwners(t)) == 0
	}, 10*time.Second, 50*time.Millisecond, "the pool's sandboxes must die with their caller: %v", deadOwners(t))
}

// deadOwners lists the sandbox cgroups whose owner process is gone (other
// sandboxes on the machine may be running).
func deadOwners(t *testing.T) []string {
	var dead []string
	for _, dir := range testutil.SandboxCgroups(t) {
		pid, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), "sandboxkit-"), "-")
		if _, err := strconv.Atoi(pid); err != nil {
			continue // not a sandbox's (another tool's of the same prefix)
		}
		if _, err := os.Stat("/proc/" + pid); err != nil {
			dead = append(dead, dir)
		}
	}
	return dead
}

func TestSandboxRunJob(t *testing.T) {
	sb, _ := busybox(t)
	job := sandbox.NewJob("sh", "-c", "cat /tmp/in; echo $A; cat; while :; do echo spam; done").
		WithFile("/tmp/in", []byte("file\n"), 0o644).WithEnv("A=env").WithStdin(strings.NewReader("stdin\n")).
		WithOutputLimit(100).WithKillOnOutputLimit(true)
	res, err := sb.WithTimeout(10*time.Second).RunJob(testCtx(t), job)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(res.Stdout), "file\nenv\nstdin\nspam\n"), "%q", res.Stdout)
	assert.Len(t, res.Stdout, 100)
	assert.Equal(t, syscall.SIGKILL, res.Signal, "killed for its output")
	assert.False(t, res.TimedOut)
}

// A prepared sandbox's PID 1 is the init, a fresh image, holding only its
// status pipe once the program runs: nothing of the host process that
// prepared it.
func TestPoolSandboxHoldsNothingOfTheHost(t *testing.T) {
	sb, _ := busybox(t)
	t.Setenv("SANDBOXKIT_HOST_SECRET", "hunter2")
	p := newPool(t, sb, 1)
	res, err := p.Run(testCtx(t), "sh", "-c", "ls /proc/1/fd | tr '\\n' ' '; echo; readlink /proc/1/exe; cat /proc/1/environ /proc/1/cmdline | tr '\\0' ' '")
	require.NoError(t, err)
	lines := strings.Split(string(res.Stdout), "\n")
	require.GreaterOrEqual(t, len(lines), 3, "%s %s", res.Stdout, res.Stderr)
	assert.Equal(t, "4 ", lines[0], "the init holds its status pipe only")
	assert.Contains(t, lines[1], "memfd:sandboxkit-exec", "PID 1 is the sealed init, not the host binary")
	assert.NotContains(t, string(res.Stdout), "hunter2")
}

// Pools of every kind of sandbox: in a user namespace, on the host's
// network, as another user, on a bridge.
func TestPoolKinds(t *testing.T) {
	sb, _ := busybox(t)
	n, subnet := testBridge(t)
	for name, sb := range map[string]*sandbox.Sandbox{
		"userns":         sb.WithUserNamespace(),
		"host network":   sb.WithNetwork(sandbox.HostNetwork()),
		"userns on host": sb.WithUserNamespace().WithNetwork(sandbox.HostNetwork()),
		"user":           sb.WithUser(1000, 1000),
		"bridge":         sb.WithNetwork(n),
		"userns bridge":  sb.WithUserNamespace().WithNetwork(n),
	} {
		t.Run(name, func(t *testing.T) {
			before := testutil.SnapshotHost(t)
			p := newPool(t, sb, 2)
			for range 3 {
				res, err := p.RunJob(testCtx(t), sandbox.NewJob("sh", "-c", "cat /tmp/f; id -u").WithFile("/tmp/f", []byte("file\n"), 0o644))
				require.NoError(t, err)
				assert.Equal(t, 0, res.ExitCode, "%v: %s", res, res.Stderr)
				assert.True(t, strings.HasPrefix(string(res.Stdout), "file\n"), "%q", res.Stdout)
				if strings.Contains(name, "bridge") {
					require.NotNil(t, res.Network)
					assert.True(t, subnet.Contains(res.Network.IP))
					assert.NotEmpty(t, ownLeases(t), "the prepared sandboxes hold leases")
				}
			}
			require.NoError(t, p.Close())
			requireNothingLeft(t, before)
		})
	}
}

// A pool on an OCI image: the image's layers, user and environment, a
// fresh overlay on them per run.
func TestPoolOnAnImage(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := imageCtx(t)
	top := layerOf(t, layerTar(t, entry{name: "srv/", typ: '5'}, entry{name: "srv/hello", body: "from the image\n"}))
	cfg := v1.Config{Env: []string{"PATH=/bin", "GREETING=hi"}, User: "user", WorkingDir: "/srv"}
	img, err := newStore(t).Load(ctx, writeLayout(t, busyboxImage(t, cfg, top)))
	require.NoError(t, err)
	before := testutil.SnapshotHost(t)
	p := newPool(t, sandbox.New(img), 2)
	for i := range 3 {
		res, err := p.Run(ctx, "sh", "-c", `cat hello; echo "$GREETING $(id -u)"; ls /left 2>/dev/null; touch /left`)
		require.NoError(t, err)
		assert.Equal(t, "from the image\nhi 1000\n", string(res.Stdout), "run %d: %s", i, res.Stderr)
	}
	require.NoError(t, p.Close())
	requireNothingLeft(t, before)
}

// A prepared sandbox whose init was killed while it waited is not used:
// the run takes, or makes, another.
func TestPoolSkipsAKilledSandbox(t *testing.T) {
	sb, _ := busybox(t)
	p := newPool(t, sb, 2)
	require.Eventually(t, func() bool { return p.Stats().Ready == 2 }, 10*time.Second, time.Millisecond)
	kids := testutil.Children(t)
	require.Len(t, kids, 2, "the two prepared sandboxes' inits")
	for _, pid := range kids {
		n, err := strconv.Atoi(pid)
		require.NoError(t, err)
		require.NoError(t, syscall.Kill(n, syscall.SIGKILL))
	}
	for i := range 3 {
		res, err := p.Run(testCtx(t), "echo", "fine")
		require.NoError(t, err, "run %d after its prepared sandboxes were killed", i)
		assert.Equal(t, "fine\n", string(res.Stdout))
	}
}
