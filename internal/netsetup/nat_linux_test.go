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

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
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
			cfg.Publish = []Port{{Proto: "tcp", HostIP: netip.IPv4Unspecified(), SandboxPort: 9000}}
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

// TestAttachPublishOnOneAddress publishes a port on one host address, the
// host's end of the link to the outside: it is served there, to the
// outside and to the host itself, and on no other host address, whether
// the proxy serves it alone or a DNAT rule too.
func TestAttachPublishOnOneAddress(t *testing.T) {
	tests := []struct {
		name string
		dnat bool
	}{
		{"proxy", false},
		{"dnat", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keepIPForward(t)
			cfg := testConfig(t)
			out := newOutside(t)
			cfg.Publish = []Port{{Proto: "tcp", HostIP: out.host, SandboxPort: 9000}}
			cfg.DNAT = tt.dnat
			ns := newNetns(t)
			serveTCP(t, ns, ":9000")
			a := attach(t, cfg, ns)
			p := a.Ports()[0]
			assert.Equal(t, out.host, p.HostIP)
			port := strconv.Itoa(int(p.HostPort))

			peer, echo, err := talkTCP(t, out.ns, out.host.String()+":"+port, "in")
			require.NoError(t, err, "outside -> %s:%s", out.host, port)
			assert.Equal(t, "in", echo)
			if tt.dnat {
				assert.Equal(t, out.addr.String(), peer, "DNAT keeps the client's address")
			} else {
				assert.Equal(t, a.Gateway().String(), peer, "served by the proxy")
			}
			_, echo, err = talkTCP(t, nil, out.host.String()+":"+port, "host")
			require.NoError(t, err, "host -> %s:%s", out.host, port)
			assert.Equal(t, "host", echo)

			for _, other := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), a.Gateway()} {
				_, _, err := talkTCP(t, nil, other.String()+":"+port, "")
				assert.ErrorIs(t, err, syscall.ECONNREFUSED, "host -> %s:%s, another host address", other, port)
			}
		})
	}
}

// TestEnsureTableAddsPublishedOn: a table made before the published_on map
// existed (here: one whose map and rules were taken out again) gets them
// from the next ensureTable.
func TestEnsureTableAddsPublishedOn(t *testing.T) {
	cfg := testConfig(t)
	attach(t, cfg, newNetns(t)) // makes the table
	name := tableName(cfg.Bridge)
	c, err := nftables.New()
	require.NoError(t, err)
	table := &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}
	rulesOn := func() int {
		n := 0
		for _, hook := range natHooks() {
			rules, err := c.GetRules(table, &nftables.Chain{Name: hook.name, Table: table})
			require.NoError(t, err)
			for _, r := range rules {
				for _, e := range r.Exprs {
					if l, ok := e.(*expr.Lookup); ok && l.SetName == mapOnName {
						n++
					}
				}
			}
		}
		return n
	}
	require.Equal(t, 2, rulesOn(), "a published_on rule in prerouting and output")
	for _, hook := range natHooks() {
		ch := &nftables.Chain{Name: hook.name, Table: table}
		rules, err := c.GetRules(table, ch)
		require.NoError(t, err)
		for _, r := range rules {
			for _, e := range r.Exprs {
				if l, ok := e.(*expr.Lookup); ok && l.SetName == mapOnName {
					require.NoError(t, c.DelRule(r))
				}
			}
		}
	}
	c.DelSet(publishedOnMap(name))
	require.NoError(t, c.Flush(), "take published_on out")
	ok, err := setExists(name, mapOnName)
	require.NoError(t, err)
	require.False(t, ok)

	require.NoError(t, ensureTable(cfg.Bridge, cfg.Subnet, false))
	ok, err = setExists(name, mapOnName)
	require.NoError(t, err)
	assert.True(t, ok, "ensureTable adds the published_on map")
	assert.Equal(t, 2, rulesOn(), "and its rules")
}
