package netsetup

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The rules are written with github.com/google/nftables, which speaks the
// nf_tables netlink protocol directly: no nft or iptables binary is executed
// (none may exist in the caller's mount namespace or $PATH, and forking one
// costs milliseconds), no text is parsed, and a whole table is created in one
// atomic transaction. Each bridge gets its own table, "ip sandboxkit_<bridge>",
// so bridges never share rules and RemoveBridge deletes them all at once:
//
//	table ip sandboxkit_sbx0 {
//		map published { type inet_proto . inet_service : ipv4_addr . inet_service }
//		map published_on { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }
//		chain prerouting { type nat hook prerouting priority dstnat
//			fib daddr type local ip daddr != 127.0.0.0/8 dnat ip to meta l4proto . th dport map @published
//			dnat ip to ip daddr . meta l4proto . th dport map @published_on }
//		chain output { type nat hook output priority dstnat
//			(the same two rules) }
//		chain postrouting { type nat hook postrouting priority srcnat
//			ip saddr SUBNET oifname != BRIDGE masquerade
//			ip saddr SUBNET oifname BRIDGE ct status dnat masquerade }   # hairpin
//	}
//
// An isolated bridge has no map and no NAT; instead:
//
//	chain forward { type filter hook forward priority filter
//		iifname BRIDGE oifname != BRIDGE drop
//		oifname BRIDGE iifname != BRIDGE drop }
//	chain input { type filter hook input priority filter
//		iifname BRIDGE ip daddr != GATEWAY drop }
//
// A published port is one map element, so publishing and unpublishing are a
// single element add or delete: no rule handles to track, and a crashed
// holder's elements can be found by their target address. A port published
// on every host address (0.0.0.0) goes in "published", keyed by protocol
// and port; one published on one host address goes in "published_on",
// keyed by that address too, so that only traffic to it is forwarded.
// Loopback destinations are left to the proxy (see proxy.go), so a port
// published on 127.0.0.1 (the default) has no element at all.
//
// Tables made before "published_on" existed get it, and its rules, from the
// next ensureTable.
//
// A drop verdict in any other table (for example an iptables FORWARD policy of
// DROP, as Docker sets) still applies; our accept verdicts cannot override it.

const (
	tablePrefix = "sandboxkit_"
	mapName     = "published"
	mapID       = 1 // set ID within a batch; fixed to keep nftables' global counter out of it
	mapOnName   = "published_on"
	mapOnID     = 2
)

// Registers, as nft uses them: reg 1 is the first 16-byte register, reg 9 and
// reg 10 the second and third 4-byte slots of it, which concatenations use
// for their second and third fields.
const (
	reg1  = 1
	reg9  = 9
	reg10 = 10
)

// ipsDstNAT is IPS_DST_NAT from linux/netfilter/nf_conntrack_common.h:
// conntrack status bit "destination was NATed".
const ipsDstNAT = 1 << 5

// tableName returns the nft table of bridge.
func tableName(bridge string) string { return tablePrefix + bridge }

// publishedMap returns the published map of table.
func publishedMap(table string) *nftables.Set {
	return &nftables.Set{
		Table:         &nftables.Table{Name: table, Family: nftables.TableFamilyIPv4},
		Name:          mapName,
		ID:            mapID,
		IsMap:         true,
		Concatenation: true,
		KeyType:       nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService),
		DataType:      nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService),
	}
}

// publishedOnMap returns the published_on map of table.
func publishedOnMap(table string) *nftables.Set {
	return &nftables.Set{
		Table:         &nftables.Table{Name: table, Family: nftables.TableFamilyIPv4},
		Name:          mapOnName,
		ID:            mapOnID,
		IsMap:         true,
		Concatenation: true,
		KeyType:       nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService),
		DataType:      nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService),
	}
}

// natHook is a chain that DNATs published ports.
type natHook struct {
	name string
	num  *nftables.ChainHook
}

// natHooks returns the chains that DNAT published ports: for traffic from
// other hosts and sandboxes (prerouting) and from the host itself (output).
func natHooks() []natHook {
	return []natHook{{"prerouting", nftables.ChainHookPrerouting}, {"output", nftables.ChainHookOutput}}
}

// ensureTable creates the bridge's table unless it exists. A table is only
// ever created whole, in one transaction, so an existing one is complete,
// except that one made before the published_on map existed gets it, with
// its rules, in one transaction too. On the common path it asks one
// question: does the isolated table exist, or the published_on map.
// Preconditions: the state lock is held.
func ensureTable(bridge string, subnet netip.Prefix, isolated bool) error {
	name := tableName(bridge)
	if isolated {
		if ok, err := tableExists(name); err != nil {
			return &OpError{Op: "get nft table", Name: name, Err: err}
		} else if ok {
			return nil
		}
	} else {
		if ok, err := setExists(name, mapOnName); err != nil {
			return &OpError{Op: "get nft map", Name: name, Err: err}
		} else if ok {
			return nil
		}
		if ok, err := tableExists(name); err != nil {
			return &OpError{Op: "get nft table", Name: name, Err: err}
		} else if ok {
			return addPublishedOn(name)
		}
	}
	c, err := nftables.New()
	if err != nil {
		return &OpError{Op: "open nftables", Name: name, Err: err}
	}
	t := c.AddTable(&nftables.Table{Name: name, Family: nftables.TableFamilyIPv4})
	gateway := subnet.Addr().Next()
	if isolated {
		fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter})
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: concat(
			ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, bridge),
			ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, bridge),
			[]expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}})})
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: concat(
			ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, bridge),
			ifname(expr.MetaKeyIIFNAME, expr.CmpOpNeq, bridge),
			[]expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}})})
		in := c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
		gw := gateway.As4()
		c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: concat(
			ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, bridge),
			[]expr.Any{
				&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: gw[:]},
				&expr.Verdict{Kind: expr.VerdictDrop},
			})})
	} else {
		for _, m := range []*nftables.Set{publishedMap(name), publishedOnMap(name)} {
			m.Table = t
			if err := c.AddSet(m, nil); err != nil {
				return &OpError{Op: "add nft map", Name: name, Err: err}
			}
		}
		for _, hook := range natHooks() {
			ch := c.AddChain(&nftables.Chain{Name: hook.name, Table: t, Type: nftables.ChainTypeNAT,
				Hooknum: hook.num, Priority: nftables.ChainPriorityNATDest})
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
				&expr.Fib{Register: reg1, ResultADDRTYPE: true, FlagDADDR: true},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: nativeU32(unix.RTN_LOCAL)},
				&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 1},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: []byte{127}},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
				&expr.Payload{DestRegister: reg9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: mapName, SetID: mapID},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1, RegProtoMin: reg9, Specified: true},
			}})
			c.AddRule(publishedOnRule(t, ch))
		}
		post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: concat(
			fromSubnet(subnet),
			ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, bridge),
			[]expr.Any{&expr.Masq{}})})
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: concat(
			fromSubnet(subnet),
			ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, bridge),
			[]expr.Any{
				&expr.Ct{Register: reg1, Key: expr.CtKeySTATUS},
				&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
					Mask: nativeU32(ipsDstNAT), Xor: nativeU32(0)},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: nativeU32(0)},
				&expr.Masq{},
			})})
	}
	if err := c.Flush(); err != nil {
		return &OpError{Op: "add nft table", Name: name, Err: err}
	}
	return nil
}

// publishedOnRule returns the rule of chain ch that DNATs traffic to a host
// address and port published there: "dnat ip to ip daddr . meta l4proto .
// th dport map @published_on". Its keys are host addresses, so it needs no
// check that the destination is local.
func publishedOnRule(t *nftables.Table, ch *nftables.Chain) *nftables.Rule {
	return &nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg9},
		&expr.Payload{DestRegister: reg10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: mapOnName, SetID: mapOnID},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1, RegProtoMin: reg9, Specified: true},
	}}
}

// addPublishedOn adds the published_on map and its rules to the existing
// table name, made before they existed, in one transaction.
// Preconditions: the state lock is held.
func addPublishedOn(name string) error {
	c, err := nftables.New()
	if err != nil {
		return &OpError{Op: "open nftables", Name: name, Err: err}
	}
	t := &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}
	if err := c.AddSet(publishedOnMap(name), nil); err != nil {
		return &OpError{Op: "add nft map", Name: name, Err: err}
	}
	for _, hook := range natHooks() {
		c.AddRule(publishedOnRule(t, &nftables.Chain{Name: hook.name, Table: t}))
	}
	if err := c.Flush(); err != nil {
		return &OpError{Op: "add nft map " + mapOnName + " to", Name: name, Err: err}
	}
	return nil
}

// tableExists reports whether the IPv4 nft table name exists. It sends one
// NFT_MSG_GETTABLE on a plain netlink socket: nftables.Conn would take
// several times as long to set up its connection for this single question.
func tableExists(name string) (bool, error) {
	return nftExists(unix.NFT_MSG_GETTABLE, nl.NewRtAttr(unix.NFTA_TABLE_NAME, nl.ZeroTerminated(name)))
}

// setExists reports whether the IPv4 nft table table exists with a set or
// map called set, with one NFT_MSG_GETSET. nftables.Conn's own calls lose
// the errno that tells a missing set from a failure (they format it with
// %v).
func setExists(table, set string) (bool, error) {
	return nftExists(unix.NFT_MSG_GETSET,
		nl.NewRtAttr(unix.NFTA_SET_TABLE, nl.ZeroTerminated(table)),
		nl.NewRtAttr(unix.NFTA_SET_NAME, nl.ZeroTerminated(set)))
}

// nftExists sends the nf_tables GET request msg with attrs for the IPv4
// family, and reports whether the object exists (ENOENT: it does not).
func nftExists(msg int, attrs ...*nl.RtAttr) (bool, error) {
	s, err := openNetlink(unix.NETLINK_NETFILTER)
	if err != nil {
		return false, err
	}
	defer s.Close()
	req := nl.NewNetlinkRequest(unix.NFNL_SUBSYS_NFTABLES<<8|msg, 0)
	// struct nfgenmsg: family, version, resource ID (big endian).
	req.AddRawData([]byte{unix.NFPROTO_IPV4, unix.NFNETLINK_V0, 0, 0})
	for _, a := range attrs {
		req.AddRawData(a.Serialize())
	}
	_, err = s.do(req)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	return err == nil, err
}

// deleteTable deletes the bridge's table; a missing table is not an error.
func deleteTable(bridge string) error {
	name := tableName(bridge)
	c, err := nftables.New()
	if err != nil {
		return &OpError{Op: "open nftables", Name: name, Err: err}
	}
	c.DelTable(&nftables.Table{Name: name, Family: nftables.TableFamilyIPv4})
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return &OpError{Op: "delete nft table", Name: name, Err: err}
	}
	return nil
}

// dnatPorts returns the ports that DNAT maps: those published on a host
// address other than loopback.
func dnatPorts(ports []Port) []Port {
	var out []Port
	for _, p := range ports {
		if !p.HostIP.IsLoopback() {
			out = append(out, p)
		}
	}
	return out
}

// mapElements returns the map elements sending ports (HostIP and HostPort
// set, none on loopback) to ip: in published for those on every host
// address, in published_on for the others.
func mapElements(ip netip.Addr, ports []Port) (published, publishedOn []nftables.SetElement) {
	a := ip.As4()
	for _, p := range ports {
		proto := byte(unix.IPPROTO_TCP)
		if p.Proto == "udp" {
			proto = unix.IPPROTO_UDP
		}
		// Each field of a concatenation fills whole 4-byte registers:
		// proto, 3 bytes padding, port (big endian), 2 bytes padding.
		key := make([]byte, 8)
		key[0] = proto
		binary.BigEndian.PutUint16(key[4:], p.HostPort)
		val := make([]byte, 8) // address, port (big endian), 2 bytes padding
		copy(val, a[:])
		binary.BigEndian.PutUint16(val[4:], p.SandboxPort)
		if p.HostIP.IsUnspecified() {
			published = append(published, nftables.SetElement{Key: key, Val: val})
			continue
		}
		host := p.HostIP.As4()
		publishedOn = append(publishedOn, nftables.SetElement{Key: append(host[:], key...), Val: val})
	}
	return published, publishedOn
}

// addPorts maps ports (HostPort set; see dnatPorts) to ip in one transaction.
func addPorts(bridge string, ip netip.Addr, ports []Port) error {
	return changePorts(bridge, "add nft map elements", ip, ports, (*nftables.Conn).SetAddElements)
}

// deletePorts removes the mappings addPorts made. Elements that are already
// gone (someone deleted the table) are not an error.
func deletePorts(bridge string, ip netip.Addr, ports []Port) error {
	err := changePorts(bridge, "delete nft map elements", ip, ports, (*nftables.Conn).SetDeleteElements)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// changePorts applies change to the elements of both maps for ports, in one
// transaction.
func changePorts(bridge, op string, ip netip.Addr, ports []Port, change func(*nftables.Conn, *nftables.Set, []nftables.SetElement) error) error {
	name := tableName(bridge)
	c, err := nftables.New()
	if err != nil {
		return &OpError{Op: "open nftables", Name: name, Err: err}
	}
	published, publishedOn := mapElements(ip, ports)
	for _, m := range []struct {
		set *nftables.Set
		els []nftables.SetElement
	}{{publishedMap(name), published}, {publishedOnMap(name), publishedOn}} {
		if len(m.els) == 0 {
			continue
		}
		if err := change(c, m.set, m.els); err != nil {
			return &OpError{Op: op, Name: name, Err: err}
		}
	}
	if err := c.Flush(); err != nil {
		return &OpError{Op: op, Name: name, Err: err}
	}
	return nil
}

// deletePortsTo removes every element of both published maps whose target
// is ip: the mappings a crashed holder left behind. A missing map (an
// isolated bridge's table has none; someone may have deleted the table)
// holds none. Preconditions: the state lock is held.
func deletePortsTo(bridge string, ip netip.Addr) error {
	name := tableName(bridge)
	c, err := nftables.New()
	if err != nil {
		return &OpError{Op: "open nftables", Name: name, Err: err}
	}
	a := ip.As4()
	dropped := false
	for _, m := range []*nftables.Set{publishedMap(name), publishedOnMap(name)} {
		els, err := c.GetSetElements(m)
		if err != nil {
			// The error has lost its errno: ask whether the map exists.
			if ok, xerr := setExists(name, m.Name); xerr == nil && !ok {
				continue
			}
			return &OpError{Op: "list nft map elements", Name: name, Err: err}
		}
		var drop []nftables.SetElement
		for _, e := range els {
			if len(e.Val) >= 4 && [4]byte(e.Val[:4]) == a {
				drop = append(drop, nftables.SetElement{Key: e.Key})
			}
		}
		if len(drop) == 0 {
			continue
		}
		if err := c.SetDeleteElements(m, drop); err != nil {
			return &OpError{Op: "delete nft map elements", Name: name, Err: err}
		}
		dropped = true
	}
	if !dropped {
		return nil
	}
	if err := c.Flush(); err != nil {
		return &OpError{Op: "delete nft map elements", Name: name, Err: err}
	}
	return nil
}

// ifname matches the input or output interface name against name.
func ifname(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: reg1},
		&expr.Cmp{Op: op, Register: reg1, Data: b},
	}
}

// fromSubnet matches packets whose source address is in subnet.
func fromSubnet(subnet netip.Prefix) []expr.Any {
	mask := make([]byte, 4)
	binary.BigEndian.PutUint32(mask, ^uint32(0)<<(32-subnet.Bits()))
	net := subnet.Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: net[:]},
	}
}

// nativeU32 encodes v in host byte order, as nf_tables compares registers
// loaded from metadata.
func nativeU32(v uint32) []byte {
	return binary.NativeEndian.AppendUint32(nil, v)
}

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
