package sandbox_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/netsetup"
)

// sendRA sends, from the interface ifname through a packet socket (which
// needs CAP_NET_RAW), an IPv6 router advertisement to all nodes of the
// link: from fe80::5a, hop limit 255, no default route (router lifetime
// 0) and one prefix information option for prefix/64, on-link and for
// address autoconfiguration. It is the escape helper "send-ra".
func sendRA(ifname, prefix string) error {
	pfx, err := netip.ParseAddr(prefix)
	if err != nil || !pfx.Is6() {
		return errors.New("send-ra: prefix must be an IPv6 address")
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	src := netip.MustParseAddr("fe80::5a").As16()
	dst := netip.MustParseAddr("ff02::1").As16()

	// ICMPv6 router advertisement (RFC 4861 4.2) with a prefix
	// information option (4.6.2).
	ra := make([]byte, 16+32)
	ra[0] = 134 // type: router advertisement
	ra[4] = 64  // current hop limit; flags and router lifetime stay 0
	opt := ra[16:]
	opt[0], opt[1] = 3, 4                      // prefix information, 4 units of 8 bytes
	opt[2] = 64                                // prefix length
	opt[3] = 0xc0                              // L (on-link) and A (autonomous)
	binary.BigEndian.PutUint32(opt[4:], 86400) // valid lifetime, s
	binary.BigEndian.PutUint32(opt[8:], 14400) // preferred lifetime, s
	p := pfx.As16()
	copy(opt[16:], p[:8])

	// The checksum covers the pseudo-header (RFC 8200 8.1).
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	add(src[:])
	add(dst[:])
	sum += uint32(len(ra)) + unix.IPPROTO_ICMPV6
	add(ra)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ra[2:], ^uint16(sum))

	frame := make([]byte, 14+40, 14+40+len(ra))
	copy(frame[0:], []byte{0x33, 0x33, 0, 0, 0, 1}) // ff02::1's multicast MAC
	copy(frame[6:], ifi.HardwareAddr)
	binary.BigEndian.PutUint16(frame[12:], unix.ETH_P_IPV6)
	ip := frame[14:]
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:], uint16(len(ra)))
	ip[6], ip[7] = unix.IPPROTO_ICMPV6, 255 // next header, hop limit
	copy(ip[8:], src[:])
	copy(ip[24:], dst[:])
	frame = append(frame, ra...)

	proto := int(htons(unix.ETH_P_IPV6))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Protocol: htons(unix.ETH_P_IPV6), Halen: 6}
	copy(to.Addr[:], frame[:6])
	return unix.Sendto(fd, frame, 0, to)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestBridgeIgnoresRouterAdvertisements: a sandbox holds CAP_NET_RAW by
// default, so it can put any frame on its bridge, an IPv6 router
// advertisement among them. Neither the host's side of the bridge nor a
// peer sandbox, in a user namespace or not, may take an address or a
// route from it. A namespace of the test's own on the bridge, set to
// accept advertisements, is the control: once it has taken the prefix,
// every node of the bridge has received and processed the advertisement.
func TestBridgeIgnoresRouterAdvertisements(t *testing.T) {
	root := escapeRoot(t)
	sb := sandbox.New(sandbox.Dir(root))
	n, subnet := testBridge(t)
	bridge := bridgeName(n)
	const prefix = "2001:db8:5a:1::"
	advertised := netip.PrefixFrom(netip.MustParseAddr(prefix), 64)
	share := t.TempDir()
	require.NoError(t, os.Chmod(share, 0o777))

	// The peers report, once told to stop, what their eth0 took.
	peers := map[string]*sandbox.Sandbox{"plain": sb, "userns": sb.WithUserNamespace()}
	waits := map[string]func() (*sandbox.Result, error){}
	for name, peer := range peers {
		waits[name] = runInBackground(t, peer.WithNetwork(n).WithBind(share, "/share").WithTimeout(30*time.Second),
			fmt.Sprintf(`touch /share/ready-%s
				while [ ! -e /share/stop ]; do sleep 0.05; done
				grep -i '^20010db8005a0001' /proc/net/if_inet6 /proc/net/ipv6_route
				exit 0`, name))
	}
	t.Cleanup(func() { os.WriteFile(filepath.Join(share, "stop"), nil, 0o644) }) // before the waits
	require.Eventually(t, func() bool {
		a, errA := os.Stat(filepath.Join(share, "ready-plain"))
		b, errB := os.Stat(filepath.Join(share, "ready-userns"))
		return errA == nil && errB == nil && a != nil && b != nil
	}, 10*time.Second, 10*time.Millisecond, "the peer sandboxes did not start")

	att, control, err := netsetup.AttachNew(testCtx(t), netsetup.Config{Bridge: bridge, Subnet: subnet})
	require.NoError(t, err, "attach a control namespace to %s", bridge)
	t.Cleanup(func() { control.Close() })
	// Detach, first, deletes the veth while the namespace is still open.
	t.Cleanup(func() { assert.NoError(t, att.Detach(context.Background())) })
	require.NoError(t, netsetup.InNetns(control, func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/eth0/accept_ra", []byte("1"), 0o644)
	}))
	inControl, err := netlink.NewHandleAt(netns.NsHandle(int(control.Fd())), unix.NETLINK_ROUTE)
	require.NoError(t, err)
	t.Cleanup(inControl.Close)

	assert.Equal(t, "EPERM", attempt(t, sb.WithUserNamespace().WithNetwork(n), "send-ra", "eth0", prefix),
		"a sandbox in a user namespace holds no CAP_NET_RAW over its network namespace")
	sender := sb.WithNetwork(n)
	require.Eventually(t, func() bool {
		require.Equal(t, "ok", attempt(t, sender, "send-ra", "eth0", prefix), "a sandbox with the default capabilities sends an RA")
		return len(addrsIn(t, inControl, nil, advertised)) > 0
	}, 5*time.Second, 50*time.Millisecond, "the control namespace must take an address in %s from the RA", advertised)

	br, err := netlink.LinkByName(bridge)
	require.NoError(t, err)
	assert.Empty(t, addrsIn(t, nil, br, advertised), "the host's bridge must take no address from a sandbox's RA")
	var routes []netlink.Route
	require.NoError(t, netsetup.RetryDump(func() (err error) {
		routes, err = netlink.RouteList(br, netlink.FAMILY_V6)
		return err
	}))
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsGlobalUnicast() {
			assert.Fail(t, "the host's bridge must take no route from a sandbox's RA", "route %v", r)
		}
	}

	require.NoError(t, os.WriteFile(filepath.Join(share, "stop"), nil, 0o644))
	for name, wait := range waits {
		res, err := wait()
		require.NoError(t, err, "peer %s", name)
		assert.Empty(t, string(res.Stdout), "peer %s's eth0 must take no address or route from another sandbox's RA (stderr %s)", name, res.Stderr)
	}
}

// addrsIn returns the addresses within p of link (nil: every link), seen
// through h (nil: the host's namespace).
func addrsIn(t *testing.T, h *netlink.Handle, link netlink.Link, p netip.Prefix) []netip.Addr {
	t.Helper()
	if h == nil {
		h = &netlink.Handle{}
	}
	var addrs []netlink.Addr
	require.NoError(t, netsetup.RetryDump(func() (err error) {
		addrs, err = h.AddrList(link, netlink.FAMILY_V6)
		return err
	}))
	var in []netip.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && p.Contains(ip) {
			in = append(in, ip)
		}
	}
	return in
}
