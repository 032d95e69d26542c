package netsetup

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		fields []string // nil means valid
	}{
		{"zero", Config{}, nil},
		{"full", Config{Bridge: "br-sbx.1", Subnet: netip.MustParsePrefix("10.1.0.0/30"), StateDir: "/tmp/x",
			Publish: []Port{{SandboxPort: 80}, {Proto: "udp", HostPort: 53, SandboxPort: 53}},
			DNS:     []netip.Addr{netip.MustParseAddr("192.0.2.53")}, Hostname: "box-1.local"}, nil},
		{"bridge slash", Config{Bridge: "a/b"}, []string{"Bridge"}},
		{"bridge long", Config{Bridge: "abcdefghijklmnop"}, []string{"Bridge"}},
		{"bridge dash", Config{Bridge: "-x"}, []string{"Bridge"}},
		{"ipv6 subnet", Config{Subnet: netip.MustParsePrefix("fd00::/64")}, []string{"Subnet"}},
		{"host bits", Config{Subnet: netip.MustParsePrefix("10.1.0.5/24")}, []string{"Subnet"}},
		{"tiny subnet", Config{Subnet: netip.MustParsePrefix("10.1.0.0/31")}, []string{"Subnet"}},
		{"loopback subnet", Config{Subnet: netip.MustParsePrefix("127.0.0.0/8")}, []string{"Subnet"}},
		{"relative state", Config{StateDir: "run"}, []string{"StateDir"}},
		{"bad proto", Config{Publish: []Port{{Proto: "sctp", SandboxPort: 1}}}, []string{"Publish[0].Proto"}},
		{"zero sandbox port", Config{Publish: []Port{{}}}, []string{"Publish[0].SandboxPort"}},
		{"duplicate host port", Config{Publish: []Port{{HostPort: 80, SandboxPort: 1}, {Proto: "tcp", HostPort: 80, SandboxPort: 2}}},
			[]string{"Publish[1].HostPort"}},
		{"one port on two host addresses", Config{Publish: []Port{
			{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 80, SandboxPort: 1},
			{HostIP: netip.MustParseAddr("192.0.2.1"), HostPort: 80, SandboxPort: 2},
			{HostIP: netip.MustParseAddr("::ffff:192.0.2.2"), HostPort: 80, SandboxPort: 3}}}, nil},
		{"one port on every address and one", Config{Publish: []Port{
			{HostIP: netip.IPv4Unspecified(), HostPort: 80, SandboxPort: 1},
			{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 80, SandboxPort: 2}}},
			[]string{"Publish[1].HostPort"}},
		{"ipv6 host address", Config{Publish: []Port{{HostIP: netip.IPv6Loopback(), SandboxPort: 1}}}, []string{"Publish[0].HostIP"}},
		{"multicast host address", Config{Publish: []Port{{HostIP: netip.MustParseAddr("224.0.0.1"), SandboxPort: 1}}},
			[]string{"Publish[0].HostIP"}},
		{"broadcast host address", Config{Publish: []Port{{HostIP: netip.MustParseAddr("255.255.255.255"), SandboxPort: 1}}},
			[]string{"Publish[0].HostIP"}},
		{"bad dns", Config{DNS: []netip.Addr{{}}}, []string{"DNS[0]"}},
		{"all at once", Config{Bridge: "a b", StateDir: "x"}, []string{"Bridge", "StateDir"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.fields == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidConfig)
			var got []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var fe *FieldError
				require.True(t, errors.As(e, &fe), "%v is a *FieldError", e)
				got = append(got, fe.Field)
			}
			assert.Equal(t, tt.fields, got)
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{Publish: []Port{{SandboxPort: 80}}}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, DefaultBridge, c.Bridge)
	assert.Equal(t, DefaultSubnet, c.Subnet.String())
	assert.Equal(t, DefaultStateDir, c.StateDir)
	assert.Equal(t, "tcp", c.Publish[0].Proto)
	assert.Equal(t, netip.MustParseAddr("127.0.0.1"), c.Publish[0].HostIP, "ports are published on loopback by default")
}
