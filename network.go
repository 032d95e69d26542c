package sandbox

type networkKind int

const (
	networkUnset networkKind = iota
	networkNone
	networkHost
)

// Network is how a sandbox reaches the network, made by [NoNetwork] or
// [HostNetwork] and passed to [Sandbox.WithNetwork].
type Network struct {
	kind networkKind
}

// NoNetwork returns the default network: a private network namespace whose
// only interface is loopback, up. The sandbox reaches nothing outside
// itself and nothing outside reaches it.
func NoNetwork() Network { return Network{kind: networkNone} }

// HostNetwork returns a network that shares the host's network namespace:
// the sandbox sees and uses the host's interfaces, addresses and ports. Use
// it only for trusted programs.
func HostNetwork() Network { return Network{kind: networkHost} }

// String names the network.
func (n Network) String() string {
	switch n.kind {
	case networkHost:
		return "host"
	case networkNone, networkUnset:
		return "none"
	}
	return "unknown"
}
