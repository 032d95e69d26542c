package netsetup

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrInvalidConfig is matched by every *[FieldError]: a Config setting is
// invalid, and nothing on the host was touched.
var ErrInvalidConfig = errors.New("netsetup: invalid configuration")

// ErrNoAddress means every address of the bridge's subnet is leased to a live
// sandbox. It is returned wrapped in an *[OpError].
var ErrNoAddress = errors.New("no free address in subnet")

// FieldError is one invalid Config setting. It matches [ErrInvalidConfig].
type FieldError struct {
	Field  string // Config field, e.g. "Bridge" or "Publish[1].Proto"
	Value  any    // the rejected value
	Reason string
}

// Error names the setting and the problem.
func (e *FieldError) Error() string {
	return fmt.Sprintf("%s %v: %s", e.Field, e.Value, e.Reason)
}

// Is reports whether target is ErrInvalidConfig.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidConfig }

// OpError is a failed netlink, nftables or process operation on the host.
type OpError struct {
	Op   string // e.g. "create veth", "add nft rules"
	Name string // the link, table or lease the operation was about
	Err  error
}

// Error names the operation, what it acted on, and the cause.
func (e *OpError) Error() string { return e.Op + " " + e.Name + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *OpError) Unwrap() error { return e.Err }

// SubnetConflictError means Config.Subnet overlaps a route on the host that
// does not belong to the bridge, so creating the bridge would shadow or be
// shadowed by an existing network.
type SubnetConflictError struct {
	Subnet netip.Prefix // the requested subnet
	Route  netip.Prefix // the conflicting route's destination
	Link   string       // the conflicting route's device; "" if it has none
}

// Error names the subnet and the route it overlaps.
func (e *SubnetConflictError) Error() string { return SubnetConflictText(e.Subnet, e.Route, e.Link) }

// SubnetConflictText is the message of a SubnetConflictError, shared with
// the root package's own type.
func SubnetConflictText(subnet, route netip.Prefix, link string) string {
	return fmt.Sprintf("subnet %s overlaps host route %s dev %s", subnet, route, link)
}

// BridgeConflictError means a link named like the bridge exists but cannot be
// used as configured: it is not a bridge, lacks the gateway address, or was
// set up by an earlier Attach with a different subnet or isolation mode.
type BridgeConflictError struct {
	Bridge string
	Reason string
}

// Error names the bridge and why it cannot be used.
func (e *BridgeConflictError) Error() string { return BridgeConflictText(e.Bridge, e.Reason) }

// BridgeConflictText is the message of a BridgeConflictError.
func BridgeConflictText(bridge, reason string) string { return "bridge " + bridge + ": " + reason }

// PortInUseError means a published host port could not be bound; Err is the
// bind error (usually syscall.EADDRINUSE; EACCES below 1024 without
// CAP_NET_BIND_SERVICE; EADDRNOTAVAIL for an address the host does not
// have).
type PortInUseError struct {
	Proto    string     // "tcp" or "udp"
	HostIP   netip.Addr // the address it was to be bound on
	HostPort uint16
	Err      error
}

// Error names the protocol, address and port.
func (e *PortInUseError) Error() string { return PortInUseText(e.Proto, e.HostIP, e.HostPort, e.Err) }

// PortInUseText is the message of a PortInUseError.
func PortInUseText(proto string, ip netip.Addr, port uint16, err error) string {
	return fmt.Sprintf("publish %s port %s: %s", proto, netip.AddrPortFrom(ip, port), err)
}

// Unwrap returns the bind error.
func (e *PortInUseError) Unwrap() error { return e.Err }

// BridgeInUseError means RemoveBridge found leases held by live processes.
type BridgeInUseError struct {
	Bridge string
	Leases int // number of live leases
}

// Error names the bridge and its live leases.
func (e *BridgeInUseError) Error() string { return BridgeInUseText(e.Bridge, e.Leases) }

// BridgeInUseText is the message of a BridgeInUseError.
func BridgeInUseText(bridge string, leases int) string {
	return fmt.Sprintf("bridge %s: in use by %d leases", bridge, leases)
}
