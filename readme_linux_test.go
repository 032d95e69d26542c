package sandbox_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// The README's examples, run as written. Each test first checks that the
// README still holds the lines it runs, so that the two cannot drift.

func requireInReadme(t *testing.T, lines ...string) {
	t.Helper()
	if os.Getenv("VMTEST") == "1" {
		// The VM lane runs the test binary on a minimal root of its own,
		// without the repository or the host's tools.
		t.Skip("the README's examples run in the host lane")
	}
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	for _, l := range lines {
		require.Contains(t, string(b), l, "README.md must still show this line of the example the test runs")
	}
}

func TestReadmeFirstExample(t *testing.T) {
	testutil.RequireRoot(t)
	requireInReadme(t, `sb := sandbox.New(sandbox.HostRoot()). // or sandbox.Dir("/srv/rootfs")`,
		`res, err := sb.Run(ctx, "/bin/sh", "-c", "echo hi")`)
	ctx := testCtx(t)
	sb := sandbox.New(sandbox.HostRoot()). // or sandbox.Dir("/srv/rootfs")
						WithMemory(64 << 20). // bytes, memory+swap
						WithCPU(0.5).         // cores
						WithPids(32).
						WithTimeout(2 * time.Second) // wall-clock limit of the run
	res, err := sb.Run(ctx, "/bin/sh", "-c", "echo hi")
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
	assert.Equal(t, "hi\n", string(res.Stdout))
	assert.Positive(t, res.MemoryPeak)
	assert.False(t, res.OOMKilled || res.TimedOut)
}

func TestReadmeCodeExecution(t *testing.T) {
	testutil.RequireRoot(t)
	requireInReadme(t, `WithFile("/work/main.py", source, 0o644).`, `Run(ctx, "python3", "main.py")`)
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		testutil.SkipOrFail(t, "the README's code-execution example runs python3 from the host's root; run: apt-get install python3")
	}
	ctx := testCtx(t)
	source := []byte("print(sum(range(10)))\n")
	res, err := sandbox.New(sandbox.HostRoot()).
		WithUser(1000, 1000).
		WithReadOnlyRoot().
		WithTmpfs("/work", 64<<20).
		WithFile("/work/main.py", source, 0o644).
		WithWorkdir("/work").
		WithMemory(256<<20).WithPids(64).WithTimeout(5*time.Second).
		Run(ctx, "python3", "main.py")
	require.NoError(t, err)
	assert.Equal(t, "45\n", string(res.Stdout), "stderr: %s", res.Stderr)
}

func TestReadmeServerPerTest(t *testing.T) {
	testutil.RequireRoot(t)
	requireInReadme(t,
		`n := sandbox.Bridge(sandbox.BridgeName("testnet"), sandbox.Subnet(netip.MustParsePrefix("10.77.0.0/24")))`,
		`in, err := sandbox.New(sandbox.HostRoot()).WithNetwork(n).WithPublish(0, 80).`,
		`Start(ctx, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")`,
		`err = in.WaitReady(ctx, sandbox.ForHTTP(80, "/hostname").Within(10*time.Second))`,
		`url := fmt.Sprintf("http://127.0.0.1:%d/hostname", in.Ports()[0].HostPort) // or in.IP() on port 80`)
	if routed(t, netip.MustParsePrefix("10.77.0.0/24")) {
		testutil.SkipOrFail(t, "the README's example uses 10.77.0.0/24, which this host routes already")
	}
	testutil.KeepIPForward(t)
	ctx := testCtx(t)

	n := sandbox.Bridge(sandbox.BridgeName("testnet"), sandbox.Subnet(netip.MustParsePrefix("10.77.0.0/24")))
	defer sandbox.RemoveBridge(context.Background(), n) // once no sandbox uses it
	in, err := sandbox.New(sandbox.HostRoot()).WithNetwork(n).WithPublish(0, 80).
		Start(ctx, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
	require.NoError(t, err)
	defer in.Close()
	err = in.WaitReady(ctx, sandbox.ForHTTP(80, "/hostname").Within(10*time.Second))
	require.NoError(t, err)
	url := fmt.Sprintf("http://127.0.0.1:%d/hostname", in.Ports()[0].HostPort) // or in.IP() on port 80

	resp, err := http.Get(url)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	hostname, err := os.ReadFile("/etc/hostname")
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(string(hostname)), strings.TrimSpace(string(b)), "it serves the root's /etc")
	assert.True(t, netip.MustParsePrefix("10.77.0.0/24").Contains(in.IP()), "address %v", in.IP())
}

func TestReadmeLongLived(t *testing.T) {
	testutil.RequireRoot(t)
	requireInReadme(t,
		`in, err := sb.Start(ctx) // no argv: it idles until closed`,
		`err = in.WriteFile("/tmp/hello.sh", []byte("echo hello from $0\n"), 0o755)`,
		`res, err := in.Exec(ctx, "sh", "/tmp/hello.sh") // another process inside: its own Result`,
		`res, err = in.Command("sh", "-c", "id -u; pwd; echo $DEBUG").`,
		`WithUser(1000, 1000).WithWorkdir("/tmp").WithEnv("DEBUG=1").WithTimeout(5 * time.Second).Run(ctx)`,
		`p, err := in.Command("sh").WithTTY(sandbox.WindowSize{Rows: 24, Cols: 80}).`,
		`WithStdin(keys).WithStdout(screen).Start(ctx) // a terminal, as a shell service gives one`,
		`err = p.Resize(sandbox.WindowSize{Rows: 50, Cols: 120}) // SIGWINCH`,
		`err = in.CopyTo(ctx, "/tmp", tarStream)     // a tar stream in, as the sandbox's user`,
		`rc, err := in.CopyFrom(ctx, "/tmp/hello.sh") // and out; both resolved inside its root`,
		`err = in.Pause(ctx)                          // the cgroup freezer (v1 and v2)`)
	ctx := testCtx(t)
	sb := sandbox.New(sandbox.HostRoot())
	keysR, keys := io.Pipe()
	var screen strings.Builder
	tarStream := tarOf(t, &tar.Header{Name: "copied", Typeflag: tar.TypeReg, Mode: 0o644})

	in, err := sb.Start(ctx) // no argv: it idles until closed
	require.NoError(t, err)
	defer in.Close() // kills what runs, frees everything; idempotent
	err = in.WriteFile("/tmp/hello.sh", []byte("echo hello from $0\n"), 0o755)
	require.NoError(t, err)
	res, err := in.Exec(ctx, "sh", "/tmp/hello.sh") // another process inside: its own Result
	require.NoError(t, err)
	assert.Equal(t, "hello from /tmp/hello.sh\n", string(res.Stdout))
	res, err = in.Command("sh", "-c", "id -u; pwd; echo $DEBUG").
		WithUser(1000, 1000).WithWorkdir("/tmp").WithEnv("DEBUG=1").WithTimeout(5 * time.Second).Run(ctx)
	require.NoError(t, err)
	assert.Equal(t, "1000\n/tmp\n1\n", string(res.Stdout))
	p, err := in.Command("sh").WithTTY(sandbox.WindowSize{Rows: 24, Cols: 80}).
		WithStdin(keysR).WithStdout(&screen).Start(ctx) // a terminal, as a shell service gives one
	require.NoError(t, err)
	err = p.Resize(sandbox.WindowSize{Rows: 50, Cols: 120}) // SIGWINCH
	require.NoError(t, err)
	io.WriteString(keys, "stty size; exit 7\n")
	res, err = p.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, 7, res.ExitCode, "%q", screen.String())
	assert.Contains(t, screen.String(), "50 120")
	err = in.CopyTo(ctx, "/tmp", tarStream) // a tar stream in, as the sandbox's user
	require.NoError(t, err)
	rc, err := in.CopyFrom(ctx, "/tmp/hello.sh") // and out; both resolved inside its root
	require.NoError(t, err)
	_, data := untar(t, rc)
	rc.Close()
	assert.Equal(t, "echo hello from $0\n", data["hello.sh"])
	st, err := in.Stats() // memory now and peak, CPU, processes, eth0 bytes
	require.NoError(t, err)
	assert.Positive(t, st.Processes)
	err = in.Pause(ctx) // the cgroup freezer (v1 and v2)
	require.NoError(t, err)
	err = in.Resume(ctx)
	require.NoError(t, err)
	_, err = in.ReadFile("/tmp/copied")
	require.NoError(t, err)
}

func TestReadmePool(t *testing.T) {
	testutil.RequireRoot(t)
	requireInReadme(t, `pool, err := sandbox.NewPool(sandbox.New(sandbox.HostRoot()).WithUser(65534, 65534).`,
		`res, err := pool.RunJob(ctx, sandbox.NewJob("python3", "/tmp/main.py").`,
		`WithFile("/tmp/main.py", source, 0o644). // written as the sandbox's user`)
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		testutil.SkipOrFail(t, "the README's pool example runs python3 from the host's root; run: apt-get install python3")
	}
	ctx := testCtx(t)
	source := []byte("print(input()[::-1])\n")
	pool, err := sandbox.NewPool(sandbox.New(sandbox.HostRoot()).WithUser(65534, 65534).
		WithMemory(128<<20).WithPids(32).WithTimeout(5*time.Second), 8)
	require.NoError(t, err)
	defer pool.Close() // kills runs in flight, frees every sandbox; idempotent
	res, err := pool.RunJob(ctx, sandbox.NewJob("python3", "/tmp/main.py").
		WithFile("/tmp/main.py", source, 0o644). // written as the sandbox's user
		WithStdin(strings.NewReader("input")).
		WithMemory(64<<20). // per run, may only tighten the pool's
		WithKillOnOutputLimit(true))
	require.NoError(t, err)
	assert.Equal(t, "tupni\n", string(res.Stdout), "stderr: %s", res.Stderr)
	st := pool.Stats()
	assert.EqualValues(t, 1, st.Runs)
	require.NoError(t, pool.Close())
}
