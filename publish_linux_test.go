package sandbox_test

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
)

// otherHostAddr gives the host an address of the test's own, standing for
// its external address, on a link of its own removed when the test ends.
func otherHostAddr(t *testing.T) netip.Addr {
	var b [2]byte
	_, _ = rand.Read(b[:])
	hostLink(t, fmt.Sprintf("sbxp%02x%02x", b[0], b[1]), "203.0.113.77/32")
	return netip.MustParseAddr("203.0.113.77")
}

// reach dials addr from the host and reports whether a sandbox's echo
// server answered; a refusal is "refused" (nothing listens there, and no
// rule forwards it), anything else fails the test.
func reach(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
	if err != nil {
		require.ErrorIs(t, err, syscall.ECONNREFUSED, "dial %s", addr)
		return "refused"
	}
	c.Close()
	if echo(addr, "hi") != "hi" {
		return "no answer"
	}
	return "served"
}

// TestPublishBindsOneHostAddress: a published port is served on the host
// address it was published on (127.0.0.1 by default), and not on the
// host's other addresses, whether the proxy alone serves it or DNAT rules
// too; on 0.0.0.0 it is served on all of them.
func TestPublishBindsOneHostAddress(t *testing.T) {
	sb, _ := busybox(t)
	other := otherHostAddr(t)
	loopback := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		name      string
		dnat      bool
		hostIP    netip.Addr // the zero Addr: WithPublish
		loopback  string     // what a dial of 127.0.0.1:hostPort gets
		otherAddr string     // and of other:hostPort
	}{
		{"default", false, netip.Addr{}, "served", "refused"},
		{"default with DNAT", true, netip.Addr{}, "served", "refused"},
		{"on loopback", false, loopback, "served", "refused"},
		{"on loopback with DNAT", true, loopback, "served", "refused"},
		{"on the other address", false, other, "refused", "served"},
		{"on the other address with DNAT", true, other, "refused", "served"},
		{"on every address", false, netip.IPv4Unspecified(), "served", "served"},
		{"on every address with DNAT", true, netip.IPv4Unspecified(), "served", "served"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []sandbox.BridgeOption
			if tt.dnat {
				opts = append(opts, sandbox.PublishDNAT())
			}
			n, _ := testBridge(t, opts...)
			hostPort := freePort(t)
			published := sb.WithNetwork(n).WithPublish(hostPort, 7000)
			if tt.hostIP.IsValid() {
				published = sb.WithNetwork(n).WithPublishOn(tt.hostIP, hostPort, 7000)
			}
			share := t.TempDir()
			wait := runInBackground(t, published.WithBind(share, "/share").WithTimeout(30*time.Second),
				`nc -ll -p 7000 -e cat & while [ ! -e /share/stop ]; do sleep 0.05; done`)
			served := netip.AddrPortFrom(loopback, uint16(hostPort)).String()
			if tt.loopback != "served" {
				served = netip.AddrPortFrom(other, uint16(hostPort)).String()
			}
			require.Eventually(t, func() bool { return echo(served, "hi") == "hi" }, 10*time.Second, 10*time.Millisecond,
				"the sandbox's server did not start")
			for _, c := range []struct {
				addr netip.Addr
				want string
			}{{loopback, tt.loopback}, {other, tt.otherAddr}} {
				addr := netip.AddrPortFrom(c.addr, uint16(hostPort)).String()
				assert.Equal(t, c.want, reach(t, addr), "dial %s", addr)
			}
			require.NoError(t, os.WriteFile(filepath.Join(share, "stop"), nil, 0o644))
			res, err := wait()
			require.NoError(t, err)
			require.NotNil(t, res.Network)
			want := tt.hostIP
			if !want.IsValid() {
				want = loopback
			}
			assert.Equal(t, []sandbox.PublishedPort{{Proto: "tcp", HostIP: want, HostPort: hostPort, SandboxPort: 7000}},
				res.Network.Ports, "Result.Network.Ports names the host address")
		})
	}
}
