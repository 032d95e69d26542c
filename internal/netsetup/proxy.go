package netsetup

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Proxy timeouts.
const (
	proxyDialTimeout = 5 * time.Second  // connecting to the sandbox
	udpFlowIdle      = 60 * time.Second // a UDP client's flow is dropped after this silence
)

// The userland proxy serves a published port on its host address (Port.HostIP)
// and forwards each TCP connection or UDP flow to the sandbox.
//
// Why a proxy next to the DNAT rules (as Docker does): the kernel will not
// route a DNATed packet whose source is 127.0.0.1 (that needs route_localnet,
// a host-wide weakening), so connections to 127.0.0.1:HostPort are only
// served here. Its socket also reserves the port on its address (on every
// address for 0.0.0.0), so that no other program can bind it and silently
// lose its traffic to the DNAT rule, and it serves isolated bridges, which
// have no DNAT rules. On a non-isolated bridge with DNAT the rules run first,
// so only loopback connections reach the proxy; the sandbox sees proxied
// connections coming from the gateway address.
//
// Ports are published on 127.0.0.1 unless the caller names another address:
// a port published for the host's own use (a test's database, with trust
// authentication) is then not open to every network the host is on.

// proxy is a running forwarder for one published port.
type proxy interface {
	// close stops the proxy, closes every connection and waits for all of
	// its goroutines.
	close()
}

// boundPort is a published port's socket, bound but not yet served.
type boundPort struct {
	ln   net.Listener // for "tcp"
	pc   *net.UDPConn // for "udp"
	port uint16       // the port actually bound
}

// Close releases the socket of a port that will not be served.
func (b boundPort) Close() error {
	if b.ln != nil {
		return b.ln.Close()
	}
	return b.pc.Close()
}

// listen binds p.HostPort (0: any free port) on p.HostIP (zero:
// DefaultHostIP). A bind failure is a *PortInUseError.
func listen(ctx context.Context, p Port) (boundPort, error) {
	var lc net.ListenConfig
	if !p.HostIP.IsValid() {
		p.HostIP = netip.MustParseAddr(DefaultHostIP)
	}
	addr := netip.AddrPortFrom(p.HostIP, p.HostPort).String()
	if p.Proto == "udp" {
		pc, err := lc.ListenPacket(ctx, "udp4", addr)
		if err != nil {
			return boundPort{}, &PortInUseError{Proto: p.Proto, HostIP: p.HostIP, HostPort: p.HostPort, Err: unwrapOp(err)}
		}
		u := pc.(*net.UDPConn)
		return boundPort{pc: u, port: uint16(u.LocalAddr().(*net.UDPAddr).Port)}, nil
	}
	ln, err := lc.Listen(ctx, "tcp4", addr)
	if err != nil {
		return boundPort{}, &PortInUseError{Proto: p.Proto, HostIP: p.HostIP, HostPort: p.HostPort, Err: unwrapOp(err)}
	}
	return boundPort{ln: ln, port: uint16(ln.Addr().(*net.TCPAddr).Port)}, nil
}

// unwrapOp strips a *net.OpError so PortInUseError carries the errno itself.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err
	}
	return err
}

// startProxy starts forwarding b to backend; the proxy owns b from now on.
func startProxy(b boundPort, backend netip.AddrPort) proxy {
	if b.ln != nil {
		return startTCPProxy(b.ln, backend)
	}
	return startUDPProxy(b.pc, backend)
}

// tcpProxy forwards accepted connections to backend.
type tcpProxy struct {
	ln      net.Listener
	backend netip.AddrPort
	ctx     context.Context // ends dials when the proxy closes
	cancel  context.CancelFunc
	wg      sync.WaitGroup // serve and every connection handler

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // guarded by mu
	closed bool                  // guarded by mu
}

func startTCPProxy(ln net.Listener, backend netip.AddrPort) *tcpProxy {
	p := &tcpProxy{ln: ln, backend: backend, conns: make(map[net.Conn]struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.serve()
	return p
}

func (p *tcpProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or similar: back off briefly.
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

// track registers c so close can end it; false (c closed) after close.
func (p *tcpProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *tcpProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *tcpProxy) handle(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	d := net.Dialer{Timeout: proxyDialTimeout}
	server, err := d.DialContext(p.ctx, "tcp4", p.backend.String())
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)
	done := make(chan struct{})
	go func() { // joined below, before handle returns
		pipe(server, client)
		close(done)
	}()
	pipe(client, server)
	<-done
}

// pipe copies src to dst, then half-closes dst so the peer sees EOF.
func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

func (p *tcpProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.cancel()
	p.ln.Close()
	p.wg.Wait()
}

// udpProxy forwards datagrams; each client address gets its own connected
// socket towards the backend, so replies find their way back.
type udpProxy struct {
	pc      *net.UDPConn
	backend netip.AddrPort
	wg      sync.WaitGroup // serve and every flow's reply reader

	mu     sync.Mutex
	flows  map[netip.AddrPort]*net.UDPConn // guarded by mu
	closed bool                            // guarded by mu
}

func startUDPProxy(pc *net.UDPConn, backend netip.AddrPort) *udpProxy {
	p := &udpProxy{pc: pc, backend: backend, flows: make(map[netip.AddrPort]*net.UDPConn)}
	p.wg.Add(1)
	go p.serve()
	return p
}

func (p *udpProxy) serve() {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := p.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		flow := p.flow(from)
		if flow != nil {
			_, _ = flow.Write(buf[:n])
		}
	}
}

// flow returns the backend socket for client, creating it and its reply
// reader on first use; nil if the proxy is closed or the dial failed.
func (p *udpProxy) flow(client netip.AddrPort) *net.UDPConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	if c, ok := p.flows[client]; ok {
		return c
	}
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(p.backend))
	if err != nil {
		return nil
	}
	p.flows[client] = c
	p.wg.Add(1)
	go p.replies(client, c)
	return c
}

// replies copies the backend's datagrams back to client until the flow is
// idle for udpFlowIdle or the proxy closes.
func (p *udpProxy) replies(client netip.AddrPort, c *net.UDPConn) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		if p.flows[client] == c {
			delete(p.flows, client)
		}
		p.mu.Unlock()
		c.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		_ = c.SetReadDeadline(time.Now().Add(udpFlowIdle))
		n, err := c.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ECONNREFUSED from an ICMP port unreachable
		}
		if _, err := p.pc.WriteToUDPAddrPort(buf[:n], client); errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

func (p *udpProxy) close() {
	p.mu.Lock()
	p.closed = true
	for _, c := range p.flows {
		c.Close()
	}
	p.mu.Unlock()
	p.pc.Close()
	p.wg.Wait()
}
