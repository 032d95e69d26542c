package netsetup

import (
	"context"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProxy runs the proxies between loopback sockets; no root needed.
func TestProxy(t *testing.T) {
	tests := []struct{ proto string }{{"tcp"}, {"udp"}}
	for _, tt := range tests {
		t.Run(tt.proto, func(t *testing.T) {
			goroutines := runtime.NumGoroutine()
			backend := echoBackend(t, tt.proto)
			b, err := listen(context.Background(), Port{Proto: tt.proto})
			require.NoError(t, err)
			p := startProxy(b, backend)
			c, err := net.DialTimeout(tt.proto+"4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(b.port))), time.Second)
			require.NoError(t, err)
			require.NoError(t, c.SetDeadline(time.Now().Add(2*time.Second)))
			_, err = c.Write([]byte("hello"))
			require.NoError(t, err)
			buf := make([]byte, 5)
			_, err = io.ReadFull(c, buf)
			require.NoError(t, err, "reply through the %s proxy", tt.proto)
			assert.Equal(t, "hello", string(buf))
			// close with the connection still open: it must end it and return.
			p.close()
			c.Close()
			assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= goroutines+2 }, time.Second, 10*time.Millisecond,
				"proxy goroutines gone after close") // +2: the backend's own goroutines
		})
	}
}

// echoBackend starts a loopback echo server, stopped at cleanup.
func echoBackend(t *testing.T, proto string) netip.AddrPort {
	t.Helper()
	if proto == "udp" {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		require.NoError(t, err)
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 1500)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo(buf[:n], from)
			}
		}()
		t.Cleanup(func() { pc.Close(); <-done })
		return pc.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().(*net.TCPAddr).AddrPort()
}
