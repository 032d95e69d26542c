package netsetup

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/state"
)

// bridgeRecord is StateDir/<bridge>/bridge.json: how the bridge was set up,
// written before the bridge is created.
type bridgeRecord struct {
	Subnet   netip.Prefix `json:"subnet"`
	Isolated bool         `json:"isolated"`
	Created  bool         `json:"created"` // false: the link existed and was adopted; RemoveBridge keeps it
	// RAOff: the bridge ignores IPv6 router advertisements (refuseRA).
	// Records of bridges made before it was done lack it, and the next
	// ensureBridge does it then.
	RAOff bool `json:"ra_off"`
}

// bridgeDir returns the state directory of cfg's bridge.
func bridgeDir(cfg Config) string { return filepath.Join(cfg.StateDir, cfg.Bridge) }

// ensureBridge makes sure cfg's bridge exists with the gateway address and
// is up, that its nft table exists, and that forwarding is on when the bridge
// does NAT. It returns the bridge's interface index.
//
// On the common path, where all of that is already in place, it reads the
// bridge record and ip_forward, makes two ioctls and one nft GETTABLE
// request. It checks the link and table on every call rather than trusting
// the record, because someone may have deleted either (ip link del, nft
// flush ruleset) since the bridge was made; both are then made again.
// Preconditions: the state lock is held.
func ensureBridge(s *nlSocket, cfg Config) (int, error) {
	index, err := ensureLink(s, cfg)
	if err != nil {
		return 0, err
	}
	if err := ensureTable(cfg.Bridge, cfg.Subnet, cfg.Isolated); err != nil {
		return 0, err
	}
	if !cfg.Isolated {
		if err := enableForwarding(); err != nil {
			return 0, err
		}
	}
	return index, nil
}

// ensureLink is ensureBridge's part for the bridge link and its record.
// Preconditions: the state lock is held.
func ensureLink(s *nlSocket, cfg Config) (int, error) {
	dir := bridgeDir(cfg)
	recPath := filepath.Join(dir, "bridge.json")
	rec, err := readBridgeRecord(recPath)
	haveRec := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	if haveRec && (rec.Subnet != cfg.Subnet || rec.Isolated != cfg.Isolated) {
		return 0, &BridgeConflictError{Bridge: cfg.Bridge, Reason: fmt.Sprintf(
			"set up with subnet %s isolated=%t, requested %s isolated=%t",
			rec.Subnet, rec.Isolated, cfg.Subnet, cfg.Isolated)}
	}
	gateway := netip.PrefixFrom(cfg.Subnet.Addr().Next(), cfg.Subnet.Bits())

	if haveRec {
		// The common case: a bridge made or adopted earlier. Its kind was
		// checked then; if someone has since replaced it with another kind
		// of link, enslaving the veth fails.
		if index, up, err := s.linkIndex(cfg.Bridge); err == nil && up {
			if !rec.RAOff { // made by an earlier version
				if err := refuseRA(cfg.Bridge); err != nil {
					return 0, err
				}
				rec.RAOff = true
				if err := writeBridgeRecord(recPath, rec); err != nil {
					return 0, err
				}
			}
			return index, nil
		}
	}

	var index int
	li, err := s.getLink(cfg.Bridge)
	switch {
	case errors.Is(err, unix.ENODEV):
		if err := checkOverlap(cfg.Subnet); err != nil {
			return 0, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return 0, err
		}
		if err := writeBridgeRecord(recPath, bridgeRecord{Subnet: cfg.Subnet, Isolated: cfg.Isolated, Created: true, RAOff: true}); err != nil {
			return 0, err
		}
		link, err := createBridge(cfg.Bridge, gateway)
		if err != nil {
			return 0, err
		}
		index = link.Attrs().Index
	case err != nil:
		return 0, &OpError{Op: "find link", Name: cfg.Bridge, Err: err}
	default:
		index = li.index
		if li.kind != "bridge" {
			kind := li.kind
			if kind == "" {
				kind = "device"
			}
			return 0, &BridgeConflictError{Bridge: cfg.Bridge, Reason: "exists and is a " + kind + ", not a bridge"}
		}
		if !haveRec || !rec.RAOff {
			if !haveRec {
				if err := checkAdopt(cfg.Bridge, index, gateway); err != nil {
					return 0, err
				}
				if err := os.MkdirAll(dir, 0o700); err != nil {
					return 0, err
				}
				rec = bridgeRecord{Subnet: cfg.Subnet, Isolated: cfg.Isolated}
			}
			// An adopted bridge carries sandboxes' traffic too.
			if err := refuseRA(cfg.Bridge); err != nil {
				return 0, err
			}
			rec.RAOff = true
			if err := writeBridgeRecord(recPath, rec); err != nil {
				return 0, err
			}
		}
		if !li.up {
			if _, err := s.do(setUp(index)); err != nil {
				return 0, &OpError{Op: "set up", Name: cfg.Bridge, Err: err}
			}
		}
	}
	return index, nil
}

// createBridge creates the bridge, up, with gateway as its address. Its MAC
// address is fixed at creation (random, locally administered): otherwise a
// bridge takes the lowest MAC of its ports, which changes as sandboxes come
// and go and makes every sandbox's ARP entry for the gateway stale. It is
// made down, and brought up only once refuseRA has made it deaf to router
// advertisements, so that no advertisement can reach it before.
func createBridge(name string, gateway netip.Prefix) (netlink.Link, error) {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = mac[0]&^1 | 2 // unicast, locally administered
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, HardwareAddr: mac, TxQLen: -1}}
	if err := netlink.LinkAdd(br); err != nil {
		return nil, &OpError{Op: "create bridge", Name: name, Err: err}
	}
	var link netlink.Link = br // LinkAdd filled in its index
	if err := refuseRA(name); err != nil {
		return nil, errors.Join(err, deleteLink(name))
	}
	ipnet := &net.IPNet{IP: gateway.Addr().AsSlice(), Mask: net.CIDRMask(gateway.Bits(), 32)}
	if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: ipnet}); err != nil {
		return nil, errors.Join(&OpError{Op: "add address " + gateway.String() + " to", Name: name, Err: err}, deleteLink(name))
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, errors.Join(&OpError{Op: "set up", Name: name, Err: err}, deleteLink(name))
	}
	return link, nil
}

// refuseRA makes the host's side of the bridge ignore IPv6 router
// advertisements, as Docker does for its bridges: only IPv4 is configured,
// and a sandbox holding CAP_NET_RAW could otherwise hand the host an
// address, a prefix route and even a default route through itself. A host
// without IPv6 has nothing to refuse.
func refuseRA(bridge string) error {
	dir := "/proc/sys/net/ipv6/conf/" + bridge + "/"
	for _, c := range []sysctl{{dir + "accept_ra", "0", true}, {dir + "autoconf", "0", true}} {
		if err := c.write(); err != nil {
			return err
		}
	}
	return nil
}

// RetryDump runs a netlink dump again when the kernel reports that the
// list changed while it was being read (other sandboxes' veths come and go
// all the time), up to ten times before giving up.
func RetryDump(dump func() error) error {
	var err error
	for range 10 {
		if err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
	}
	return err
}

// checkOverlap returns a *SubnetConflictError if a route in any routing
// table overlaps subnet. Default routes do not count: every subnet overlaps
// them, and a more specific route is exactly what the bridge adds.
func checkOverlap(subnet netip.Prefix) error {
	var routes []netlink.Route
	err := RetryDump(func() (err error) {
		routes, err = netlink.RouteListFiltered(netlink.FAMILY_V4,
			&netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		return err
	})
	if err != nil {
		return &OpError{Op: "list routes", Name: subnet.String(), Err: err}
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok || ones == 0 {
			continue
		}
		dst := netip.PrefixFrom(a.Unmap(), ones)
		if dst.Overlaps(subnet) {
			name := ""
			if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
				name = l.Attrs().Name
			}
			return &SubnetConflictError{Subnet: subnet, Route: dst, Link: name}
		}
	}
	return nil
}

// checkAdopt accepts an existing bridge not made by us only if it carries the
// gateway address with the subnet's prefix length.
func checkAdopt(name string, index int, gateway netip.Prefix) error {
	link := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, Index: index}}
	var addrs []netlink.Addr
	err := RetryDump(func() (err error) {
		addrs, err = netlink.AddrList(link, netlink.FAMILY_V4)
		return err
	})
	if err != nil {
		return &OpError{Op: "list addresses of", Name: name, Err: err}
	}
	for _, a := range addrs {
		ones, _ := a.Mask.Size()
		ip, _ := netip.AddrFromSlice(a.IP)
		if ip.Unmap() == gateway.Addr() && ones == gateway.Bits() {
			return nil
		}
	}
	return &BridgeConflictError{Bridge: name, Reason: "exists without address " + gateway.String()}
}

func readBridgeRecord(path string) (bridgeRecord, error) { return readJSON[bridgeRecord](path) }

func writeBridgeRecord(path string, rec bridgeRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// ipForwardPath is the host's IPv4 forwarding switch.
const ipForwardPath = "/proc/sys/net/ipv4/ip_forward"

// enableForwarding turns on IPv4 forwarding in the caller's network
// namespace if it is off. It is never turned off again: other users of the
// host (or other bridges) may rely on it by then, as with Docker.
func enableForwarding() error {
	f, err := os.Open(ipForwardPath)
	if err != nil {
		return err
	}
	var b [1]byte
	_, err = f.Read(b[:])
	f.Close()
	if err != nil {
		return &fs.PathError{Op: "read", Path: ipForwardPath, Err: err}
	}
	if b[0] == '1' {
		return nil
	}
	return os.WriteFile(ipForwardPath, []byte("1\n"), 0o644)
}

// RemoveBridge deletes cfg's bridge (only if an Attach created it), its nft
// table and its state directory StateDir/<bridge>, after reclaiming stale
// leases. It returns a *[BridgeInUseError] and changes nothing while a lease
// is held by a live process. Removing a bridge that does not exist is not an
// error. ctx bounds the wait for the state lock.
func RemoveBridge(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	unlock, err := lockState(ctx, cfg.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	self, err := state.Self()
	if err != nil {
		return err
	}
	dir := bridgeDir(cfg)
	scan, err := scanLeases(dir, self)
	if err != nil {
		return err
	}
	if len(scan.taken) > 0 {
		return &BridgeInUseError{Bridge: cfg.Bridge, Leases: len(scan.taken)}
	}
	rec, recErr := readBridgeRecord(filepath.Join(dir, "bridge.json"))
	var errs []error
	for _, name := range scan.stale {
		// The whole table goes below; only the veths need deleting.
		if r, err := readLease(filepath.Join(dir, name)); err == nil && r.Veth != "" {
			errs = append(errs, deleteLink(r.Veth))
		}
	}
	errs = append(errs, deleteTable(cfg.Bridge))
	if recErr == nil && rec.Created {
		errs = append(errs, deleteLink(cfg.Bridge))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// Collect reclaims, on every bridge recorded under stateDir (the default
// when ""), the leases whose holders are dead: their port mappings, their
// veths if the kernel has not destroyed them with the namespace, and their
// files. A caller killed mid-run leaves those behind; the next Attach to
// the same bridge would reclaim them too, but a bridge may see no other
// run. Bridges themselves stay (RemoveBridge removes them). It returns the
// joined errors of the leases it could not reclaim.
func Collect(ctx context.Context, stateDir string) error {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	entries, err := os.ReadDir(stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	unlock, err := lockState(ctx, stateDir)
	if err != nil {
		return err
	}
	defer unlock()
	self, err := state.Self()
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		cfg := Config{Bridge: e.Name(), StateDir: stateDir}
		rec, err := readBridgeRecord(filepath.Join(bridgeDir(cfg), "bridge.json"))
		if err != nil {
			continue // not a bridge's directory, or one being made
		}
		cfg.Subnet, cfg.Isolated = rec.Subnet, rec.Isolated
		scan, err := scanLeases(bridgeDir(cfg), self)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, name := range scan.stale {
			if err := reclaim(cfg, bridgeDir(cfg), name); err != nil {
				errs = append(errs, fmt.Errorf("reclaim %s on %s: %w", name, cfg.Bridge, err))
			}
		}
	}
	return errors.Join(errs...)
}
