package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
		if plus && errors.Is(err, unix.EINVAL) && kernelBefore(t, 6, 8) {
			t.Log("no lowerdir+ before Linux 6.8: only the one-string form is tested")
			continue
		}
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

// TestLookupUser resolves an image's User in passwd and group contents;
// what cannot be resolved, or does not fit, is a reason, never root.
func TestLookupUser(t *testing.T) {
	passwd := []byte("root:x:0:0::/root:/bin/sh\n# comment\napp:x:1000:1001::/home/app:/bin/sh\nhuge:x:4294967295:1::/:/bin/sh\nbad:x:12x:1::/:/bin/sh\n")
	group := []byte("root:x:0:\nstaff:x:50:\nwide:x:99999999999:\n")
	tests := []struct {
		user     string
		uid, gid int
		reason   string // a part of it; "" for none
	}{
		{"app", 1000, 1001, ""},
		{"1000", 1000, 1001, ""},
		{"app:staff", 1000, 50, ""},
		{"app:7", 1000, 7, ""},
		{"2000", 2000, 2000, ""}, // no entry: the same number, not root's group
		{"2000:staff", 2000, 50, ""},
		{"nobody-here", 0, 0, "no user"},
		{"app:nogroup", 0, 0, "no group"},
		{"4294967295", 0, 0, "does not fit"},
		{"99999999999", 0, 0, "does not fit"},
		{"huge", 0, 0, "does not fit"},
		{"bad", 0, 0, "no number"},
		{"app:wide", 0, 0, "does not fit"},
		{"app:4294967296", 0, 0, "does not fit"},
	}
	for _, tt := range tests {
		uid, gid, reason := lookupUser(tt.user, passwd, group)
		if tt.reason != "" {
			assert.Contains(t, reason, tt.reason, "lookupUser(%q)", tt.user)
			continue
		}
		assert.Empty(t, reason, "lookupUser(%q)", tt.user)
		assert.Equal(t, [2]int{tt.uid, tt.gid}, [2]int{uid, gid}, "lookupUser(%q)", tt.user)
	}
}

// BenchmarkImageMount measures what the parent does per run for an image
// of 20 layers: open and flock each layer, and mount their overlay.
func BenchmarkImageMount(b *testing.B) {
	testutil.RequireRoot(b)
	st, err := OpenStore(b.TempDir())
	require.NoError(b, err)
	img := &Image{store: st}
	for i := range 20 {
		d := fmt.Sprintf("sha256:%064x", i+1)
		h, _ := hexOf(d)
		require.NoError(b, os.Mkdir(st.path(storeLayers, h), 0o755))
		img.diffIDs = append(img.diffIDs, d)
	}
	for b.Loop() {
		mnt, release, err := img.mount(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		unix.Close(mnt)
		release()
	}
}

// kernelBefore reports whether the running kernel is older than
// major.minor.
func kernelBefore(t *testing.T, major, minor int) bool {
	var u unix.Utsname
	require.NoError(t, unix.Uname(&u))
	var ma, mi int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi)
	return ma < major || ma == major && mi < minor
}

// Where fsconfig takes at most 255 bytes (before Linux 6.5) and there is
// no lowerdir+, 40 layers are named by short links: run here on any
// kernel, and on the VM lane's 6.1 through TestImageManyLayers.
func TestOverlayOfShortNames(t *testing.T) {
	testutil.RequireRoot(t)
	var names []string
	for i := range 40 {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "only"+strconv.Itoa(i)), []byte(strconv.Itoa(i)), 0o644))
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		require.NoError(t, err)
		t.Cleanup(func() { unix.Close(fd) })
		names = append(names, "/proc/self/fd/"+strconv.Itoa(fd))
	}
	require.Greater(t, len(strings.Join(names, ":")), maxFsconfigString)
	mnt, err := overlayOfShortNames(names)
	require.NoError(t, err)
	defer unix.Close(mnt)
	for i := range 40 {
		b, err := readInRoot(mnt, "only"+strconv.Itoa(i))
		require.NoError(t, err)
		assert.Equal(t, strconv.Itoa(i), string(b), "layer %d", i)
	}
	left, _ := filepath.Glob(filepath.Join(os.TempDir(), "sandboxkit-layers-*"))
	assert.Empty(t, left, "the links' directory is removed")
}
