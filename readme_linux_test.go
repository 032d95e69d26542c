package sandbox_test

import (
	"context"
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
		`res, _ := sandbox.New(sandbox.HostRoot()).WithNetwork(n).WithPublish(18080, 80).`,
		`Run(ctx, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")`)
	if routed(t, netip.MustParsePrefix("10.77.0.0/24")) {
		testutil.SkipOrFail(t, "the README's example uses 10.77.0.0/24, which this host routes already")
	}
	testutil.KeepIPForward(t)
	ctx := testCtx(t)

	n := sandbox.Bridge(sandbox.BridgeName("testnet"), sandbox.Subnet(netip.MustParsePrefix("10.77.0.0/24")))
	defer sandbox.RemoveBridge(context.Background(), n) // once no sandbox uses it
	ctx, stop := context.WithCancel(ctx)
	done := make(chan *sandbox.Result, 1)
	go func() { // until stop(); Result.Network has its address
		res, _ := sandbox.New(sandbox.HostRoot()).WithNetwork(n).WithPublish(18080, 80).
			Run(ctx, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
		done <- res
	}()
	// ... the test talks to http://127.0.0.1:18080/ ...
	var body string
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://127.0.0.1:18080/hostname")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond, "the sandbox's server must answer on 127.0.0.1:18080")
	hostname, err := os.ReadFile("/etc/hostname")
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(string(hostname)), strings.TrimSpace(body), "it serves the root's /etc")
	stop()
	res := <-done
	require.NotNil(t, res, "Run must return the server's result when stopped")
	require.NotNil(t, res.Network)
	assert.True(t, netip.MustParsePrefix("10.77.0.0/24").Contains(res.Network.IP), "address %v", res.Network.IP)
}
