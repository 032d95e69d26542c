package netsetup

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/cleanup"
	"github.com/sandboxkit/sandbox/internal/state"
)

// attachNetns connects the network namespace netns to cfg's bridge: it creates the
// bridge and its nft table if needed, leases an address, creates the veth
// pair with "eth0" (address, default route via the gateway) directly inside
// netns, brings up lo and eth0, and publishes cfg.Publish.
//
// netns must be an open network namespace with no "eth0", normally a fresh
// one from makeNetns; it does not take ownership of it, but keeps the
// *os.File to learn at Detach whether the caller still holds it (see
// [Attachment.Detach]). Attach runs before the sandbox's processes exist:
// the caller then starts them in netns and closes netns.
//
// ctx bounds Attach only: the returned Attachment lives until
// [Attachment.Detach], which the caller must call. On error nothing Attach
// made is left behind (except a bridge and table it created, which
// RemoveBridge deletes).
//
// Errors: *[FieldError] (matches [ErrInvalidConfig]; also for a nil or
// non-network-namespace netns), *[PortInUseError], *[SubnetConflictError],
// *[BridgeConflictError], [ErrNoAddress] (in an *[OpError]), *[OpError] and
// *fs.PathError for host failures.
func attachNetns(ctx context.Context, cfg Config, netns *os.File) (*Attachment, error) {
	if err := checkNetns(netns); err != nil {
		_, cerr := cfg.withDefaults()
		return nil, errors.Join(cerr, err)
	}
	return attachWith(ctx, cfg, false, func() inside {
		s, err := openNetlinkIn(netns)
		return inside{netns, s, err}
	})
}

// AttachNew makes a network namespace, as [newNetns] does, and attaches it,
// as [attach] does, the two overlapping: the address is leased while the
// kernel makes the namespace, and the thread that makes it also opens the
// netlink socket in it, which saves Attach's own trip into the namespace.
// The caller owns the returned namespace, as one from newNetns, and closes
// it once the sandbox's first process has joined it (see
// [Attachment.Detach]). On error nothing is left, the namespace included.
func AttachNew(ctx context.Context, cfg Config) (*Attachment, *os.File, error) {
	a, err := attachWith(ctx, cfg, true, func() inside {
		var in inside
		in.ns, in.err = unshareNetns(func() (err error) {
			in.s, err = prepareInside()
			return err
		})
		if in.err != nil && in.s != nil {
			in.s.Close()
			in.s = nil
		}
		return in
	})
	if err != nil {
		return nil, nil, err
	}
	return a, a.netns, nil
}

// inside is a sandbox's network namespace, with a netlink socket in it,
// or the error that kept attach from having them.
type inside struct {
	ns  *os.File
	s   *nlSocket
	err error
}

// attachWith does the work of Attach and AttachNew. enter, run on a goroutine
// of its own meanwhile, yields the namespace; owned says whether attachWith
// closes it on error.
func attachWith(ctx context.Context, cfg Config, owned bool, enter func() inside) (_ *Attachment, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var undo cleanup.Stack
	defer func() {
		if err != nil {
			err = errors.Join(err, undo.Unwind(context.WithoutCancel(ctx)))
		}
	}()

	// Bind published ports first: a port in use fails before the host is touched.
	bound := make([]boundPort, len(cfg.Publish))
	ports := make([]Port, len(cfg.Publish))
	for i, p := range cfg.Publish {
		b, err := listen(ctx, p)
		if err != nil {
			return nil, err
		}
		bound[i] = b
		undo.PushErr(b.Close)
		p.HostPort = b.port
		ports[i] = p
	}

	// Enter the namespace meanwhile: a thread's trip into it and back,
	// and for AttachNew the kernel's making of it. The deferred receive
	// means no goroutine outlives attachWith.
	nsc := make(chan inside, 1)
	go func() { nsc <- enter() }()
	var in inside // set once received from nsc
	received := false
	defer func() {
		if !received {
			in = <-nsc
			if owned && in.ns != nil {
				in.ns.Close()
			}
		}
		if in.s != nil {
			in.s.Close()
		}
	}()

	self, err := state.Self()
	if err != nil {
		return nil, err
	}
	s, err := openNetlink(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, &OpError{Op: "open netlink", Name: "route", Err: err}
	}
	defer s.Close()
	a := &Attachment{
		gateway: cfg.Subnet.Addr().Next(),
		prefix:  cfg.Subnet,
		ports:   ports,
		veth:    newVethName(),
		cfg:     cfg,
	}

	bridgeIndex, err := a.acquireLease(ctx, s, self)
	if err != nil {
		return nil, err
	}
	undo.PushErr(func() error { return removeFile(a.lease) })

	in, received = <-nsc, true
	if owned && in.ns != nil {
		undo.PushErr(in.ns.Close)
	}
	if in.err != nil {
		return nil, in.err
	}
	a.netns = in.ns
	var ethIndex int
	err = withFd(in.ns, func(fd int) (err error) {
		ethIndex, err = createVeth(s, a.veth, bridgeIndex, a.ip, fd)
		return err
	})
	if errors.Is(err, os.ErrClosed) {
		return nil, &OpError{Op: "create veth in", Name: in.ns.Name(), Err: err}
	}
	if err != nil {
		return nil, err
	}
	// The namespace is open until attachWith returns, so deleting the veth is
	// the only way to take it off the bridge.
	undo.PushErr(func() error { return deleteLink(a.veth) })
	if err := configureSandbox(in.s, ethIndex, a.Prefix(), a.gateway); err != nil {
		return nil, err
	}
	if err := waitForwarding(ctx, s, a.veth); err != nil {
		return nil, err
	}
	if mapped := a.mapped(); len(mapped) > 0 {
		if err := addPorts(cfg.Bridge, a.ip, mapped); err != nil {
			return nil, err
		}
		undo.PushErr(func() error { return deletePorts(cfg.Bridge, a.ip, mapped) })
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, b := range bound {
		a.proxies = append(a.proxies, startProxy(b, netip.AddrPortFrom(a.ip, ports[i].SandboxPort)))
	}
	return a, nil
}

// acquireLease ensures the bridge and writes a lease file for a free address under
// the state lock, reclaiming stale leases first. It sets a.ip and a.lease and
// returns the bridge's index.
func (a *Attachment) acquireLease(ctx context.Context, s *nlSocket, self state.Owner) (int, error) {
	cfg := a.cfg
	unlock, err := lockState(ctx, cfg.StateDir)
	if err != nil {
		return 0, err
	}
	defer unlock()
	bridgeIndex, err := ensureBridge(s, cfg)
	if err != nil {
		return 0, err
	}
	dir := bridgeDir(cfg)
	scan, err := scanLeases(dir, self)
	if err != nil {
		return 0, err
	}
	var unreclaimed []error
	for _, name := range scan.stale {
		if err := reclaim(cfg, dir, name); err != nil {
			// Keep the address out of use; its remains may still route.
			ip, _, _ := parseLeaseFileName(name)
			scan.taken[ip] = true
			unreclaimed = append(unreclaimed, fmt.Errorf("reclaim %s: %w", ip, err))
		}
	}
	ip, ok := pickAddress(cfg.Subnet, scan.taken)
	if !ok {
		// Say why dead holders' addresses are still taken.
		return 0, &OpError{Op: "allocate address on", Name: cfg.Bridge, Err: errors.Join(append([]error{ErrNoAddress}, unreclaimed...)...)}
	}
	name := leaseFileName(ip, self)
	rec := leaseRecord{IP: ip, Holder: self, Veth: a.veth, Ports: a.ports, Created: time.Now().UTC()}
	if err := writeLease(dir, name, rec); err != nil {
		return 0, err
	}
	a.ip, a.lease = ip, filepath.Join(dir, name)
	return bridgeIndex, nil
}

// reclaim frees a stale lease of cfg's bridge: its port mappings (an
// isolated bridge has none), its veth if the kernel has not already
// destroyed it with the namespace, then its file.
// Preconditions: the state lock is held.
func reclaim(cfg Config, dir, name string) error {
	path := filepath.Join(dir, name)
	rec, err := readLease(path)
	if err == nil {
		if !cfg.Isolated {
			if err := deletePortsTo(cfg.Bridge, rec.IP); err != nil {
				return err
			}
		}
		if rec.Veth != "" {
			if err := deleteLink(rec.Veth); err != nil {
				return err
			}
		}
	}
	return removeFile(path)
}

// Detach releases what Attach acquired, in reverse order: it stops the
// proxies (waiting for their goroutines), deletes the port mappings, makes
// sure the host veth is gone, and frees the lease. When it returns nothing
// of the attachment is left, and the address is free for the next sandbox.
//
// How the veth goes depends only on the netns file passed to Attach, which
// tells Detach whether the namespace can still exist:
//
//   - Closed (the sandbox ran): call Detach after the sandbox's last process
//     has exited. The kernel is then destroying the namespace, and would
//     delete both ends of the veth with it, 20 to 40 ms later (it destroys
//     dead namespaces in batches, behind RCU barriers). Detach asks for the
//     deletion itself and returns at the kernel's notice that the link is
//     gone, within a millisecond (see waitLinkGone); it also covers a
//     namespace that something else keeps alive (a bind mount, a process
//     that joined it), whose veth the kernel would never delete.
//   - Still open (the sandbox never started, or the caller keeps the
//     namespace for itself): Detach deletes the veth, which takes "eth0"
//     inside netns with it, so the address is off the bridge when its lease
//     is freed. Close netns only after Detach returns.
//
// "Closed" means closed with (*os.File).Close; a descriptor closed behind
// the *os.File's back counts as open, which costs only the slow path.
//
// Detach is idempotent and safe for concurrent use; later calls return the
// first call's result. It does not stop early when ctx is cancelled, since
// teardown must finish; a nil Attachment is a no-op.
func (a *Attachment) Detach(ctx context.Context) error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.detached {
		return a.err
	}
	a.detached = true
	for _, p := range a.proxies {
		p.close()
	}
	var errs []error
	if mapped := a.mapped(); len(mapped) > 0 {
		errs = append(errs, deletePorts(a.cfg.Bridge, a.ip, mapped))
	}
	if isOpen(a.netns) {
		errs = append(errs, deleteLink(a.veth))
	} else {
		errs = append(errs, waitLinkGone(a.veth))
	}
	a.netns = nil // the caller's; not needed any more
	if err := errors.Join(errs...); err != nil {
		// Keep the lease: the address may still be mapped or routed. It is
		// reclaimed once this process has exited.
		a.err = fmt.Errorf("detach %s: %w", a.ip, err)
		return a.err
	}
	a.err = removeFile(a.lease)
	return a.err
}

// mapped returns the published ports that DNAT maps in the kernel: none
// without Config.DNAT, and none published on loopback.
func (a *Attachment) mapped() []Port {
	if !a.cfg.DNAT {
		return nil
	}
	return dnatPorts(a.ports)
}

// removeFile removes path; a missing file is not an error.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
