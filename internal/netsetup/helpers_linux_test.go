package netsetup

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/testutil"
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testConfig returns a Config with a unique bridge ("sbxt" + random), a random
// 10.210.x.0/24 subnet and a temporary state dir. It registers, in this
// order, the restoration of ip_forward, a check that nothing of the bridge
// and no namespace file is left, and RemoveBridge; so cleanups registered
// later (namespaces, Detach) run before both.
func testConfig(t testing.TB) Config {
	t.Helper()
	testutil.RequireRoot(t)
	var b [1]byte
	_, _ = rand.Read(b[:])
	cfg := Config{
		Bridge:   "sbxt" + randHex(3),
		Subnet:   netip.MustParsePrefix(fmt.Sprintf("10.210.%d.0/24", b[0])),
		StateDir: t.TempDir(),
	}
	before := linkNames(t)
	fdsBefore := netnsFds(t)
	// attach turns on ip_forward for good, as Docker does; tests put it back.
	forward, err := os.ReadFile(ipForwardPath)
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.WriteFile(ipForwardPath, forward, 0o644) })
	t.Cleanup(func() {
		checkNoLeaks(t, cfg, before)
		assert.Equal(t, fdsBefore, netnsFds(t), "open network namespace files")
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, RemoveBridge(ctx, cfg), "RemoveBridge(%s)", cfg.Bridge)
	})
	return cfg
}

func linkNames(t testing.TB) map[string]bool {
	var links []netlink.Link
	err := RetryDump(func() (err error) {
		links, err = netlink.LinkList()
		return err
	})
	require.NoError(t, err, "LinkList")
	m := make(map[string]bool)
	for _, l := range links {
		m[l.Attrs().Name] = true
	}
	return m
}

// checkNoLeaks verifies that no link, nft table or state entry of cfg's
// bridge remains. Veths of exited sandboxes disappear asynchronously, with
// their namespace, so links are polled for a short while.
func checkNoLeaks(t testing.TB, cfg Config, before map[string]bool) {
	t.Helper()
	// The kernel destroys dead namespaces, and the veths in them, in
	// batches on a shared work queue: give it the time the root package
	// gives it. Links of others (not sbx*) are not this test's.
	assert.Eventually(t, func() bool {
		for name := range linkNames(t) {
			if strings.HasPrefix(name, "sbx") && !before[name] {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "links created by the test remain: before=%v", before)
	c, err := nftables.New()
	require.NoError(t, err)
	_, err = c.ListTableOfFamily(tableName(cfg.Bridge), nftables.TableFamilyIPv4)
	assert.Error(t, err, "nft table %s remains", tableName(cfg.Bridge))
	_, err = os.Stat(filepath.Join(cfg.StateDir, cfg.Bridge))
	assert.ErrorIs(t, err, os.ErrNotExist, "state dir of %s remains", cfg.Bridge)
}

// newNetns returns a fresh network namespace from makeNetns, standing in for
// a sandbox's, and closes it at cleanup unless the test closed it already.
func newNetns(t testing.TB) *os.File {
	t.Helper()
	ns, err := makeNetns()
	require.NoError(t, err, "makeNetns")
	t.Cleanup(func() { ns.Close() })
	return ns
}

// netnsFds counts the calling process's open network namespace files.
func netnsFds(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && strings.HasPrefix(target, "net:[") {
			n++
		}
	}
	return n
}

// netnsHandle returns a netlink handle inside the namespace ns.
func netnsHandle(t testing.TB, ns *os.File) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(netns.NsHandle(int(ns.Fd())), unix.NETLINK_ROUTE)
	require.NoError(t, err)
	t.Cleanup(h.Close)
	return h
}

// serveTCP listens on addr inside the namespace ns. Each connection is
// answered with the peer's address on one line, then echoed. The listener,
// made on a thread in ns, stays in ns; it is served from ordinary goroutines.
func serveTCP(t testing.TB, ns *os.File, addr string) {
	t.Helper()
	var ln net.Listener
	require.NoError(t, InNetns(ns, func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	}), "listen on %s in %s", addr, ns.Name())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				fmt.Fprintln(c, c.RemoteAddr().(*net.TCPAddr).IP)
				_, _ = bufio.NewReader(c).WriteTo(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
}

// serveUDP echoes datagrams on addr inside the namespace ns, prefixed with
// the sender's address and a space.
func serveUDP(t testing.TB, ns *os.File, addr string) {
	t.Helper()
	var pc net.PacketConn
	require.NoError(t, InNetns(ns, func() (err error) {
		pc, err = net.ListenPacket("udp4", addr)
		return err
	}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			msg := from.(*net.UDPAddr).IP.String() + " " + string(buf[:n])
			_, _ = pc.WriteTo([]byte(msg), from)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
}

// talkTCP connects to addr (from the namespace ns, or from the test's own
// namespace if ns is nil), sends msg and returns the peer address the server
// reported and the echo.
func talkTCP(t testing.TB, ns *os.File, addr, msg string) (peer, echo string, err error) {
	t.Helper()
	var c net.Conn
	dial := func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, 3*time.Second) // a lost SYN is resent after 1 s
		return err
	}
	if ns == nil {
		err = dial()
	} else {
		err = InNetns(ns, dial)
	}
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprint(c, msg); err != nil {
		return "", "", err
	}
	_ = c.(*net.TCPConn).CloseWrite()
	r := bufio.NewReader(c)
	peer, err = r.ReadString('\n')
	if err != nil {
		return "", "", err
	}
	rest, err := r.ReadString(0)
	if err != nil && rest == "" && msg != "" {
		return "", "", err
	}
	return strings.TrimSpace(peer), rest, nil
}
