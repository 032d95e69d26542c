package netsetup

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/sandboxkit/sandbox/internal/state"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// attach calls attachNetns and registers Detach as a cleanup. Cleanups run last
// registered first, so Detach runs while ns is still open, as on a start
// that failed: Detach deletes the veth.
func attach(t testing.TB, cfg Config, ns *os.File) *Attachment {
	t.Helper()
	a, err := attachNetns(testCtx(t), cfg, ns)
	require.NoError(t, err, "attach(%s, %s)", cfg.Bridge, ns.Name())
	t.Cleanup(func() { assert.NoError(t, a.Detach(context.Background()), "Detach") })
	return a
}

func leaseFiles(t testing.TB, cfg Config) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(cfg.StateDir, cfg.Bridge, "*"+leaseSuffix))
	require.NoError(t, err)
	return m
}

func TestAttach(t *testing.T) {
	cfg := testConfig(t)
	ns := newNetns(t)
	a := attach(t, cfg, ns)

	assert.True(t, cfg.Subnet.Contains(a.IP()), "IP %s in subnet %s", a.IP(), cfg.Subnet)
	assert.Equal(t, cfg.Subnet.Addr().Next(), a.Gateway())
	assert.Equal(t, cfg.Subnet.Bits(), a.Prefix().Bits())

	// Host side: the bridge has the gateway, the veth is up and enslaved.
	br, err := netlink.LinkByName(cfg.Bridge)
	require.NoError(t, err, "bridge %s", cfg.Bridge)
	addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
	require.NoError(t, err)
	require.Len(t, addrs, 1)
	assert.Equal(t, a.Gateway().String(), addrs[0].IP.String())
	veth, err := netlink.LinkByName(a.Veth())
	require.NoError(t, err, "host veth %s", a.Veth())
	assert.Equal(t, br.Attrs().Index, veth.Attrs().MasterIndex, "veth master")
	assert.NotZero(t, veth.Attrs().Flags&net.FlagUp, "veth up")

	// Sandbox side: lo and eth0 up, address, default route via the gateway.
	h := netnsHandle(t, ns)
	lo, err := h.LinkByName("lo")
	require.NoError(t, err)
	assert.NotZero(t, lo.Attrs().Flags&net.FlagUp, "lo up")
	eth, err := h.LinkByName("eth0")
	require.NoError(t, err, "eth0 in sandbox")
	assert.NotZero(t, eth.Attrs().Flags&net.FlagUp, "eth0 up")
	mac := sandboxMAC(a.IP())
	assert.Equal(t, net.HardwareAddr(mac[:]).String(), eth.Attrs().HardwareAddr.String(), "eth0's MAC is fixed by its address")
	eaddrs, err := h.AddrList(eth, netlink.FAMILY_V4)
	require.NoError(t, err)
	require.Len(t, eaddrs, 1)
	assert.Equal(t, a.Prefix().String(), eaddrs[0].IPNet.String())
	routes, err := h.RouteList(eth, netlink.FAMILY_V4)
	require.NoError(t, err)
	var gw string
	for _, r := range routes {
		if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
			gw = r.Gw.String()
		}
	}
	assert.Equal(t, a.Gateway().String(), gw, "default route via gateway")
	var sysctls []string
	require.NoError(t, InNetns(ns, func() error {
		for _, c := range sandboxSysctls {
			b, err := os.ReadFile(c.path)
			if err != nil {
				return err
			}
			sysctls = append(sysctls, strings.Join(strings.Fields(string(b)), " "))
		}
		return nil
	}))
	assert.Equal(t, []string{"0", "0 2147483647", "0"}, sysctls, "any user may bind any port and ping; no interface made later takes IPv6 router advertisements")

	// State: one lease file naming this process as holder.
	files := leaseFiles(t, cfg)
	require.Len(t, files, 1)
	rec, err := readLease(files[0])
	require.NoError(t, err)
	assert.Equal(t, a.IP(), rec.IP)
	assert.Equal(t, os.Getpid(), rec.Holder.PID)
	assert.Equal(t, a.Veth(), rec.Veth)

	// The host reaches the sandbox.
	serveTCP(t, ns, ":7000")
	peer, echo, err := talkTCP(t, nil, netip.AddrPortFrom(a.IP(), 7000).String(), "hi")
	require.NoError(t, err, "host -> sandbox")
	assert.Equal(t, a.Gateway().String(), peer)
	assert.Equal(t, "hi", echo)

	// Detach with the namespace still open deletes the veth and the lease.
	require.NoError(t, a.Detach(testCtx(t)))
	require.NoError(t, a.Detach(testCtx(t)), "second Detach")
	_, err = netlink.LinkByName(a.Veth())
	assert.Error(t, err, "veth %s after Detach", a.Veth())
	_, err = h.LinkByName("eth0")
	assert.Error(t, err, "eth0 in the namespace after Detach")
	assert.Empty(t, leaseFiles(t, cfg), "lease files after Detach")
}

func TestAttachTwoSandboxes(t *testing.T) {
	cfg := testConfig(t)
	ns1, ns2 := newNetns(t), newNetns(t)
	a1, a2 := attach(t, cfg, ns1), attach(t, cfg, ns2)
	require.NotEqual(t, a1.IP(), a2.IP(), "two leases")

	serveTCP(t, ns1, ":7001")
	peer, echo, err := talkTCP(t, ns2, netip.AddrPortFrom(a1.IP(), 7001).String(), "ping")
	require.NoError(t, err, "sandbox 2 -> sandbox 1")
	assert.Equal(t, a2.IP().String(), peer, "sandboxes talk without NAT")
	assert.Equal(t, "ping", echo)
}

func TestAttachConcurrent(t *testing.T) {
	cfg := testConfig(t)
	const n = 20
	nss := make([]*os.File, n)
	for i := range nss {
		nss[i] = newNetns(t)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		atts []*Attachment
		errs []error
	)
	ctx := testCtx(t)
	for _, ns := range nss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := attachNetns(ctx, cfg, ns)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			atts = append(atts, a)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, a := range atts {
			assert.NoError(t, a.Detach(context.Background()))
		}
	})
	require.Empty(t, errs, "concurrent Attach")
	seen := make(map[netip.Addr]bool)
	for _, a := range atts {
		assert.False(t, seen[a.IP()], "IP %s leased twice", a.IP())
		seen[a.IP()] = true
	}
	assert.Len(t, seen, n)
	assert.Len(t, leaseFiles(t, cfg), n)
}

// deadProc returns the identity of a process that has exited.
func deadProc(t testing.TB) state.Owner {
	t.Helper()
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	require.NoError(t, err)
	id, err := state.Read(p.Pid) // still readable: a zombie until waited for
	require.NoError(t, err)
	_, err = p.Wait()
	require.NoError(t, err)
	return id
}

func TestAttachReclaimsStaleLease(t *testing.T) {
	tests := []struct {
		name     string
		isolated bool // no DNAT map at all
	}{
		{"dnat", false},
		{"isolated", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Subnet = netip.MustParsePrefix(cfg.Subnet.Addr().String() + "/30") // one address
			// One port for each DNAT map: on every host address, and on one,
			// the gateway's. Isolated bridges have no maps.
			cfg.Publish = []Port{{Proto: "tcp", HostIP: netip.IPv4Unspecified(), SandboxPort: 80},
				{Proto: "tcp", HostIP: cfg.Subnet.Addr().Next(), SandboxPort: 81}}
			cfg.DNAT = true // the kernel mappings are what this checks
			cfg.Isolated = tt.isolated

			// The gateway's address exists once the bridge does.
			warm, err := attachNetns(testCtx(t), Config{Bridge: cfg.Bridge, Subnet: cfg.Subnet, StateDir: cfg.StateDir, Isolated: cfg.Isolated},
				newNetns(t))
			require.NoError(t, err)
			require.NoError(t, warm.Detach(testCtx(t)))

			// A holder that crashed: its lease names a dead process, and its port
			// mapping and veth are still there; its namespace lives on (standing in
			// for a sandbox process the holder left behind).
			oldNs := newNetns(t)
			old, err := attachNetns(testCtx(t), cfg, oldNs)
			require.NoError(t, err)
			t.Cleanup(func() { old.Detach(context.Background()) }) // if the test fails before the reclaim
			for _, p := range old.proxies {
				p.close() // the crashed holder's sockets are gone with it
			}
			dead := deadProc(t)
			rec, err := readLease(old.lease)
			require.NoError(t, err)
			rec.Holder = dead
			dir := filepath.Join(cfg.StateDir, cfg.Bridge)
			require.NoError(t, writeLease(dir, leaseFileName(rec.IP, dead), rec))
			require.NoError(t, os.Remove(old.lease))

			// The subnet is full only if the stale lease counts.
			a, err := attachNetns(testCtx(t), cfg, newNetns(t))
			require.NoError(t, err, "Attach on a subnet whose one address a dead holder leased")
			t.Cleanup(func() { assert.NoError(t, a.Detach(context.Background()), "Detach") })
			assert.Equal(t, old.IP(), a.IP(), "the stale lease's address is reused")
			files := leaseFiles(t, cfg)
			require.Len(t, files, 1)
			_, holder, ok := parseLeaseFileName(filepath.Base(files[0]))
			require.True(t, ok)
			assert.Equal(t, os.Getpid(), holder.PID, "new lease holder")

			_, err = netlink.LinkByName(old.Veth())
			assert.Error(t, err, "the stale lease's veth %s is deleted", old.Veth())
			_, err = netnsHandle(t, oldNs).LinkByName("eth0")
			assert.Error(t, err, "the stale lease's eth0 is gone from its namespace")

			c, err := nftables.New()
			require.NoError(t, err)
			published, publishedOn := mapElements(a.IP(), a.Ports())
			for _, m := range []struct {
				set  *nftables.Set
				want []nftables.SetElement
			}{{publishedMap(tableName(cfg.Bridge)), published}, {publishedOnMap(tableName(cfg.Bridge)), publishedOn}} {
				els, err := c.GetSetElements(m.set)
				if tt.isolated {
					assert.Error(t, err, "an isolated bridge has no map %s", m.set.Name)
					continue
				}
				require.NoError(t, err)
				require.Len(t, els, 1, "only the new mapping remains in %s", m.set.Name)
				assert.Equal(t, m.want[0].Key, els[0].Key, "map %s", m.set.Name)
			}
			if tt.isolated {
				assert.NoError(t, deletePortsTo(cfg.Bridge, a.IP()), "deleting mappings from missing maps")
				assert.NoError(t, deletePortsTo("sbxt-none", a.IP()), "deleting mappings from a missing table")
			}

			// A live holder's lease is never reclaimed: the subnet is now full.
			_, err = attachNetns(testCtx(t), cfg, newNetns(t))
			assert.ErrorIs(t, err, ErrNoAddress, "Attach on a full subnet")
		})
	}
}

func TestAttachPublish(t *testing.T) {
	cfg := testConfig(t)
	cfg.Publish = []Port{{Proto: "tcp", HostIP: netip.IPv4Unspecified(), SandboxPort: 8080},
		{Proto: "udp", HostIP: netip.IPv4Unspecified(), SandboxPort: 5353}}
	cfg.DNAT = true // the kernel mapping is what this checks
	ns := newNetns(t)
	serveTCP(t, ns, ":8080")
	serveUDP(t, ns, ":5353")
	a := attach(t, cfg, ns)
	ports := a.Ports()
	require.Len(t, ports, 2)
	for _, p := range ports {
		assert.NotZero(t, p.HostPort, "HostPort 0 is replaced by the bound port")
	}

	peer, echo, err := talkTCP(t, nil, "127.0.0.1:"+strconv.Itoa(int(ports[0].HostPort)), "over tcp")
	require.NoError(t, err, "127.0.0.1:%d -> sandbox:8080", ports[0].HostPort)
	assert.Equal(t, "over tcp", echo)
	assert.Equal(t, a.Gateway().String(), peer, "the proxy connects from the gateway")

	uc, err := net.Dial("udp4", "127.0.0.1:"+strconv.Itoa(int(ports[1].HostPort)))
	require.NoError(t, err)
	t.Cleanup(func() { uc.Close() })
	require.NoError(t, uc.SetDeadline(time.Now().Add(2*time.Second)))
	_, err = uc.Write([]byte("over udp"))
	require.NoError(t, err)
	buf := make([]byte, 100)
	n, err := uc.Read(buf)
	require.NoError(t, err, "udp reply through the proxy")
	assert.Equal(t, a.Gateway().String()+" over udp", string(buf[:n]))

	// After Detach the ports are free and the mappings gone.
	require.NoError(t, a.Detach(testCtx(t)))
	ln, err := net.Listen("tcp4", "0.0.0.0:"+strconv.Itoa(int(ports[0].HostPort)))
	require.NoError(t, err, "host port free after Detach")
	ln.Close()
	c, err := nftables.New()
	require.NoError(t, err)
	els, err := c.GetSetElements(publishedMap(tableName(cfg.Bridge)))
	require.NoError(t, err)
	assert.Empty(t, els, "map elements after Detach")
}

func TestAttachPortInUse(t *testing.T) {
	tests := []struct {
		name  string
		proto string
	}{
		{"tcp", "tcp"},
		{"udp", "udp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			var port int
			if tt.proto == "tcp" {
				ln, err := net.Listen("tcp4", "127.0.0.1:0")
				require.NoError(t, err)
				t.Cleanup(func() { ln.Close() })
				port = ln.Addr().(*net.TCPAddr).Port
			} else {
				pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
				require.NoError(t, err)
				t.Cleanup(func() { pc.Close() })
				port = pc.LocalAddr().(*net.UDPAddr).Port
			}
			cfg.Publish = []Port{{Proto: tt.proto, SandboxPort: 1}, {Proto: tt.proto, HostPort: uint16(port), SandboxPort: 2}}
			a, err := attachNetns(testCtx(t), cfg, newNetns(t))
			require.Nil(t, a)
			var pe *PortInUseError
			require.ErrorAs(t, err, &pe, "Attach publishing a busy port")
			assert.Equal(t, uint16(port), pe.HostPort)
			assert.ErrorIs(t, err, syscall.EADDRINUSE)
			_, err = netlink.LinkByName(cfg.Bridge)
			assert.Error(t, err, "no bridge made before the ports are bound")
			assert.Empty(t, leaseFiles(t, cfg))
		})
	}
}

func TestAttachSubnetConflict(t *testing.T) {
	cfg := testConfig(t)
	// A bridge owning a route inside the subnet stands in for a LAN.
	dummy := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "sbxd" + randHex(3)}}
	require.NoError(t, netlink.LinkAdd(dummy))
	t.Cleanup(func() { assert.NoError(t, netlink.LinkDel(dummy)) })
	other := netip.PrefixFrom(cfg.Subnet.Addr().Next().Next().Next().Next(), 30)
	addr, err := netlink.ParseAddr(other.String())
	require.NoError(t, err)
	require.NoError(t, netlink.AddrAdd(dummy, addr))
	require.NoError(t, netlink.LinkSetUp(dummy))

	_, err = attachNetns(testCtx(t), cfg, newNetns(t))
	var se *SubnetConflictError
	require.ErrorAs(t, err, &se, "Attach with a subnet overlapping %s", other)
	assert.Equal(t, dummy.Name, se.Link)
	assert.Equal(t, other.Masked(), se.Route)
}

func TestAttachBridgeConflict(t *testing.T) {
	cfg := testConfig(t)
	attach(t, cfg, newNetns(t))
	other := cfg
	other.Isolated = true
	_, err := attachNetns(testCtx(t), other, newNetns(t))
	var be *BridgeConflictError
	assert.ErrorAs(t, err, &be, "Attach with another isolation mode")
}

func TestRemoveBridgeInUse(t *testing.T) {
	cfg := testConfig(t)
	a := attach(t, cfg, newNetns(t))
	err := RemoveBridge(testCtx(t), cfg)
	var be *BridgeInUseError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, 1, be.Leases)
	_, err = netlink.LinkByName(cfg.Bridge)
	assert.NoError(t, err, "bridge kept while in use")
	require.NoError(t, a.Detach(testCtx(t)))
}

// TestDetachAfterSandboxExit follows a sandbox's life: the caller closes the
// namespace once the sandbox runs in it, the sandbox exits, then Detach,
// which returns once the kernel has deleted the veth with the namespace.
func TestDetachAfterSandboxExit(t *testing.T) {
	cfg := testConfig(t)
	ns := newNetns(t)
	a, err := attachNetns(testCtx(t), cfg, ns)
	require.NoError(t, err)
	t.Cleanup(func() { a.Detach(context.Background()) }) // a failed check must not keep the bridge in use
	// The sandbox's socket stands in for its processes: it keeps the
	// namespace alive after the caller closes it.
	var ln net.Listener
	require.NoError(t, InNetns(ns, func() (err error) {
		ln, err = net.Listen("tcp4", ":7002")
		return err
	}))
	t.Cleanup(func() { ln.Close() })
	require.NoError(t, ns.Close(), "close the namespace once the sandbox runs")
	_, err = netlink.LinkByName(a.Veth())
	require.NoError(t, err, "veth while the sandbox runs")

	require.NoError(t, ln.Close(), "the sandbox exits")
	start := time.Now()
	require.NoError(t, a.Detach(testCtx(t)))
	took := time.Since(start)
	t.Logf("Detach, waiting for the kernel to delete the veth: %v", took)
	_, err = netlink.LinkByName(a.Veth())
	assert.Error(t, err, "veth %s after Detach", a.Veth())
	assert.Less(t, took, vethGoneTimeout, "the kernel deleted the veth; Detach did not have to")
	assert.Empty(t, leaseFiles(t, cfg))
}

// TestDetachWhileTheNamespaceLivesOn: something other than the sandbox
// (here a socket) keeps its namespace alive after the caller closed it, so
// the kernel does not delete the veth; Detach deletes it after
// vethGoneTimeout, taking eth0 and the address off the bridge before the
// lease is freed.
func TestDetachWhileTheNamespaceLivesOn(t *testing.T) {
	cfg := testConfig(t)
	ns := newNetns(t)
	a, err := attachNetns(testCtx(t), cfg, ns)
	require.NoError(t, err)
	t.Cleanup(func() { a.Detach(context.Background()) })
	var ln net.Listener
	require.NoError(t, InNetns(ns, func() (err error) {
		ln, err = net.Listen("tcp4", ":7002")
		return err
	}))
	t.Cleanup(func() { ln.Close() })
	h := netnsHandle(t, ns)
	require.NoError(t, ns.Close())

	// Something else (the listener's socket) keeps the namespace alive:
	// Detach deletes the veth, and eth0 with it, all the same.
	require.NoError(t, a.Detach(testCtx(t)))
	_, err = netlink.LinkByName(a.Veth())
	assert.Error(t, err, "veth %s after Detach", a.Veth())
	_, err = h.LinkByName("eth0")
	assert.Error(t, err, "eth0 in the namespace after Detach")
	assert.Empty(t, leaseFiles(t, cfg))
}

func TestAttachInvalid(t *testing.T) {
	testutil.RequireRoot(t) // newNetns
	notNetns, err := os.Open("/proc/self/ns/uts")
	require.NoError(t, err)
	t.Cleanup(func() { notNetns.Close() })
	closed, err := makeNetns()
	require.NoError(t, err)
	require.NoError(t, closed.Close())
	tests := []struct {
		name  string
		cfg   Config
		netns *os.File
		field string
	}{
		{"closed netns", Config{}, closed, "netns"},
		{"bad bridge", Config{Bridge: "br/0"}, notNetns, "Bridge"},
		{"long bridge", Config{Bridge: "sandboxbridge0123"}, notNetns, "Bridge"},
		{"nil netns", Config{}, nil, "netns"},
		{"not a netns", Config{}, notNetns, "netns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := attachNetns(testCtx(t), tt.cfg, tt.netns)
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			assert.ErrorIs(t, err, ErrInvalidConfig)
		})
	}
}

func TestAttachNew(t *testing.T) {
	cfg := testConfig(t)
	a, ns, err := AttachNew(testCtx(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { a.Detach(context.Background()); ns.Close() }) // a failed check must not keep the bridge in use
	require.NoError(t, checkNetns(ns), "AttachNew returns an open network namespace")
	assert.True(t, cfg.Subnet.Contains(a.IP()), "IP %s in subnet %s", a.IP(), cfg.Subnet)

	// The namespace is the wired one: the host reaches a server in it.
	serveTCP(t, ns, ":7000")
	peer, echo, err := talkTCP(t, nil, netip.AddrPortFrom(a.IP(), 7000).String(), "hi")
	require.NoError(t, err, "host -> sandbox")
	assert.Equal(t, a.Gateway().String(), peer)
	assert.Equal(t, "hi", echo)

	// As after a sandbox ran: the caller closes the namespace, then
	// Detach frees the lease (the server's socket keeps the namespace,
	// and the veth, until the test ends; testConfig checks they go).
	require.NoError(t, ns.Close())
	require.NoError(t, a.Detach(testCtx(t)))
	assert.Empty(t, leaseFiles(t, cfg), "lease files after Detach")
}

func TestAttachNewFailureLeavesNoNamespace(t *testing.T) {
	cfg := testConfig(t) // its cleanup checks links, leases and namespace files
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	cfg.Publish = []Port{{Proto: "tcp", HostPort: uint16(ln.Addr().(*net.TCPAddr).Port), SandboxPort: 1}}
	a, ns, err := AttachNew(testCtx(t), cfg)
	var inUse *PortInUseError
	require.ErrorAs(t, err, &inUse)
	assert.Nil(t, a)
	assert.Nil(t, ns)
}

// TestBridgeRefusesRouterAdvertisements checks the host side's IPv6
// settings of a bridge Attach made, and of one made by an earlier version,
// whose record lacks them: the next Attach sets them.
func TestBridgeRefusesRouterAdvertisements(t *testing.T) {
	cfg := testConfig(t)
	attach(t, cfg, newNetns(t))
	read := func() []string {
		var got []string
		for _, name := range []string{"accept_ra", "autoconf"} {
			b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + cfg.Bridge + "/" + name)
			require.NoError(t, err)
			got = append(got, strings.TrimSpace(string(b)))
		}
		return got
	}
	assert.Equal(t, []string{"0", "0"}, read(), "accept_ra and autoconf of a new bridge")

	for _, name := range []string{"accept_ra", "autoconf"} {
		require.NoError(t, os.WriteFile("/proc/sys/net/ipv6/conf/"+cfg.Bridge+"/"+name, []byte("1"), 0o644))
	}
	recPath := filepath.Join(cfg.StateDir, cfg.Bridge, "bridge.json")
	rec, err := readBridgeRecord(recPath)
	require.NoError(t, err)
	require.True(t, rec.RAOff)
	rec.RAOff = false
	require.NoError(t, writeBridgeRecord(recPath, rec))
	attach(t, cfg, newNetns(t))
	assert.Equal(t, []string{"0", "0"}, read(), "accept_ra and autoconf of a bridge made before they were set")
	rec, err = readBridgeRecord(recPath)
	require.NoError(t, err)
	assert.True(t, rec.RAOff, "the record says they are set")
}
