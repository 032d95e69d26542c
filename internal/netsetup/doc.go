// Package netsetup builds the host side of "bridge" networking for a sandbox:
// a Linux bridge with the subnet's gateway address, one IPv4 lease and one veth
// pair per sandbox, outbound NAT, published ports and the /etc/hosts and
// /etc/resolv.conf contents the sandbox should see.
//
// The sandbox's processes run in their own network namespace, which exists
// before them: the parent makes it and connects it with [AttachNew],
// starts the sandbox's first process so that it joins the namespace
// (setns) before anything else, then closes the namespace file so that the
// namespace ends with the sandbox's last process. After the sandbox has
// exited it calls [Attachment.Detach]:
//
//	a, ns, err := netsetup.AttachNew(ctx, netsetup.Config{
//		Publish: []netsetup.Port{{Proto: "tcp", SandboxPort: 8080}},
//	})
//	if err != nil {
//		return err
//	}
//	if err := start(ns); err != nil { // the child calls setns(ns, CLONE_NEWNET) first
//		err = errors.Join(err, a.Detach(context.WithoutCancel(ctx))) // ns still open: deletes the veth
//		ns.Close()
//		return err
//	}
//	ns.Close() // the namespace now lives as long as the sandbox's processes
//	fmt.Println(a.IP(), a.Ports()[0].HostPort)
//	wait() // the sandbox has exited
//	// The kernel removes the veth with the namespace; Detach waits for it.
//	err = a.Detach(context.WithoutCancel(ctx))
//
// Detach tells the two endings apart by whether the namespace file given to
// attach is still open; closing it at the right moment is the caller's part.
//
// # Layout on the host
//
//   - bridge Config.Bridge (default "sbx0") holding the first address of
//     Config.Subnet (default 10.209.240.0/20) as the gateway;
//   - per sandbox a veth pair: "sbx" + 8 hex digits on the host, enslaved to
//     the bridge, and "eth0" inside the sandbox with the leased address, a
//     MAC address made of it (02:53 and the address's four bytes, so that
//     the host's and the peers' neighbour entries stay right when the
//     address passes to the next sandbox) and a default route via the
//     gateway;
//   - the nftables table "ip sandboxkit_<bridge>" (see nft_linux.go for the
//     rules) holding the masquerade rule, the published-port maps (one for
//     ports on every host address, one for ports on one host address) and,
//     for an isolated bridge, the isolation rules;
//   - per published port a socket of the calling process, bound to the
//     port's host address (Port.HostIP, 127.0.0.1 unless set: see
//     [DefaultHostIP]), from which a proxy forwards to the sandbox;
//   - the state directory Config.StateDir (default /run/sandboxkit/net): a lock
//     file, and per bridge a record of how it was made plus one lease file per
//     address in use.
//
// # Requirements
//
// Linux 4.11 or later with veth, bridge, nf_tables, nft_nat, nft_masq and
// nft_fib, CAP_NET_ADMIN and CAP_SYS_ADMIN in the initial user namespace
// (unshare and setns of network namespaces), and a writable StateDir.
// Only IPv4 is configured: the sandbox gets no routable IPv6 address, and
// takes none from router advertisements (see Security).
//
// # Errors
//
// Invalid settings are reported together, as *[FieldError] values joined into
// one error that matches [ErrInvalidConfig]. Host conditions have their own
// types: [SubnetConflictError], [BridgeConflictError], [PortInUseError],
// [BridgeInUseError], and [ErrNoAddress] when the subnet is full. Every failing
// netlink or nftables call is an *[OpError] naming the operation and the link
// or table; file failures are *fs.PathError values.
//
// # Cleanup
//
// Everything Attach creates is recorded in the state directory before it is
// made. Attach undoes its own work on failure. Detach releases the lease,
// published ports and proxies, and returns only once the veth is gone: it
// deletes the veth while the caller still holds the namespace open, and
// otherwise waits for the kernel to delete it with the namespace (deleting
// it after a second if something else keeps the namespace alive). The
// lease is freed last, so an address is never handed out while a veth of
// its previous sandbox exists. A lease is live while its holder (the
// process that called Attach) runs; a lease whose holder is gone is
// reclaimed, together with its port mappings and veth, by the next Attach
// or RemoveBridge on the same bridge. [RemoveBridge] deletes the bridge,
// the table and the bridge's state once no lease is active.
//
// # Security
//
// A non-isolated bridge routes and masquerades sandbox traffic to everything
// the host can reach, and lets sandboxes reach the host's own addresses, like
// Docker's default bridge. An isolated bridge (Config.Isolated) forwards
// nothing between the bridge and other interfaces, in either direction, and
// accepts traffic from sandboxes to the host only when it is addressed to the
// gateway address; its published ports are served by the userland proxy alone.
// Published ports are bound to 127.0.0.1 unless Port.HostIP names another
// host address (or 0.0.0.0, every address): a port published for the host's
// own use is then not open to the host's networks. DNAT, when asked for,
// follows the same address: a port on one address is mapped for traffic to
// that address only, and one on loopback not at all.
//
// Sandboxes on the same bridge can always reach each other: they share one
// layer-2 segment, on which a sandbox holding CAP_NET_RAW (the default
// outside a user namespace) can send any frame. So that none can hand out
// IPv6 addresses and routes with a router advertisement, the host's side of
// every bridge ignores them (accept_ra=0 and autoconf=0, as Docker sets),
// and so does every sandbox's eth0 (accept_ra=0 in its namespace).
package netsetup
