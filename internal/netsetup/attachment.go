package netsetup

import (
	"net/netip"
	"os"
	"slices"
	"sync"
)

// Attachment is one sandbox's place on a bridge: its address lease, host veth,
// port mappings and proxies. It is returned by [attach] and must be released
// with [Attachment.Detach]. The accessors and Detach are safe for concurrent
// use.
type Attachment struct {
	ip      netip.Addr
	gateway netip.Addr
	prefix  netip.Prefix
	ports   []Port // HostPort filled in
	veth    string // host side
	cfg     Config // with defaults
	lease   string // lease file path

	proxies []proxy

	mu       sync.Mutex
	netns    *os.File // guarded by mu; the caller's, never closed here; nil after Detach
	detached bool     // guarded by mu
	err      error    // guarded by mu; Detach's result
}

// IP returns the sandbox's address (on eth0 inside the sandbox).
func (a *Attachment) IP() netip.Addr { return a.ip }

// Gateway returns the bridge's address, the sandbox's default route.
func (a *Attachment) Gateway() netip.Addr { return a.gateway }

// Prefix returns the sandbox's address with the subnet's prefix length,
// e.g. 10.209.240.7/20.
func (a *Attachment) Prefix() netip.Prefix { return netip.PrefixFrom(a.ip, a.prefix.Bits()) }

// Subnet returns the bridge's subnet.
func (a *Attachment) Subnet() netip.Prefix { return a.prefix }

// Veth returns the name of the host side of the sandbox's veth pair.
func (a *Attachment) Veth() string { return a.veth }

// Ports returns the published ports in Config.Publish order, with HostPort
// set to the port actually bound.
func (a *Attachment) Ports() []Port { return slices.Clone(a.ports) }

// HostsFile returns the sandbox's /etc/hosts contents for Config.Hostname
// and the leased address (see [HostsFile]).
func (a *Attachment) HostsFile() []byte { return HostsFile(a.cfg.Hostname, a.ip) }

// ResolvConf returns the sandbox's /etc/resolv.conf contents for Config.DNS
// (see [ResolvConf]; an empty DNS reads the host's /etc/resolv.conf).
func (a *Attachment) ResolvConf() []byte { return ResolvConf(a.cfg.DNS) }
