package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/sandboxkit/sandbox/internal/netsetup"
)

type networkKind int

const (
	networkUnset networkKind = iota
	networkNone
	networkHost
	networkBridge
)

// Network is how a sandbox reaches the network, made by [NoNetwork],
// [HostNetwork] or [Bridge] and passed to [Sandbox.WithNetwork]. It is an
// immutable value.
type Network struct {
	kind   networkKind
	bridge netsetup.Config
}

// NoNetwork returns the default network: a private network namespace whose
// only interface is loopback, up. The sandbox reaches nothing outside
// itself and nothing outside reaches it.
func NoNetwork() Network { return Network{kind: networkNone} }

// HostNetwork returns a network that shares the host's network namespace:
// the sandbox sees and uses the host's interfaces, addresses and ports. Use
// it only for trusted programs.
func HostNetwork() Network { return Network{kind: networkHost} }

// BridgeOption changes the bridge made by [Bridge].
type BridgeOption func(*Network)

// DefaultBridgeName and DefaultBridgeSubnet are the bridge Bridge() uses
// unless told otherwise. The subnet stays clear of the ranges Docker,
// Podman, Kubernetes and common cloud and home networks use by default.
const (
	DefaultBridgeName   = netsetup.DefaultBridge
	DefaultBridgeSubnet = netsetup.DefaultSubnet
)

// Bridge returns a network in which the sandbox has its own IPv4 address on
// a Linux bridge shared by every sandbox that names it: a veth pair joins
// the sandbox to the bridge, whose first address is the sandbox's gateway
// and default route. Sandboxes on one bridge reach each other by address.
// The bridge is created on first use (see [RemoveBridge] to delete it);
// traffic from it to the host's other networks is masqueraded unless
// [Isolated] is given. The sandbox gets an /etc/hosts naming its host name
// and address and an /etc/resolv.conf ([DNS] or the host's non-loopback
// nameservers). Publish ports with WithPublish, for the host itself
// (127.0.0.1), or WithPublishOn, for other hosts. The address, gateway and
// published ports of a run are in Result.Network.
//
// Addresses are leased from files under /run/sandboxkit/net, locked, so
// sandboxes of several processes share a bridge safely; a lease is freed
// when its run ends, and reclaimed when the process that took it died.
// Run returns only once the kernel has deleted the sandbox's veth with its
// namespace: about 3 ms after the sandbox ends on an idle host, but 30 ms
// and more when sandboxes end back to back (the kernel tears dead
// namespaces down a batch at a time, each ending in RCU barriers).
//
// Only IPv4 is configured. A sandbox holding CAP_NET_RAW (the default
// without a user namespace) can send any frame on its bridge, so neither
// the host's side of the bridge nor a sandbox's eth0 takes addresses or
// routes from IPv6 router advertisements (accept_ra=0).
//
// In the sandbox's network namespace any user may bind any port and open
// ping sockets (Docker's sysctls). With WithUserNamespace, the namespace
// is still made by the host, outside the sandbox's user namespace: the
// sandbox's root holds no capability over it, so it cannot change its
// addresses, routes or links, nor open raw sockets, whatever
// WithCapabilities says; its /sys, which it may not mount itself, is
// mounted for it; and its /etc, which holds the network's files, is its
// own directory in the overlay.
func Bridge(opts ...BridgeOption) Network {
	n := Network{kind: networkBridge}
	for _, o := range opts {
		if o != nil {
			o(&n)
		}
	}
	return n
}

// BridgeName names the bridge's interface: 1 to 15 characters from
// [A-Za-z0-9_.-]. The default is DefaultBridgeName.
func BridgeName(name string) BridgeOption {
	return func(n *Network) { n.bridge.Bridge = name }
}

// Subnet sets the bridge's IPv4 subnet (prefix length 8 to 30, host bits
// zero); its first address is the gateway. Every sandbox of one bridge must
// agree on it. A subnet that overlaps a route of the host is refused when
// the bridge is created. The default is DefaultBridgeSubnet.
func Subnet(prefix netip.Prefix) BridgeOption {
	return func(n *Network) { n.bridge.Subnet = prefix }
}

// Isolated gives the bridge's sandboxes no way out: no NAT, no forwarding
// to any other interface, no traffic to host addresses but the gateway.
// They still reach each other, and published ports still reach them.
// Every sandbox of one bridge must agree on it.
func Isolated() BridgeOption {
	return func(n *Network) { n.bridge.Isolated = true }
}

// PublishDNAT also forwards the ports published on a host address other
// than loopback (see [Sandbox.WithPublishOn]) in the kernel, by DNAT rules,
// for traffic to that address (to every non-loopback address for 0.0.0.0):
// the sandbox then sees each client's own address, and bulk traffic skips
// the proxy's copy. Without it (the default) every published port is
// served by a proxy in the calling process, listening on the port's host
// address, and the sandbox sees connections come from its gateway. Ports on
// 127.0.0.1, the default, are always served by the proxy alone (the kernel
// does not route DNATed loopback traffic). The cost of DNAT is at the end
// of each run that has such a port: removing an nftables mapping waits for
// an RCU grace period in the kernel, 10 to 20 ms on the machine in
// BENCHMARKS.md. Isolated bridges always use the proxy alone.
func PublishDNAT() BridgeOption {
	return func(n *Network) { n.bridge.DNAT = true }
}

// DNS sets the nameservers of the sandbox's /etc/resolv.conf.
func DNS(servers ...netip.Addr) BridgeOption {
	return func(n *Network) { n.bridge.DNS = slices.Clone(servers) }
}

// String names the network.
func (n Network) String() string {
	switch n.kind {
	case networkHost:
		return "host"
	case networkBridge:
		name := n.bridge.Bridge
		if name == "" {
			name = DefaultBridgeName
		}
		return "bridge " + name
	case networkNone, networkUnset:
		return "none"
	}
	return "unknown"
}

// NetworkInfo is a sandbox's place on a bridge network.
type NetworkInfo struct {
	// IP is the sandbox's address and Prefix its subnet, as seen inside.
	IP     netip.Addr
	Prefix netip.Prefix
	// Gateway is the bridge's address, the sandbox's default route.
	Gateway netip.Addr
	// Ports are the published ports, with host ports chosen for 0 filled
	// in.
	Ports []PublishedPort
}

// checkNetwork reports problems of the network and the published ports.
func (s *Sandbox) checkNetwork() []*FieldError {
	var problems []*FieldError
	if len(s.ports) > 0 && s.network.kind != networkBridge {
		problems = append(problems, &FieldError{Field: "publish", Value: s.network, Reason: "needs a Bridge network"})
	}
	if s.network.kind == networkBridge {
		// The whole configuration Run hands to netsetup, with the host
		// name (which goes into /etc/hosts) and the published ports.
		problems = append(problems, bridgeProblems(s.bridgeConfig().Validate())...)
	}
	return problems
}

// bridgeProblems turns the problems netsetup finds in a configuration into
// the package's own FieldErrors: "publish" for a published port, "network"
// for the rest, each naming the setting.
func bridgeProblems(err error) []*FieldError {
	if err == nil {
		return nil
	}
	var problems []*FieldError
	for _, e := range unjoin(err) {
		var fe *netsetup.FieldError
		if !errors.As(e, &fe) {
			problems = append(problems, &FieldError{Field: "network", Value: "bridge", Reason: e.Error(), Err: e})
			continue
		}
		field, setting := "network", fe.Field
		if rest, ok := strings.CutPrefix(fe.Field, "Publish["); ok {
			field, setting = "publish", strings.TrimPrefix(rest[strings.IndexByte(rest, ']')+1:], ".")
		}
		problems = append(problems, &FieldError{Field: field, Value: fe.Value, Reason: settingName(setting) + " " + fe.Reason})
	}
	return problems
}

// settingName returns how the package's docs name a netsetup Config field.
func settingName(field string) string {
	switch field {
	case "Bridge":
		return "bridge name"
	case "StateDir":
		return "state directory"
	case "HostPort":
		return "host port"
	case "SandboxPort":
		return "sandbox port"
	case "HostIP":
		return "host address"
	case "Proto":
		return "protocol"
	}
	return strings.ToLower(field)
}

// unjoin returns the errors joined in err, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// bridgeConfig returns the netsetup configuration of a run.
func (s *Sandbox) bridgeConfig() netsetup.Config {
	cfg := s.network.bridge
	cfg.Hostname = s.hostname
	cfg.Publish = nil
	for _, p := range s.ports {
		cfg.Publish = append(cfg.Publish, netsetup.Port{Proto: p.Proto, HostIP: p.HostIP,
			HostPort: uint16(p.HostPort), SandboxPort: uint16(p.SandboxPort)})
	}
	return cfg
}

// PortInUseError means a published host port could not be bound. It
// matches the underlying errno (EADDRINUSE; EACCES; EADDRNOTAVAIL for a
// host address the host does not have).
type PortInUseError struct {
	Proto    string     // "tcp" or "udp"
	HostIP   netip.Addr // the address it was to be bound on
	HostPort int
	Err      error
}

// Error names the protocol, address and port.
func (e *PortInUseError) Error() string {
	return netsetup.PortInUseText(e.Proto, e.HostIP, uint16(e.HostPort), e.Err)
}

// Unwrap returns the bind error.
func (e *PortInUseError) Unwrap() error { return e.Err }

// SubnetConflictError means the bridge's subnet overlaps a route of the
// host that is not the bridge's own.
type SubnetConflictError struct {
	Subnet netip.Prefix // the bridge's subnet
	Route  netip.Prefix // the conflicting route's destination
	Link   string       // the conflicting route's device; "" if it has none
}

// Error names the subnet and the route it overlaps.
func (e *SubnetConflictError) Error() string {
	return netsetup.SubnetConflictText(e.Subnet, e.Route, e.Link)
}

// BridgeConflictError means an interface with the bridge's name exists but
// cannot be used as the bridge: another kind of link, another subnet, or
// another Isolated setting.
type BridgeConflictError struct {
	Bridge string
	Reason string
}

// Error names the bridge and why it cannot be used.
func (e *BridgeConflictError) Error() string { return netsetup.BridgeConflictText(e.Bridge, e.Reason) }

// BridgeInUseError means RemoveBridge found leases of live sandboxes.
type BridgeInUseError struct {
	Bridge string
	Leases int // how many live sandboxes hold an address on it
}

// Error names the bridge and its live leases.
func (e *BridgeInUseError) Error() string { return netsetup.BridgeInUseText(e.Bridge, e.Leases) }

// ErrNoAddress means every address of the bridge's subnet is leased to a
// live sandbox.
var ErrNoAddress = errors.New("no free address in the bridge's subnet")

// bridgeError turns an error of internal/netsetup into the package's own
// types, keeping its message and the errors it wraps.
func bridgeError(err error) error {
	var (
		inUse    *netsetup.PortInUseError
		subnet   *netsetup.SubnetConflictError
		conflict *netsetup.BridgeConflictError
		busy     *netsetup.BridgeInUseError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &inUse):
		return &PortInUseError{Proto: inUse.Proto, HostIP: inUse.HostIP, HostPort: int(inUse.HostPort), Err: inUse.Err}
	case errors.As(err, &subnet):
		return &SubnetConflictError{Subnet: subnet.Subnet, Route: subnet.Route, Link: subnet.Link}
	case errors.As(err, &conflict):
		return &BridgeConflictError{Bridge: conflict.Bridge, Reason: conflict.Reason}
	case errors.As(err, &busy):
		return &BridgeInUseError{Bridge: busy.Bridge, Leases: busy.Leases}
	case errors.Is(err, netsetup.ErrNoAddress):
		return fmt.Errorf("%w: %w", ErrNoAddress, err)
	}
	return err
}

// RemoveBridge removes the bridge of n (made by Bridge), its NAT rules and
// its state, when no live sandbox uses it; otherwise it returns a
// *BridgeInUseError. A bridge that sandboxkit did not create is left alone.
func RemoveBridge(ctx context.Context, n Network) error {
	if n.kind != networkBridge {
		return &ConfigError{Problems: []*FieldError{{Field: "network", Value: n, Reason: "must be made by Bridge"}}}
	}
	if err := removeBridge(ctx, n); err != nil {
		return fmt.Errorf("sandbox: remove bridge: %w", err)
	}
	return nil
}
