package sandbox

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/testutil"
)

// TestOverlayOfBothWays mounts three layers with lowerdir+ (Linux 6.8+)
// and with the one lowerdir string older kernels need: both stack them
// topmost first.
func TestOverlayOfBothWays(t *testing.T) {
	testutil.RequireRoot(t)
	var names []string
	for i := range 3 {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "f"), []byte(strconv.Itoa(i)), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "only"+strconv.Itoa(i)), nil, 0o644))
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		require.NoError(t, err)
		t.Cleanup(func() { unix.Close(fd) })
		names = append(names, "/proc/self/fd/"+strconv.Itoa(fd))
	}
	for _, plus := range []bool{true, false} {
		mnt, err := overlayOf(names, plus)
		require.NoError(t, err, "overlayOf, lowerdir+ %v", plus)
		b, err := readInRoot(mnt, "f")
		require.NoError(t, err)
		assert.Equal(t, "0", string(b), "the topmost layer's file, lowerdir+ %v", plus)
		for i := range 3 {
			var st unix.Stat_t
			assert.NoError(t, unix.Fstatat(mnt, "only"+strconv.Itoa(i), &st, 0), "layer %d's own file", i)
		}
		unix.Close(mnt)
	}
}
