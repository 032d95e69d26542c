package netsetup

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/sandboxkit/sandbox/internal/state"
)

// Defaults applied by [Config.Validate] and [attach] to zero fields.
const (
	DefaultBridge   = "sbx0"
	DefaultStateDir = state.NetDir
)

// DefaultSubnet is the subnet used when Config.Subnet is the zero value.
// It is a string so that it cannot be changed at run time.
//
// 10.209.240.0/20 (4093 sandboxes) was chosen to stay clear of the ranges other
// tools hand out by default: Docker's pools (172.17-172.31/16, 192.168.x/20),
// the AWS default VPC (172.31/16), Podman (10.88/16), Kubernetes services and
// pods (10.96/12, 10.244/16), Tailscale (100.64/10) and home routers
// (192.168.x/24). Attach still refuses it when a host route overlaps it.
const DefaultSubnet = "10.209.240.0/20"

// Config describes the bridge a sandbox joins and what it publishes. The zero
// value is valid: bridge "sbx0", subnet [DefaultSubnet], outbound NAT, state in
// /run/sandboxkit/net. A Config is a plain value; Attach does not retain it.
type Config struct {
	// Bridge is the bridge's interface name: 1 to 15 characters from
	// [A-Za-z0-9_.-], not starting with '.' or '-'. Default "sbx0".
	Bridge string
	// Subnet is the IPv4 subnet of the bridge; its first address is the
	// gateway. The prefix length must be 8 to 30 and host bits must be zero.
	// Default [DefaultSubnet]. All Attach calls on one bridge must agree.
	Subnet netip.Prefix
	// Isolated, when true, gives sandboxes no route out: no NAT, no forwarding
	// between the bridge and any other interface, and no traffic to host
	// addresses other than the gateway. All Attach calls on one bridge must
	// agree.
	Isolated bool
	// StateDir holds the lock, bridge records and lease files; it must be an
	// absolute path on a filesystem shared by every process using the bridge.
	// Default /run/sandboxkit/net.
	StateDir string
	// Publish lists the ports to publish from the host into the sandbox.
	// They are always served by a userland proxy listening on each port's
	// HostIP (the only way to reach them from 127.0.0.1).
	Publish []Port
	// DNAT, on a bridge that is not Isolated, also maps the published ports
	// whose HostIP is not loopback in the kernel (nftables DNAT maps):
	// traffic to that host address (every non-loopback one for 0.0.0.0)
	// then reaches the sandbox with the client's own source address and
	// without the proxy's copy. Removing a mapping costs the kernel an RCU
	// grace period (10 to 20 ms here) at Detach, which is why it is off by
	// default.
	DNAT bool
	// DNS lists the nameservers for the sandbox's resolv.conf. Empty means
	// the host's non-loopback IPv4 nameservers (see [ResolvConf]). Attach only
	// validates it; [Attachment.ResolvConf] uses it.
	DNS []netip.Addr
	// Hostname is the sandbox's host name, written to its hosts file with the
	// leased address. At most 63 characters, an RFC 1123 label sequence; ""
	// means no entry. Attach only validates it; [Attachment.HostsFile] uses it.
	Hostname string
}

// Port is a published port: connections to HostIP:HostPort on the host
// reach SandboxPort on the sandbox's address.
type Port struct {
	// Proto is "tcp" or "udp"; "" means "tcp".
	Proto string
	// HostIP is the host address the port is bound on: an IPv4 address of
	// the host, or 0.0.0.0 for every address. The zero value means
	// [DefaultHostIP], 127.0.0.1: only the host itself reaches the port.
	HostIP netip.Addr
	// HostPort is the host port; 0 asks Attach to pick a free one, reported by
	// [Attachment.Ports].
	HostPort uint16
	// SandboxPort is the port inside the sandbox; it must not be 0.
	SandboxPort uint16
}

// DefaultHostIP is the host address a published port is bound on unless
// Port.HostIP says otherwise: loopback, so that a port published for the
// host's own use (a test's database, often with no password) is not open
// to the host's networks as well. It is a string so that it cannot be
// changed at run time.
const DefaultHostIP = "127.0.0.1"

// checkHostIP returns why a cannot be a published port's host address,
// or "".
func checkHostIP(a netip.Addr) string {
	switch {
	case !a.Is4():
		return "must be an IPv4 address"
	case a.IsMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "must be a unicast address or 0.0.0.0"
	}
	return ""
}

// conflicts reports whether p and q, both with defaults applied, cannot be
// bound together: the same protocol and host port on the same address, or
// with either on every address.
func (p Port) conflicts(q Port) bool {
	return p.Proto == q.Proto && p.HostPort == q.HostPort &&
		(p.HostIP == q.HostIP || p.HostIP.IsUnspecified() || q.HostIP.IsUnspecified())
}

// Validate reports every invalid setting of c at once: nil, or *[FieldError]
// values joined with errors.Join, matching [ErrInvalidConfig]. Zero fields are
// valid (they take defaults). Validate does no I/O.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults returns c with defaults filled in, and the validation errors.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	bad := func(field string, value any, reason string) {
		errs = append(errs, &FieldError{Field: field, Value: value, Reason: reason})
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if reason := checkIfName(c.Bridge); reason != "" {
		bad("Bridge", c.Bridge, reason)
	}
	if !c.Subnet.IsValid() {
		c.Subnet = netip.MustParsePrefix(DefaultSubnet)
	}
	if reason := checkSubnet(c.Subnet); reason != "" {
		bad("Subnet", c.Subnet, reason)
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if !filepath.IsAbs(c.StateDir) {
		bad("StateDir", c.StateDir, "must be an absolute path")
	}
	c.Publish = append([]Port(nil), c.Publish...)
	for i := range c.Publish {
		p := &c.Publish[i]
		if p.Proto == "" {
			p.Proto = "tcp"
		}
		if p.Proto != "tcp" && p.Proto != "udp" {
			bad(fmt.Sprintf("Publish[%d].Proto", i), p.Proto, `must be "tcp" or "udp"`)
		}
		if !p.HostIP.IsValid() {
			p.HostIP = netip.MustParseAddr(DefaultHostIP)
		}
		p.HostIP = p.HostIP.Unmap()
		if reason := checkHostIP(p.HostIP); reason != "" {
			bad(fmt.Sprintf("Publish[%d].HostIP", i), p.HostIP, reason)
		}
		if p.SandboxPort == 0 {
			bad(fmt.Sprintf("Publish[%d].SandboxPort", i), p.SandboxPort, "must not be 0")
		}
		if p.HostPort != 0 {
			for _, q := range c.Publish[:i] {
				if p.conflicts(q) {
					bad(fmt.Sprintf("Publish[%d].HostPort", i), p.HostPort, "published twice")
					break
				}
			}
		}
	}
	c.DNS = append([]netip.Addr(nil), c.DNS...)
	for i, a := range c.DNS {
		if !a.IsValid() || a.IsUnspecified() {
			bad(fmt.Sprintf("DNS[%d]", i), a, "must be a unicast address")
		}
	}
	if c.Isolated {
		c.DNAT = false // an isolated bridge has no DNAT map
	}
	return c, errors.Join(errs...)
}

// checkIfName returns why name cannot be an interface name, or "".
// It is stricter than the kernel: only [A-Za-z0-9_.-] are allowed, so the
// name is also safe as a path element and in an nft table name.
func checkIfName(name string) string {
	if len(name) > 15 {
		return "longer than 15 characters"
	}
	if name[0] == '.' || name[0] == '-' {
		return "must not start with '.' or '-'"
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return "may contain only letters, digits, '_', '.' and '-'"
		}
	}
	return ""
}

// checkSubnet returns why p cannot be a bridge subnet, or "".
func checkSubnet(p netip.Prefix) string {
	a := p.Addr()
	switch {
	case !a.Is4():
		return "must be IPv4"
	case p.Bits() < 8 || p.Bits() > 30:
		return "prefix length must be 8 to 30"
	case p.Masked() != p:
		return fmt.Sprintf("host bits set; want %s", p.Masked())
	case a.IsLoopback(), a.IsMulticast(), a.IsLinkLocalUnicast(), a.IsUnspecified(),
		p.Overlaps(netip.MustParsePrefix("240.0.0.0/4")):
		return "must be a unicast range"
	}
	return ""
}
