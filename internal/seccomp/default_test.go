package seccomp

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefaultIsFresh(t *testing.T) {
	a, b := Default(), Default()
	a.Allow[0] = "mount"
	a.Rules[0].Args[0].Mask = 0
	assert.NotEqual(t, "mount", b.Allow[0], "Default() results must not share Allow")
	assert.NotZero(t, b.Rules[0].Args[0].Mask, "Default() results must not share Rules")
}

func TestDefaultNamesKnown(t *testing.T) {
	p := Default()
	names := p.Allow
	for _, r := range p.Rules {
		names = append(names, r.Names...)
	}
	for _, name := range names {
		assert.True(t, knownSyscall(name), "Default() names %q, which no architecture defines", name)
	}
	seen := map[string]bool{}
	for _, name := range p.Allow {
		require.False(t, seen[name], "Default().Allow lists %q twice", name)
		seen[name] = true
	}
}
