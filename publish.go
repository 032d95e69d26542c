package sandbox

import "net/netip"

// PublishedPort is one port published from the host into a sandbox:
// connections to HostIP:HostPort on the host reach SandboxPort on the
// sandbox's address. HostIP 0.0.0.0 means every host address.
type PublishedPort struct {
	Proto       string     // "tcp" or "udp"
	HostIP      netip.Addr // 127.0.0.1 unless published with WithPublishOn
	HostPort    int
	SandboxPort int
}

// loopback is where WithPublish publishes (see WithPublish for why).
func loopback() netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, 1}) }

// WithPublish returns a copy of s whose TCP port sandboxPort is reachable
// from the host itself at 127.0.0.1:hostPort (hostPort 0 picks a free
// port, reported in Result.Network). It is WithPublishOn with 127.0.0.1.
//
// Loopback is the default so that a port published for the host's own use,
// such as a test's database with trust authentication, is not also open to
// every network the host is on, as "docker run -p 5432:5432" would make it
// (that is "-p 127.0.0.1:5432:5432" here). Use [Sandbox.WithPublishOn] to
// serve other hosts, on one host address or on 0.0.0.0 for all of them.
// Ports append.
func (s *Sandbox) WithPublish(hostPort, sandboxPort int) *Sandbox {
	return s.publish("tcp", loopback(), hostPort, sandboxPort)
}

// WithPublishUDP is WithPublish for UDP.
func (s *Sandbox) WithPublishUDP(hostPort, sandboxPort int) *Sandbox {
	return s.publish("udp", loopback(), hostPort, sandboxPort)
}

// WithPublishOn returns a copy of s whose TCP port sandboxPort is reachable
// at hostIP:hostPort on the host, and on no other host address: hostIP is
// an IPv4 address of the host (127.0.0.1, as WithPublish, or an external
// one), or 0.0.0.0 for every host address. hostPort 0 picks a free port,
// reported in Result.Network. It needs a Bridge network.
//
// A proxy in the calling process, listening on hostIP:hostPort, forwards
// each connection: it is the only way to reach a sandbox from 127.0.0.1
// (DNAT cannot, without route_localnet), and costs nothing per run.
// [PublishDNAT] adds kernel forwarding for a hostIP other than loopback, as
// Docker does. An invalid hostIP (not IPv4, multicast or broadcast) is a
// *FieldError; a host port that is in use, or a hostIP the host does not
// have, makes Run fail with a *PortInUseError. One host port may be
// published on several host addresses, but not on one of them and on
// 0.0.0.0 too. Ports append.
func (s *Sandbox) WithPublishOn(hostIP netip.Addr, hostPort, sandboxPort int) *Sandbox {
	return s.publish("tcp", hostIP, hostPort, sandboxPort)
}

// WithPublishUDPOn is WithPublishOn for UDP.
func (s *Sandbox) WithPublishUDPOn(hostIP netip.Addr, hostPort, sandboxPort int) *Sandbox {
	return s.publish("udp", hostIP, hostPort, sandboxPort)
}

func (s *Sandbox) publish(proto string, hostIP netip.Addr, hostPort, sandboxPort int) *Sandbox {
	c := s.clone()
	ok := true
	hostIP = hostIP.Unmap()
	switch {
	case !hostIP.Is4():
		c.invalid("publish", hostIP, "host address must be an IPv4 address, or 0.0.0.0 for every one")
		ok = false
	case hostIP.IsMulticast(), hostIP == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		c.invalid("publish", hostIP, "host address must be a unicast address, or 0.0.0.0 for every one")
		ok = false
	}
	if hostPort < 0 || hostPort > 65535 {
		c.invalid("publish", hostPort, "host port must be 0 (any) to 65535")
		ok = false
	}
	if sandboxPort < 1 || sandboxPort > 65535 {
		c.invalid("publish", sandboxPort, "sandbox port must be 1 to 65535")
		ok = false
	}
	if ok {
		c.ports = append(c.ports, PublishedPort{Proto: proto, HostIP: hostIP, HostPort: hostPort, SandboxPort: sandboxPort})
	}
	return c
}
