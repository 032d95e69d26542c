package netsetup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// nlSocket is a netlink socket for a short series of requests, opened by
// attach and closed before it returns. The netlink package's own calls open a
// socket per request and send one message at a time; Attach's hot path
// instead reuses one socket and sends related requests in one write, which
// the kernel processes in order. An nlSocket is not safe for concurrent use.
type nlSocket struct {
	fd  int
	buf []byte // receive buffer
}

// openNetlink opens a netlink socket of protocol proto (unix.NETLINK_ROUTE,
// unix.NETLINK_NETFILTER) in the calling thread's network namespace.
// [openNetlinkIn] opens one in another namespace.
func openNetlink(proto int) (*nlSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	// Errors carry only the errno; skip the copy of each failed request
	// that the kernel would append to its error message.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	return &nlSocket{fd: fd, buf: make([]byte, 32<<10)}, nil
}

// openNetlinkIn opens a NETLINK_ROUTE socket in the network namespace netns
// and, in the same trip into it, prepares the namespace (prepareInside).
// The socket stays in netns whatever thread uses it.
func openNetlinkIn(netns *os.File) (*nlSocket, error) {
	var s *nlSocket
	err := InNetns(netns, func() (err error) {
		s, err = prepareInside()
		return err
	})
	if err != nil {
		return nil, &OpError{Op: "open netlink in", Name: netns.Name(), Err: err}
	}
	return s, nil
}

// prepareInside, run by a thread in a sandbox's fresh network namespace,
// sets the namespace's sandboxSysctls, opens a NETLINK_ROUTE socket there
// and brings up lo with it, while the caller leases the address.
// attach and AttachNew share it, each in its own trip into the namespace.
func prepareInside() (*nlSocket, error) {
	if err := writeSysctls(); err != nil {
		return nil, err
	}
	s, err := openNetlink(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	if _, err := s.do(setUp(1)); err != nil { // lo is always index 1 (LOOPBACK_IFINDEX)
		s.Close()
		return nil, &OpError{Op: "set up", Name: "lo", Err: err}
	}
	return s, nil
}

// sandboxSysctls are the per-namespace settings of a sandbox's network.
// The first two are Docker's defaults for a container's own namespace: any
// user may bind any port and open ICMP echo ("ping") sockets. They matter
// most in a user namespace, whose root holds no capability over a
// namespace made outside it, but a non-root user of any sandbox gains them
// too. The third keeps eth0, made after it, from taking addresses and
// routes from IPv6 router advertisements: only IPv4 is configured, and any
// peer on the bridge holding CAP_NET_RAW could send one. It is optional, as
// a host without IPv6 has no /proc/sys/net/ipv6.
var sandboxSysctls = []sysctl{
	{"/proc/sys/net/ipv4/ip_unprivileged_port_start", "0", false},
	{"/proc/sys/net/ipv4/ping_group_range", "0 2147483647", false},
	{"/proc/sys/net/ipv6/conf/default/accept_ra", "0", true},
}

// sysctl is one setting under /proc/sys; optional means a missing file is
// not an error (the kernel lacks the feature).
type sysctl struct {
	path, value string
	optional    bool
}

// writeSysctls writes sandboxSysctls in the calling thread's network
// namespace: a file under /proc/sys/net belongs to the namespace of the
// thread that opens it.
func writeSysctls() error {
	for _, c := range sandboxSysctls {
		if err := c.write(); err != nil {
			return err
		}
	}
	return nil
}

// write sets c in the calling thread's network namespace.
func (c sysctl) write() error {
	fd, err := unix.Open(c.path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if c.optional && errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: c.path, Err: err}
	}
	_, err = unix.Write(fd, []byte(c.value))
	unix.Close(fd)
	if err != nil {
		return &os.PathError{Op: "write", Path: c.path, Err: err}
	}
	return nil
}

// Close closes the socket.
func (s *nlSocket) Close() error { return unix.Close(s.fd) }

// do sends reqs in one write, each with NLM_F_ACK, and waits for every
// answer. It returns the data messages answering each request (for a
// GET request, the object asked for) and the first request's error, if any,
// as a syscall.Errno; requests after a failed one are still processed by the
// kernel, so callers batch only requests that make sense on their own or
// that fail harmlessly after an earlier failure.
func (s *nlSocket) do(reqs ...*nl.NetlinkRequest) ([][][]byte, error) {
	var out []byte
	first := reqs[0].Seq
	for i, r := range reqs {
		r.Flags |= unix.NLM_F_ACK
		r.Seq = first + uint32(i) // consecutive, so an answer maps to its request
		out = append(out, r.Serialize()...)
	}
	if err := unix.Sendto(s.fd, out, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, os.NewSyscallError("sendto", err)
	}
	data := make([][][]byte, len(reqs))
	errs := make([]error, len(reqs))
	pending := len(reqs)
	for pending > 0 {
		n, _, err := unix.Recvfrom(s.fd, s.buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, os.NewSyscallError("recvfrom", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(s.buf[:n])
		if err != nil {
			return nil, os.NewSyscallError("parse netlink message", err)
		}
		for _, m := range msgs {
			i := int(m.Header.Seq - first)
			if m.Header.Seq < first || i >= len(reqs) {
				continue // not ours (a late answer to an earlier request)
			}
			if m.Header.Type != unix.NLMSG_ERROR {
				data[i] = append(data[i], bytes.Clone(m.Data)) // s.buf is reused
				continue
			}
			if len(m.Data) < 4 {
				return nil, os.NewSyscallError("parse netlink message", unix.EBADMSG)
			}
			if errno := -int32(binary.NativeEndian.Uint32(m.Data[:4])); errno != 0 {
				errs[i] = syscall.Errno(errno)
			}
			pending--
		}
	}
	for _, err := range errs {
		if err != nil {
			return data, err
		}
	}
	return data, nil
}

// linkInfo is what getLink reports about a link.
type linkInfo struct {
	index     int
	link      int    // IFLA_LINK: for a veth, the peer's index (in its namespace); 0 for none
	up        bool   // IFF_UP
	kind      string // IFLA_INFO_KIND, e.g. "bridge", "veth"; "" for none
	portState int    // IFLA_BRPORT_STATE when enslaved to a bridge, else -1
}

// newGetLink returns an RTM_GETLINK request for the link called name.
func newGetLink(name string) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, 0)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	// Leave out statistics, VFs and other bulky optional attributes: the
	// answer shrinks to about a third, and takes half as long.
	req.AddData(nl.NewRtAttr(unix.IFLA_EXT_MASK, nl.Uint32Attr(rtextFilterSkipStats)))
	return req
}

// rtextFilterSkipStats is RTEXT_FILTER_SKIP_STATS (linux/rtnetlink.h).
const rtextFilterSkipStats = 1 << 3

// linkIndex returns the index of the link called name and whether it is up,
// with two ioctls (SIOCGIFINDEX, SIOCGIFFLAGS) on s: a twentieth of the time
// an RTM_GETLINK takes. A missing link is unix.ENODEV.
func (s *nlSocket) linkIndex(name string) (index int, up bool, err error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, false, err
	}
	if err := unix.IoctlIfreq(s.fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, false, err
	}
	index = int(ifr.Uint32())
	ifr, _ = unix.NewIfreq(name)
	if err := unix.IoctlIfreq(s.fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return 0, false, err
	}
	return index, ifr.Uint16()&unix.IFF_UP != 0, nil
}

// getLink looks up the link called name; a missing link is unix.ENODEV.
func (s *nlSocket) getLink(name string) (linkInfo, error) {
	data, err := s.do(newGetLink(name))
	if err != nil {
		return linkInfo{}, err
	}
	for _, m := range data[0] {
		return parseLink(m)
	}
	return linkInfo{}, unix.ENODEV
}

// parseLink decodes an RTM_NEWLINK message.
func parseLink(m []byte) (linkInfo, error) {
	li := linkInfo{portState: -1}
	if len(m) < unix.SizeofIfInfomsg {
		return li, unix.EBADMSG
	}
	li.index = int(int32(binary.NativeEndian.Uint32(m[4:8])))
	li.up = binary.NativeEndian.Uint32(m[8:12])&unix.IFF_UP != 0
	attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfInfomsg:])
	if err != nil {
		return li, err
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.IFLA_LINK && len(a.Value) >= 4 {
			li.link = int(int32(binary.NativeEndian.Uint32(a.Value)))
		}
		if a.Attr.Type&^unix.NLA_F_NESTED != unix.IFLA_LINKINFO {
			continue
		}
		info, _ := nl.ParseRouteAttr(a.Value)
		for _, i := range info {
			switch i.Attr.Type &^ unix.NLA_F_NESTED {
			case nl.IFLA_INFO_KIND:
				li.kind = string(trimNUL(i.Value))
			case nl.IFLA_INFO_SLAVE_DATA:
				port, _ := nl.ParseRouteAttr(i.Value)
				for _, p := range port {
					if p.Attr.Type == iflaBrportState && len(p.Value) > 0 {
						li.portState = int(p.Value[0])
					}
				}
			}
		}
	}
	return li, nil
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}
