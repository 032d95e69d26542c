package sandbox

import (
	"context"
	"os"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/cleanup"
	"github.com/sandboxkit/sandbox/internal/netsetup"
)

// bridgeRun is a run's place on a bridge: the network namespace made for
// it, until the child has joined it, and the attachment.
type bridgeRun struct {
	netns *os.File
	att   *netsetup.Attachment
}

// attachBridge makes the sandbox's network namespace and wires it to the
// bridge. The undo steps detach (deleting the veth while the namespace
// lives) and then close the namespace.
func (pl *plan) attachBridge(ctx context.Context, undo *cleanup.Stack) (*bridgeRun, error) {
	att, ns, err := netsetup.AttachNew(ctx, pl.net.bridge)
	if err != nil {
		return nil, bridgeError(err)
	}
	b := &bridgeRun{netns: ns, att: att}
	undo.PushErr(b.closeNetns)
	undo.Push(b.att.Detach)
	return b, nil
}

// pendingBridge is a bridge attachment being made on its own goroutine
// while the rest of the sandbox is prepared.
type pendingBridge struct {
	done chan struct{}
	b    *bridgeRun
	undo cleanup.Stack // written by the goroutine; read after done
	err  error
}

// startBridge starts attaching to the sandbox's bridge, or returns nil for
// other networks.
func (pl *plan) startBridge(ctx context.Context) *pendingBridge {
	if pl.net.kind != networkBridge {
		return nil
	}
	p := &pendingBridge{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.b, p.err = pl.attachBridge(ctx, &p.undo)
	}()
	return p
}

// wait returns the attachment once it is made; nil without a bridge.
func (p *pendingBridge) wait() (*bridgeRun, error) {
	if p == nil {
		return nil, nil
	}
	<-p.done
	return p.b, p.err
}

// unwind waits for the attachment and undoes whatever of it was made.
func (p *pendingBridge) unwind(ctx context.Context) error {
	if p == nil {
		return nil
	}
	<-p.done
	return p.undo.Unwind(ctx)
}

// netnsFD returns the namespace's descriptor for the child's setns, or -1.
func (b *bridgeRun) netnsFD() int {
	if b == nil {
		return -1
	}
	return int(b.netns.Fd())
}

// closeNetns closes the parent's hold on the namespace, once the child
// holds it or the run failed. It is idempotent.
func (b *bridgeRun) closeNetns() error {
	if b == nil || b.netns == nil {
		return nil
	}
	err := b.netns.Close()
	b.netns = nil
	return err
}

// sysfs returns a detached, read-only sysfs mount of the bridge's
// namespace, or -1 without a bridge. A sysfs shows the network namespace
// of whoever makes it, and only that namespace's owner may: a sandbox in a
// user namespace cannot make its own, so the parent makes it from a thread
// in the namespace, and the child mounts it.
func (b *bridgeRun) sysfs() (int, error) {
	if b == nil {
		return -1, nil
	}
	mnt := -1
	err := netsetup.InNetns(b.netns, func() (err error) {
		mnt, err = newSysfs()
		return err
	})
	if err != nil && mnt >= 0 { // made, but the thread could not return
		unix.Close(mnt)
		mnt = -1
	}
	return mnt, err
}

// sysfsOrHost returns a new read-only sysfs of the bridge's namespace, or
// of the host's without a bridge (b nil): see newSysfs.
func (b *bridgeRun) sysfsOrHost() (int, error) {
	if b == nil {
		return newSysfs()
	}
	return b.sysfs()
}

// etcFiles returns the sandbox's /etc/hosts and /etc/resolv.conf.
func (b *bridgeRun) etcFiles() []file {
	if b == nil {
		return nil
	}
	return []file{
		{path: "/etc/hosts", data: b.att.HostsFile(), mode: 0o644},
		{path: "/etc/resolv.conf", data: b.att.ResolvConf(), mode: 0o644},
	}
}

// info returns what the Result reports of the run's network.
func (b *bridgeRun) info() *NetworkInfo {
	if b == nil {
		return nil
	}
	n := &NetworkInfo{IP: b.att.IP(), Prefix: b.att.Subnet(), Gateway: b.att.Gateway()}
	for _, p := range b.att.Ports() { // Proto is filled in by netsetup
		n.Ports = append(n.Ports, PublishedPort{Proto: p.Proto, HostIP: p.HostIP, HostPort: int(p.HostPort), SandboxPort: int(p.SandboxPort)})
	}
	return n
}

func removeBridge(ctx context.Context, n Network) error {
	return bridgeError(netsetup.RemoveBridge(ctx, n.bridge))
}
