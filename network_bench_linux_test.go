package sandbox_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// BenchmarkPublishedPortThroughput streams 64 MiB per iteration from the
// host into a sink in a bridge sandbox: through the published port on
// 127.0.0.1 (the userland proxy), straight to the sandbox's address over
// the bridge, and, as the floor, to a sink on the host's own loopback.
func BenchmarkPublishedPortThroughput(b *testing.B) {
	testutil.RequireRoot(b)
	root := testutil.Rootfs(b)
	n := sandbox.Bridge(sandbox.BridgeName("sbxtput"))
	testutil.KeepIPForward(b)
	b.Cleanup(func() { sandbox.RemoveBridge(b.Context(), n) })
	share := b.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hostPort := l.Addr().(*net.TCPAddr).Port
	l.Close()

	done := make(chan error, 1)
	go func() {
		_, err := sandbox.New(sandbox.Dir(root)).WithNetwork(n).WithPublish(hostPort, 9000).
			WithBind(share, "/share").WithTimeout(10*time.Minute).
			WithFile("/sink", []byte("#!/bin/sh\nexec cat > /dev/null\n"), 0o755).
			Run(b.Context(), "/bin/sh", "-c", `
				ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1 > /share/ip.tmp && mv /share/ip.tmp /share/ip
				nc -ll -p 9000 -e /sink &
				while [ ! -e /share/stop ]; do sleep 0.1; done`)
		done <- err
	}()
	defer func() {
		os.WriteFile(filepath.Join(share, "stop"), nil, 0o644)
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	var ip string
	for deadline := time.Now().Add(10 * time.Second); ip == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		data, _ := os.ReadFile(filepath.Join(share, "ip"))
		ip = strings.TrimSpace(string(data))
	}
	if ip == "" {
		b.Fatal("the sink sandbox did not start")
	}

	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()

	const size = 64 << 20
	for _, c := range []struct{ name, addr string }{
		{"published-port-proxy", fmt.Sprintf("127.0.0.1:%d", hostPort)},
		{"bridge-direct", ip + ":9000"},
		{"host-loopback", sink.Addr().String()},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if err := send(c.addr, size); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// send connects to addr, retrying briefly while the sink restarts, and
// writes n bytes.
func send(addr string, n int) error {
	var c net.Conn
	var err error
	for range 200 {
		if c, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 1<<20)
	for sent := 0; sent < n; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
	return c.(*net.TCPConn).CloseWrite()
}
