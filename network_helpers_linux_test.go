package sandbox_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/netsetup"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// testBridge returns a bridge network of the test's own, on a random
// 10.211.x.0/24, removed with everything of ours when the test ends; and
// a check that nothing of it is left but the bridge.
func testBridge(t *testing.T, opts ...sandbox.BridgeOption) (sandbox.Network, netip.Prefix) {
	t.Helper()
	return testBridgeBits(t, 24, opts...)
}

// testBridgeBits is testBridge with a subnet of prefix length bits, 24 to
// 30: the first of a random 10.211.x.0/24.
func testBridgeBits(t *testing.T, bits int, opts ...sandbox.BridgeOption) (sandbox.Network, netip.Prefix) {
	t.Helper()
	var b [2]byte
	var subnet netip.Prefix
	for {
		rand.Read(b[:])
		subnet = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 211, b[0], 0}), bits)
		if !routed(t, subnet) { // another bridge of this test may have it
			break
		}
	}
	name := fmt.Sprintf("sbxt%04x", binary.BigEndian.Uint16(b[:]))
	n := sandbox.Bridge(append([]sandbox.BridgeOption{sandbox.BridgeName(name), sandbox.Subnet(subnet)}, opts...)...)
	testutil.KeepIPForward(t)
	t.Cleanup(func() {
		// t.Context() is done by now: RemoveBridge would give up at once
		// whenever another process holds the state lock.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, sandbox.RemoveBridge(ctx, n), "RemoveBridge")
		_, err := netlink.LinkByName(name)
		assert.Error(t, err, "bridge %s must be gone", name)
	})
	return n, subnet
}

// routed reports whether the host has a route inside subnet.
func routed(t *testing.T, subnet netip.Prefix) bool {
	var routes []netlink.Route
	require.NoError(t, netsetup.RetryDump(func() (err error) {
		routes, err = netlink.RouteList(nil, netlink.FAMILY_V4)
		return err
	}))
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if p, err := netip.ParsePrefix(r.Dst.String()); err == nil && p.Bits() > 0 && p.Overlaps(subnet) {
			return true
		}
	}
	return false
}

// bridgeName returns the name of n's bridge.
func bridgeName(n sandbox.Network) string { return strings.TrimPrefix(n.String(), "bridge ") }

// bridgePorts counts the interfaces attached to n's bridge.
func bridgePorts(t *testing.T, n sandbox.Network) int {
	br, err := netlink.LinkByName(bridgeName(n))
	require.NoError(t, err, "the bridge of %v must exist: its ports are counted", n)
	var links []netlink.Link
	require.NoError(t, netsetup.RetryDump(func() (err error) {
		links, err = netlink.LinkList()
		return err
	}))
	count := 0
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			count++
		}
	}
	return count
}

// echo sends msg to addr and returns the first line it gets back.
func echo(addr, msg string) string {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintln(c, msg)
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// hostLink adds a link of the test's own to the host, up, with address
// (CIDR), and removes it when the test ends.
func hostLink(t *testing.T, name, address string) {
	la := netlink.NewLinkAttrs()
	la.Name = name
	link := &netlink.Bridge{LinkAttrs: la}
	require.NoError(t, netlink.LinkAdd(link))
	t.Cleanup(func() { netlink.LinkDel(link) })
	addr, err := netlink.ParseAddr(address)
	require.NoError(t, err)
	require.NoError(t, netlink.AddrAdd(link, addr))
	require.NoError(t, netlink.LinkSetUp(link))
}

// hostServer listens on every address of the host, answers each
// connection with greeting, and returns the port; it stops with the test.
func hostServer(t *testing.T, greeting string) int {
	l, err := net.Listen("tcp", "0.0.0.0:0")
	require.NoError(t, err)
	serveLines(t, l, func(net.Conn) string { return greeting })
	return l.Addr().(*net.TCPAddr).Port
}

// serveLines answers each connection to l with the line answer gives for
// it, then hangs up; l is closed when the test ends.
func serveLines(t *testing.T, l net.Listener, answer func(net.Conn) string) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, answer(c))
			c.Close()
		}
	}()
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// outsideHost makes a host of the test's own, "outside" the machine: a
// network namespace joined to the host by a veth, the host at 198.51.100.1
// and the outside host at 198.51.100.2 (a documentation range), running a
// TCP server that answers each connection with the address it came from.
// It returns the server's address.
func outsideHost(t *testing.T) string {
	t.Helper()
	outside := testutil.NewNetns(t)
	la := netlink.NewLinkAttrs()
	la.Name = "sbxouth"
	veth := &netlink.Veth{LinkAttrs: la, PeerName: "sbxoutp", PeerNamespace: netlink.NsFd(int(outside.Fd()))}
	require.NoError(t, netlink.LinkAdd(veth))
	t.Cleanup(func() { netlink.LinkDel(veth) })
	hostAddr, err := netlink.ParseAddr("198.51.100.1/24")
	require.NoError(t, err)
	require.NoError(t, netlink.AddrAdd(veth, hostAddr))
	require.NoError(t, netlink.LinkSetUp(veth))

	inside, err := netlink.NewHandleAt(netns.NsHandle(int(outside.Fd())), unix.NETLINK_ROUTE)
	require.NoError(t, err)
	defer inside.Close()
	peer, err := inside.LinkByName("sbxoutp")
	require.NoError(t, err)
	outsideAddr, err := netlink.ParseAddr("198.51.100.2/24")
	require.NoError(t, err)
	require.NoError(t, inside.AddrAdd(peer, outsideAddr))
	require.NoError(t, inside.LinkSetUp(peer))

	var l net.Listener
	require.NoError(t, netsetup.InNetns(outside, func() (err error) {
		l, err = net.Listen("tcp", "198.51.100.2:7777")
		return err
	}))
	serveLines(t, l, func(c net.Conn) string { // the client's address, as seen here
		ip, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		return ip
	})
	return "198.51.100.2 7777"
}
