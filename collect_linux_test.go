package sandbox_test

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// crashedRun runs a sandbox (variant: see crashEnv) from a child process
// that is killed mid-run, as a crash would, and returns the cgroups it left.
func crashedRun(t *testing.T, root, variant string) []string {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	// Whatever fails below, the caller is killed (the context ends it if
	// it never says "running") and what its sandbox left is collected.
	t.Cleanup(func() { sandbox.Collect(context.Background()) })
	cmd := exec.CommandContext(testCtx(t), self)
	cmd.Env = append(os.Environ(), crashEnv+"="+root+","+variant)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 64)
	n, _ := out.Read(buf) // the helper says "running" once its sandbox runs
	require.Contains(t, string(buf[:n]), "running")
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()
	return testutil.SandboxCgroups(t)
}

func TestCollectRemovesWhatACrashedCallerLeft(t *testing.T) {
	testutil.RequireRoot(t)
	root := testutil.Rootfs(t)
	left := crashedRun(t, root, "")
	require.NotEmpty(t, left, "a killed caller leaves its run's cgroup behind")
	for _, dir := range left {
		assert.True(t, strings.HasPrefix(filepath.Base(dir), "sandboxkit-"))
	}

	// A live run of this process must survive a concurrent Collect: it
	// runs until the test writes a byte to its stdin.
	hold, release := io.Pipe()
	t.Cleanup(func() { release.Close() })
	sb := sandbox.New(sandbox.Dir(root)).WithStdin(hold).WithTimeout(30 * time.Second)
	wait := runInBackground(t, sb, "head -c 1 >/dev/null")
	require.Eventually(t, func() bool { return len(testutil.SandboxCgroups(t)) > len(left) }, 5*time.Second, time.Millisecond)
	require.NoError(t, sandbox.Collect(testCtx(t)))
	live := testutil.SandboxCgroups(t)
	require.NotEmpty(t, live, "the live run's cgroups must survive Collect")
	for _, dir := range live {
		assert.Contains(t, filepath.Base(dir), "sandboxkit-"+strconv.Itoa(os.Getpid())+"-", "Collect must remove only cgroups of dead owners")
	}
	_, err := release.Write([]byte("x"))
	require.NoError(t, err)
	res, err := wait()
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
	assert.Empty(t, testutil.SandboxCgroups(t))
}

// The sandbox dies with the thread that started it (PR_SET_PDEATHSIG),
// whatever its user: the kernel clears that setting when a process
// changes its IDs, so the child sets it again after each change.
func TestSandboxDiesWithACrashedCaller(t *testing.T) {
	testutil.RequireRoot(t)
	root := testutil.Rootfs(t)
	for _, variant := range []string{"root", "user", "userns"} {
		t.Run(variant, func(t *testing.T) {
			left := crashedRun(t, root, variant)
			require.NotEmpty(t, left, "the killed caller's run had a cgroup")
			// A cgroup can be removed only once every process in it is
			// gone; Collect removes those of dead owners.
			require.Eventually(t, func() bool {
				return sandbox.Collect(testCtx(t)) == nil && len(testutil.SandboxCgroups(t)) == 0
			}, 10*time.Second, 50*time.Millisecond, "the sandbox must die with its caller: %v", testutil.SandboxCgroups(t))
		})
	}
}

// nftMentions reports whether a map of the bridge's nftables table holds
// an element naming ip.
func nftMentions(t *testing.T, bridge string, ip netip.Addr) bool {
	t.Helper()
	c, err := nftables.New()
	require.NoError(t, err)
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	require.NoError(t, err)
	a := ip.As4()
	for _, tb := range tables {
		if tb.Name != "sandboxkit_"+bridge {
			continue
		}
		sets, err := c.GetSets(tb)
		require.NoError(t, err)
		for _, s := range sets {
			els, err := c.GetSetElements(s)
			require.NoError(t, err)
			for _, e := range els {
				if bytes.Contains(e.Key, a[:]) || bytes.Contains(e.Val, a[:]) {
					return true
				}
			}
		}
	}
	return false
}

func TestCollectRemovesWhatACrashedBridgedCallerLeft(t *testing.T) {
	testutil.RequireRoot(t)
	root := testutil.Rootfs(t)
	for _, variant := range []string{"bridge", "bridge-dnat"} {
		t.Run(variant, func(t *testing.T) {
			var opts []sandbox.BridgeOption
			if variant == "bridge-dnat" {
				opts = append(opts, sandbox.PublishDNAT())
			}
			n, subnet := testBridge(t, opts...)
			name := bridgeName(n)
			before := testutil.SnapshotHost(t)
			crashedRun(t, root, variant+":"+name+":"+subnet.String())

			leases, err := filepath.Glob(filepath.Join("/run/sandboxkit/net", name, "*.lease"))
			require.NoError(t, err)
			require.Len(t, leases, 1, "a killed caller leaves its lease behind")
			ip, err := netip.ParseAddr(strings.SplitN(filepath.Base(leases[0]), "_", 2)[0])
			require.NoError(t, err)
			if variant == "bridge-dnat" {
				require.True(t, nftMentions(t, name, ip), "a killed caller leaves its DNAT entries behind")
			}

			require.NoError(t, sandbox.Collect(testCtx(t)))
			leases, err = filepath.Glob(filepath.Join("/run/sandboxkit/net", name, "*.lease"))
			require.NoError(t, err)
			assert.Empty(t, leases, "Collect frees a dead caller's lease")
			assert.False(t, nftMentions(t, name, ip), "Collect removes a dead caller's NAT entries")
			assert.Zero(t, bridgePorts(t, n), "no veth is left on the bridge")
			after := testutil.SnapshotHost(t)
			assert.Empty(t, after.Cgroups, "Collect removes the dead caller's cgroup; a process left in it would keep it")
			assert.Equal(t, before.Mounts, after.Mounts)
		})
	}
}

func TestInstancesDieWithACrashedCallerAndCollectRemovesTheRest(t *testing.T) {
	testutil.RequireRoot(t)
	root := testutil.Rootfs(t)
	n, subnet := testBridge(t)
	name := bridgeName(n)
	before := testutil.SnapshotHost(t)
	crashedRun(t, root, "instances:"+name+":"+subnet.String())
	// Every process of every instance died with the caller: their cgroups
	// are empty, which Collect's rmdir needs.
	require.NoError(t, sandbox.Collect(testCtx(t)))
	after := testutil.SnapshotHost(t)
	assert.Empty(t, after.Cgroups, "no cgroup, and so no process, is left")
	leases, err := filepath.Glob(filepath.Join("/run/sandboxkit/net", name, "*.lease"))
	require.NoError(t, err)
	assert.Empty(t, leases)
	assert.Zero(t, bridgePorts(t, n), "no veth is left")
	assert.Equal(t, before.Mounts, after.Mounts)
}
