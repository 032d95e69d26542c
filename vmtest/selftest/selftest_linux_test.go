//go:build vmtest

package selftest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const cgroupRoot = "/sys/fs/cgroup"

// requireVM skips the test unless it runs inside the vmtest VM.
func requireVM(t *testing.T) {
	t.Helper()
	if os.Getenv("VMTEST") != "1" {
		t.Skip("runs only inside the vmtest VM: VMTEST_PKG=./vmtest/selftest vmtest/run.sh")
	}
}

func TestPureCgroup2(t *testing.T) {
	requireVM(t)
	var st unix.Statfs_t
	require.NoError(t, unix.Statfs(cgroupRoot, &st), "statfs(%s)", cgroupRoot)
	assert.Equal(t, int64(unix.CGROUP2_SUPER_MAGIC), int64(st.Type), "statfs(%s).Type: want cgroup2", cgroupRoot)

	mounts, err := os.ReadFile("/proc/self/mounts")
	require.NoError(t, err)
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 2 {
			assert.NotEqual(t, "cgroup", f[2], "cgroup v1 mount in /proc/self/mounts: %s", line)
		}
	}

	controllers := readFields(t, filepath.Join(cgroupRoot, "cgroup.controllers"))
	for _, c := range []string{"cpu", "cpuset", "io", "memory", "pids", "hugetlb"} {
		assert.Contains(t, controllers, c, "cgroup.controllers")
	}
	assert.ElementsMatch(t, controllers, readFields(t, filepath.Join(cgroupRoot, "cgroup.subtree_control")),
		"cgroup.subtree_control: want every controller enabled")
	t.Logf("controllers: %s", strings.Join(controllers, " "))
}

func TestChildCgroupMemory(t *testing.T) {
	requireVM(t)
	dir := filepath.Join(cgroupRoot, "selftest-"+strconv.Itoa(os.Getpid()))
	require.NoError(t, os.Mkdir(dir, 0o755))
	t.Cleanup(func() { assert.NoError(t, os.Remove(dir), "rmdir %s", dir) })

	for _, f := range []string{"memory.max", "memory.peak", "memory.events", "pids.max", "cpu.max", "io.max", "cgroup.kill"} {
		assert.FileExists(t, filepath.Join(dir, f))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "memory.max"), []byte("67108864"), 0))
	assert.Equal(t, []string{"67108864"}, readFields(t, filepath.Join(dir, "memory.max")))

	// CLONE_INTO_CGROUP, as the SDK starts sandboxes.
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	cmd := exec.Command("/bin/sh", "-c", "cat /proc/self/cgroup")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	out, err := cmd.Output()
	require.NoError(t, err, "run sh in %s", dir)
	assert.Equal(t, "0::/"+filepath.Base(dir)+"\n", string(out), "/proc/self/cgroup of a child started in %s", dir)
	assert.NotEqual(t, []string{"0"}, readFields(t, filepath.Join(dir, "memory.peak")), "memory.peak after a run")
}

func TestBusybox(t *testing.T) {
	requireVM(t)
	out, err := exec.Command("/bin/sh", "-c", "echo $(cat /etc/hostname 2>/dev/null || hostname) && true && sleep 0").Output()
	require.NoError(t, err, "/bin/sh -c ...")
	assert.Equal(t, "vmtest\n", string(out))
	for _, p := range []string{"/bin/sh", "/bin/cat", "/bin/echo", "/bin/sleep", "/bin/true", "/usr/bin/env"} {
		_, err := os.Stat(p)
		assert.NoError(t, err, "stat %s", p)
	}
}

func TestOverlay(t *testing.T) {
	requireVM(t)
	filesystems, err := os.ReadFile("/proc/filesystems")
	require.NoError(t, err)
	assert.Contains(t, string(filesystems), "\toverlay\n", "/proc/filesystems")

	base := t.TempDir()
	lower, upper, work, merged := filepath.Join(base, "lower"), filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{lower, upper, work, merged} {
		require.NoError(t, os.Mkdir(d, 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(lower, "a"), []byte("lower"), 0o644))
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	require.NoError(t, unix.Mount("overlay", merged, "overlay", 0, opts), "mount overlay %s", opts)
	t.Cleanup(func() { assert.NoError(t, unix.Unmount(merged, 0)) })

	require.NoError(t, os.WriteFile(filepath.Join(merged, "a"), []byte("upper"), 0o644))
	b, err := os.ReadFile(filepath.Join(upper, "a"))
	require.NoError(t, err, "copy-up into upperdir")
	assert.Equal(t, "upper", string(b))
	b, err = os.ReadFile(filepath.Join(lower, "a"))
	require.NoError(t, err)
	assert.Equal(t, "lower", string(b), "lowerdir must stay unchanged")
}

// TestPivotRoot checks that pivot_root works, which it does not on the
// initramfs rootfs that vmtest/init switches away from.
func TestPivotRoot(t *testing.T) {
	requireVM(t)
	dir := t.TempDir()
	errc := make(chan error, 1)
	go func() {
		// The thread's mount namespace changes, so it must die with the goroutine.
		runtime.LockOSThread()
		errc <- pivot(dir)
	}()
	require.NoError(t, <-errc)
}

func pivot(dir string) error {
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
		return err
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, ""); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(dir, "old"), 0o755); err != nil {
		return err
	}
	return unix.PivotRoot(dir, filepath.Join(dir, "old"))
}

func TestVethBridge(t *testing.T) {
	requireVM(t)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "selftest-br"}}
	require.NoError(t, netlink.LinkAdd(br), "add bridge")
	t.Cleanup(func() { assert.NoError(t, netlink.LinkDel(br)) })
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "selftest-h"}, PeerName: "selftest-c"}
	require.NoError(t, netlink.LinkAdd(veth), "add veth pair")
	t.Cleanup(func() { assert.NoError(t, netlink.LinkDel(veth)) })

	require.NoError(t, netlink.LinkSetMaster(veth, br))
	require.NoError(t, netlink.LinkSetUp(veth))
	addr, err := netlink.ParseAddr("10.231.0.1/24")
	require.NoError(t, err)
	require.NoError(t, netlink.AddrAdd(br, addr))
	peer, err := netlink.LinkByName("selftest-c")
	require.NoError(t, err, "peer of the veth pair")
	assert.Equal(t, "veth", peer.Type())
}

func TestNftablesNAT(t *testing.T) {
	requireVM(t)
	c, err := nftables.New()
	require.NoError(t, err)
	table := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "selftest"})
	post := c.AddChain(&nftables.Chain{
		Name: "post", Table: table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	pre := c.AddChain(&nftables.Chain{
		Name: "pre", Table: table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest,
	})
	c.AddRule(&nftables.Rule{Table: table, Chain: post, Exprs: []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{8, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Masq{},
	}})
	c.AddRule(&nftables.Rule{Table: table, Chain: pre, Exprs: []expr.Any{&expr.Redir{}}})
	require.NoError(t, c.Flush(), "create table inet selftest with masquerade, redirect and ct rules")
	t.Cleanup(func() {
		c.DelTable(table)
		assert.NoError(t, c.Flush(), "delete table inet selftest")
	})

	rules, err := c.GetRules(table, post)
	require.NoError(t, err)
	assert.Len(t, rules, 1, "rules in inet selftest post")
}

func TestModulesLoaded(t *testing.T) {
	requireVM(t)
	b, err := os.ReadFile("/proc/modules")
	require.NoError(t, err)
	var loaded []string
	for _, line := range bytes.Split(b, []byte("\n")) {
		if f := strings.Fields(string(line)); len(f) > 0 {
			loaded = append(loaded, f[0])
		}
	}
	for _, m := range []string{"overlay", "veth", "bridge", "nf_tables", "nf_conntrack", "nf_nat", "nft_ct", "nft_chain_nat", "nft_masq", "nft_redir"} {
		assert.Contains(t, loaded, m, "/proc/modules")
	}
	t.Logf("modules: %s", strings.Join(loaded, " "))
}

func readFields(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err, "read %s", path)
	return strings.Fields(string(b))
}
