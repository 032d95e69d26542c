package oci

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckID(t *testing.T) {
	// What CheckID accepted when it was this regexp, before the loop.
	was := regexp.MustCompile(`^[\w+\-.]+$`)
	for _, id := range []string{"a", "test-1a2b", "A_b+c-d.e", "0", "...", ".a", "a..b", "x.", "runc_1.2"} {
		assert.Empty(t, CheckID(id), "CheckID(%q): want accepted", id)
		assert.True(t, was.MatchString(id), "%q: the old pattern accepted it too", id)
	}
	for _, id := range []string{"", ".", "..", "a/b", "../x", "a b", "é", "a\x00", "a\n", "a:b", "ünï", "a*"} {
		assert.NotEmpty(t, CheckID(id), "CheckID(%q): want refused", id)
		if id != "." && id != ".." {
			assert.False(t, was.MatchString(id), "%q: the old pattern refused it too", id)
		}
	}
}

func TestRemoveTakesTheWholeStateDirectory(t *testing.T) {
	root := t.TempDir()
	c, err := New(root, "c1")
	require.NoError(t, err)
	c.PID = 1
	require.NoError(t, c.Save())
	require.NoError(t, os.WriteFile(c.Gate(), nil, 0o600))
	require.NoError(t, c.Remove())
	_, err = os.Stat(c.Dir())
	assert.ErrorIs(t, err, os.ErrNotExist, "Remove of a state directory with its state and gate")
	require.NoError(t, c.Remove(), "a second Remove: nothing left to remove is no error")

	// Whatever else is in it (a newer runtime's file) goes too.
	c, err = New(root, "c2")
	require.NoError(t, err)
	require.NoError(t, c.Save())
	require.NoError(t, os.MkdirAll(filepath.Join(c.Dir(), "extra", "deeper"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(c.Dir(), "extra", "deeper", "f"), []byte("x"), 0o600))
	require.NoError(t, c.Remove())
	_, err = os.Stat(c.Dir())
	assert.ErrorIs(t, err, os.ErrNotExist, "Remove of a state directory holding more than the runtime's files")
	entries, err := os.ReadDir(root)
	require.NoError(t, err)
	assert.Empty(t, entries, "the root holds nothing after both Removes")
}
