package netsetup

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/sandboxkit/sandbox/internal/testutil"
)

// outside is a namespace standing in for the Internet: connected to the host
// by a veth with 198.51.100.1/24 on the host and 198.51.100.2/24 inside
// (TEST-NET-2, never routed on a real network).
type outside struct {
	ns   *os.File
	host netip.Addr // host's address on the link
	addr netip.Addr // the outside namespace's address
}

func newOutside(t *testing.T) outside {
	t.Helper()
	o := outside{host: netip.MustParseAddr("198.51.100.1"), addr: netip.MustParseAddr("198.51.100.2")}
	routes, err := netlink.RouteGet(o.addr.AsSlice())
	if err == nil && len(routes) > 0 && routes[0].Gw == nil {
		testutil.SkipOrFail(t, "198.51.100.0/24 is already on-link on this host (a leftover sbxouth link?)")
	}
	o.ns = newNetns(t)
	name := "sbxo" + randHex(3)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(o.ns.Fd()))}
	require.NoError(t, netlink.LinkAdd(veth), "create %s", name)
	t.Cleanup(func() { _ = netlink.LinkDel(veth) })
	addr, err := netlink.ParseAddr(o.host.String() + "/24")
	require.NoError(t, err)
	require.NoError(t, netlink.AddrAdd(veth, addr))
	require.NoError(t, netlink.LinkSetUp(veth))
	h := netnsHandle(t, o.ns)
	eth, err := h.LinkByName("eth0")
	require.NoError(t, err)
	addr, err = netlink.ParseAddr(o.addr.String() + "/24")
	require.NoError(t, err)
	require.NoError(t, h.AddrAdd(eth, addr))
	require.NoError(t, h.LinkSetUp(eth))
	waitForwardingCarrier(t, name)
	return o
}

// waitForwardingCarrier waits for the host side's operstate, as waitForwarding
// does for bridge ports.
func waitForwardingCarrier(t *testing.T, name string) {
	t.Helper()
	require.Eventually(t, func() bool {
		l, err := netlink.LinkByName(name)
		return err == nil && l.Attrs().OperState == netlink.OperUp
	}, 2*time.Second, time.Millisecond, "%s up", name)
}

// keepIPForward restores the host's ip_forward setting at cleanup and sets it
// to 1 now, so that isolation is tested against a forwarding host.
func keepIPForward(t *testing.T) {
	old, err := os.ReadFile(ipForwardPath)
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.WriteFile(ipForwardPath, old, 0o644) })
	require.NoError(t, os.WriteFile(ipForwardPath, []byte("1\n"), 0o644))
}

func TestAttachOutbound(t *testing.T) {
	tests := []struct {
		name     string
		isolated bool
	}{
		{"nat", false},
		{"isolated", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keepIPForward(t)
			cfg := testConfig(t)
			cfg.Isolated = tt.isolated
			cfg.Publish = []Port{{Proto: "tcp", SandboxPort: 9000}}
			cfg.DNAT = true // the kernel mapping is what this checks
			out := newOutside(t)
			serveTCP(t, out.ns, ":9999")
			ns := newNetns(t)
			serveTCP(t, ns, ":9000")
			a := attach(t, cfg, ns)
			hostPort := strconv.Itoa(int(a.Ports()[0].HostPort))

			// Sandbox -> outside.
			peer, echo, err := talkTCP(t, ns, netip.AddrPortFrom(out.addr, 9999).String(), "out")
			if tt.isolated {
				assert.Error(t, err, "an isolated sandbox reaches the outside")
			} else {
				require.NoError(t, err, "sandbox -> outside")
				assert.Equal(t, out.host.String(), peer, "masqueraded to the host's address")
				assert.Equal(t, "out", echo)
			}

			// Sandbox -> a host address other than the gateway.
			_, _, err = talkTCP(t, ns, netip.AddrPortFrom(out.host, 1).String(), "")
			if tt.isolated {
				var ne net.Error
				assert.True(t, errors.As(err, &ne) && ne.Timeout(), "an isolated sandbox reaches host address %s: %v", out.host, err)
			} else {
				assert.ErrorIs(t, err, syscall.ECONNREFUSED, "sandbox -> host address %s", out.host)
			}

			// Outside -> published port on the host's address.
			peer, echo, err = talkTCP(t, out.ns, out.host.String()+":"+hostPort, "in")
			require.NoError(t, err, "outside -> %s:%s", out.host, hostPort)
			assert.Equal(t, "in", echo)
			if tt.isolated {
				assert.Equal(t, a.Gateway().String(), peer, "isolated: served by the proxy")
			} else {
				assert.Equal(t, out.addr.String(), peer, "DNAT keeps the client's address")
			}
		})
	}
}
