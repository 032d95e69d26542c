package oci

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckVersion(t *testing.T) {
	for _, v := range []string{"1.0.0", "1.0.2-dev", "1.1.0-rc.1", "1.2.1", "1.3.0", "1.3.7+build.5", specs.Version} {
		assert.Empty(t, CheckVersion(v), "CheckVersion(%q): want accepted", v)
	}
	for _, v := range []string{"", "1.0", "0.9.0", "1.4.0", "2.0.0", "1.01.0", "a.b.c", "1.0.0.1"} {
		assert.NotEmpty(t, CheckVersion(v), "CheckVersion(%q): want refused", v)
	}
}

func TestLeftoversNamesEverySetField(t *testing.T) {
	adj := 0
	s := &specs.Spec{
		Hostname: "",
		Process:  &specs.Process{OOMScoreAdj: &adj, Terminal: true},
		Linux:    &specs.Linux{Sysctl: map[string]string{"net.ipv4.ip_forward": "1"}, MaskedPaths: []string{}},
		Mounts:   []specs.Mount{{}, {UIDMappings: []specs.LinuxIDMapping{{Size: 1}}}},
	}
	got, err := Leftovers(s)
	require.NoError(t, err)
	assert.Equal(t, []string{"linux.sysctl.net.ipv4.ip_forward", "mounts[1].uidMappings[0].size", "process.terminal"}, got,
		"Leftovers: a zero oomScoreAdj pointer and empty fields are not set; the rest are")
}
