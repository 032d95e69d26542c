package netsetup

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/state"
)

// sandboxIfName is the sandbox side of the veth pair.
const sandboxIfName = "eth0"

// newVethName returns a fresh host-side name: "sbx" and 8 random hex digits.
// Names are random, not derived from the address, because the veth of a
// sandbox that just exited can outlive its lease for a moment while the
// kernel destroys the namespace.
func newVethName() string {
	return "sbx" + state.RandomID(4)
}

// createVeth creates the veth pair in one netlink request: host side name,
// up and enslaved to the bridge bridgeIndex; peer "eth0", with the MAC
// address sandboxMAC(ip), created directly in the network namespace nsfd.
// (netlink.LinkAdd would need two more round trips to look up the index and
// set the master.) It returns the peer's index inside nsfd, taken from the
// kernel's echo of the new link (Linux 6.3 and later), or 0 if the kernel
// sent none.
func createVeth(s *nlSocket, name string, bridgeIndex int, ip netip.Addr, nsfd int) (int, error) {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ECHO)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Change, msg.Flags = unix.IFF_UP, unix.IFF_UP
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(bridgeIndex))))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	peer := info.AddRtAttr(nl.IFLA_INFO_DATA, nil).AddRtAttr(nl.VETH_INFO_PEER, nil)
	// The peer cannot be created up: opening a veth whose peer is not yet
	// registered fails with ENOTCONN. configureSandbox brings it up.
	nl.NewIfInfomsgChild(peer, unix.AF_UNSPEC)
	peer.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(sandboxIfName))
	mac := sandboxMAC(ip)
	peer.AddRtAttr(unix.IFLA_ADDRESS, mac[:])
	peer.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(nsfd)))
	req.AddData(info)
	data, err := s.do(req)
	if err != nil {
		return 0, &OpError{Op: "create veth", Name: name, Err: err}
	}
	for _, m := range data[0] {
		if li, err := parseLink(m); err == nil && li.link > 0 {
			return li.link, nil // a veth's IFLA_LINK is its peer's index
		}
	}
	return 0, nil
}

// sandboxMAC returns the MAC address of the eth0 that has ip: 02:53 (a
// locally administered unicast prefix) and the four bytes of ip, as
// Docker's bridge driver long did (with 02:42).
//
// An address is leased to one sandbox after another, and the host (and
// every peer that talked to the previous holder) keeps its neighbour entry
// for the address for a while; while the previous holder talked to it
// within the last second (locktime), it even ignores the new holder's ARP
// announcements. With a random MAC, the host's traffic went to the
// previous holder's MAC for 12 to 16 seconds, until the entry expired. With
// the MAC fixed by the address, the entry stays right, at no cost.
// Sending gratuitous ARPs from the namespace instead would cost a packet
// socket, whose close waits for an RCU grace period (about 7 ms here), and
// deleting the host's entry would leave the peers' entries wrong.
// Leases keep addresses, and so MACs, unique on a bridge.
func sandboxMAC(ip netip.Addr) [6]byte {
	a := ip.As4()
	return [6]byte{0x02, 0x53, a[0], a[1], a[2], a[3]}
}

// deleteLink deletes the link called name in the caller's namespace, looked
// up by name in the same request. A missing link is not an error. Deleting a
// veth takes tens of milliseconds (the kernel waits for an RCU grace period),
// and takes its peer with it.
func deleteLink(name string) error {
	req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	if err != nil && !errors.Is(err, unix.ENODEV) {
		return &OpError{Op: "delete link", Name: name, Err: err}
	}
	return nil
}

// vethGoneTimeout bounds waitLinkGone's wait for the kernel's notice that
// the link is gone; much longer than the 0.4 ms it takes means that the
// deletion waits behind something holding the kernel's network lock.
const vethGoneTimeout = time.Second

// deletions bounds the link deletions in flight: each holds an OS thread
// in the kernel for the RCU barriers after the link is gone, and the
// runtime keeps a thread it made. Past the bound, the namespace's own
// destruction deletes the veth, a little later. It is process-wide, as the
// threads are.
var deletions = make(chan struct{}, 4)

// deleteInBackground asks the kernel to delete the link called name, from
// a goroutine of its own, unless enough deletions are in flight already.
func deleteInBackground(name string) {
	select {
	case deletions <- struct{}{}:
		go func() {
			defer func() { <-deletions }()
			deleteLink(name) // ENODEV if the namespace took it first: fine
		}()
	default:
	}
}

// waitLinkGone returns once the link called name is gone from the caller's
// namespace: the host side of a sandbox's veth, whose namespace has died
// or is dying. It listens for link notifications (RTNLGRP_LINK), looks the
// link up, so that no deletion falls between the two, asks the kernel to
// delete it, and returns at the RTM_DELLINK of its index.
//
// The kernel unlists a deleted link, and says so, within 0.4 ms (p90 0.7
// ms here); the request itself returns only after the RCU barriers that
// follow, 19 ms later (27 ms p90), and leaving the veth to the namespace's
// destruction costs 20 to 36 ms (the kernel destroys dead namespaces in
// batches). So the request is sent from a goroutine of its own that may
// outlive Detach by those barriers, holding nothing but its netlink
// socket: the link is gone, for the host and for netlink, when Detach
// returns. If the kernel deletes it first (with the namespace), the
// request finds no link, which is no error.
// At most cap(deletions) requests are in flight (see deletions).
func waitLinkGone(name string) error {
	s, err := openNetlink(unix.NETLINK_ROUTE)
	if err != nil {
		return &OpError{Op: "wait for deletion of", Name: name, Err: err}
	}
	defer s.Close()
	if err := unix.Bind(s.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK}); err != nil {
		return &OpError{Op: "wait for deletion of", Name: name, Err: os.NewSyscallError("bind", err)}
	}
	deadline := time.Now().Add(vethGoneTimeout)
	for {
		index, _, err := s.linkIndex(name)
		if errors.Is(err, unix.ENODEV) {
			return nil
		}
		if err != nil {
			return &OpError{Op: "wait for deletion of", Name: name, Err: err}
		}
		deleteInBackground(name)
		gone, err := s.waitDelLink(index, deadline)
		switch {
		case gone:
			return nil
		case errors.Is(err, unix.ENOBUFS):
			continue // notifications were lost: look again
		case errors.Is(err, os.ErrDeadlineExceeded):
			return deleteLink(name)
		case err != nil:
			return &OpError{Op: "wait for deletion of", Name: name, Err: err}
		}
	}
}

// waitDelLink reads link notifications from s, which listens to
// RTNLGRP_LINK, until one deletes the link index (gone) or deadline passes
// (os.ErrDeadlineExceeded). An overrun receive buffer is unix.ENOBUFS.
func (s *nlSocket) waitDelLink(index int, deadline time.Time) (gone bool, err error) {
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false, os.ErrDeadlineExceeded
		}
		pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, int(left.Milliseconds())+1); err != nil && !errors.Is(err, unix.EINTR) {
			return false, os.NewSyscallError("poll", err)
		}
		for {
			n, _, err := unix.Recvfrom(s.fd, s.buf, unix.MSG_DONTWAIT)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				break
			}
			if err != nil {
				return false, err
			}
			msgs, err := syscall.ParseNetlinkMessage(s.buf[:n])
			if err != nil {
				return false, os.NewSyscallError("parse netlink message", err)
			}
			for _, m := range msgs {
				if m.Header.Type == unix.RTM_DELLINK && len(m.Data) >= unix.SizeofIfInfomsg &&
					int(int32(binary.NativeEndian.Uint32(m.Data[4:8]))) == index {
					return true, nil
				}
			}
		}
	}
}

// configureSandbox brings up eth0 (index ethIndex, or 0 if unknown)
// through s, a netlink socket in the sandbox's namespace, gives eth0 its
// address and adds the default route via gateway: one round trip carrying
// the three changes, plus one to find eth0 if ethIndex is 0 (lo is up
// already: see prepareInside). eth0 goes up
// first, so that the kernel starts enabling the host side's bridge port (see
// waitForwarding) while the rest is applied.
func configureSandbox(s *nlSocket, ethIndex int, addr netip.Prefix, gateway netip.Addr) error {
	if ethIndex == 0 {
		eth, err := s.getLink(sandboxIfName)
		if err != nil {
			return &OpError{Op: "find link", Name: sandboxIfName, Err: err}
		}
		ethIndex = eth.index
	}
	ethUp := setUp(ethIndex)

	ip := addr.Addr().As4()
	addrReq := nl.NewNetlinkRequest(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	am := nl.NewIfAddrmsg(unix.AF_INET)
	am.Prefixlen, am.Index = uint8(addr.Bits()), uint32(ethIndex)
	addrReq.AddData(am)
	addrReq.AddData(nl.NewRtAttr(unix.IFA_LOCAL, ip[:]))
	addrReq.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, ip[:]))
	brd := addrToU32(addr.Masked().Addr()) | ^uint32(0)>>addr.Bits()
	bb := u32ToAddr(brd).As4()
	addrReq.AddData(nl.NewRtAttr(unix.IFA_BROADCAST, bb[:]))

	gw := gateway.As4()
	routeReq := nl.NewNetlinkRequest(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	routeReq.AddData(nl.NewRtMsg()) // main table, universe scope, unicast, family 0
	routeReq.Data[0].(*nl.RtMsg).Family = unix.AF_INET
	routeReq.AddData(nl.NewRtAttr(unix.RTA_GATEWAY, gw[:]))
	routeReq.AddData(nl.NewRtAttr(unix.RTA_OIF, nl.Uint32Attr(uint32(ethIndex))))

	_, err := s.do(ethUp, addrReq, routeReq)
	if err != nil {
		return &OpError{Op: "configure " + addr.String() + " via " + gateway.String() + " on", Name: sandboxIfName, Err: err}
	}
	return nil
}

// setUp returns an RTM_NEWLINK request setting IFF_UP on link index.
func setUp(index int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, 0)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	msg.Change, msg.Flags = unix.IFF_UP, unix.IFF_UP
	req.AddData(msg)
	return req
}

// Bridge port attributes (linux/if_link.h).
const (
	iflaBrportState   = 1 // IFLA_BRPORT_STATE, u8
	brStateForwarding = 3 // BR_STATE_FORWARDING
)

// portForwardTimeout bounds waitForwarding.
const portForwardTimeout = 2 * time.Second

// waitForwarding waits until the bridge port name forwards frames.
//
// The host side is created up, and its carrier comes on when configureSandbox
// brings eth0 up; eth0 itself is ready at once (its carrier is on when it
// opens). But the host side gets its transmit queue, and the bridge enables
// the port, only when the kernel's link watcher, a work queue, handles the
// carrier change; until then frames are dropped, and a dropped first ARP
// request is retried only a second later. The link watcher activates the
// queue before it tells the bridge, so a forwarding port means both are done.
// The wait is usually well under a millisecond.
func waitForwarding(ctx context.Context, s *nlSocket, name string) error {
	ctx, cancel := context.WithTimeout(ctx, portForwardTimeout)
	defer cancel()
	delay := 20 * time.Microsecond
	for {
		li, err := s.getLink(name)
		if err != nil {
			return &OpError{Op: "get link", Name: name, Err: err}
		}
		if li.portState == brStateForwarding {
			return nil
		}
		select {
		case <-ctx.Done():
			return &OpError{Op: "wait for bridge port to forward", Name: name, Err: ctx.Err()}
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Millisecond)
	}
}
