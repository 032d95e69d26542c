package netsetup

import (
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/testutil"
)

// nsInode returns the inode of the namespace file at path or open as f.
func nsInode(t *testing.T, f *os.File) uint64 {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Fstat(int(f.Fd()), &st), "fstat %s", f.Name())
	return st.Ino
}

func threadNetnsInode(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Stat(threadNetnsPath, &st))
	return st.Ino
}

func TestNewNetns(t *testing.T) {
	testutil.RequireRoot(t)
	// Pin the test to one thread so that "this goroutine's namespace" is
	// well defined before and after.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	host := threadNetnsInode(t)
	fdsBefore := netnsFds(t)

	ns1, err := makeNetns()
	require.NoError(t, err, "makeNetns")
	ns2, err := makeNetns()
	require.NoError(t, err, "makeNetns")

	assert.Equal(t, host, threadNetnsInode(t), "caller's namespace after newNetns")
	assert.NotEqual(t, host, nsInode(t, ns1), "newNetns returns the host's namespace")
	assert.NotEqual(t, nsInode(t, ns1), nsInode(t, ns2), "two newNetns calls share a namespace")
	typ, err := unix.IoctlRetInt(int(ns1.Fd()), unix.NS_GET_NSTYPE)
	require.NoError(t, err)
	assert.Equal(t, unix.CLONE_NEWNET, typ, "namespace type")
	flags, err := unix.FcntlInt(ns1.Fd(), unix.F_GETFD, 0)
	require.NoError(t, err)
	assert.NotZero(t, flags&unix.FD_CLOEXEC, "close-on-exec")

	// The namespace is empty but for lo, down.
	h := netnsHandle(t, ns1)
	links, err := h.LinkList()
	require.NoError(t, err)
	require.Len(t, links, 1, "links in a new namespace")
	assert.Equal(t, "lo", links[0].Attrs().Name)

	require.NoError(t, ns1.Close())
	require.NoError(t, ns2.Close())
	assert.Equal(t, fdsBefore, netnsFds(t), "namespace files open after Close")
}

func TestInNetns(t *testing.T) {
	testutil.RequireRoot(t)
	ns := newNetns(t)
	host := threadNetnsInode(t)
	var inside uint64
	require.NoError(t, InNetns(ns, func() error {
		inside = threadNetnsInode(t)
		return nil
	}))
	assert.Equal(t, nsInode(t, ns), inside, "inNetns runs fn in the namespace")
	assert.Equal(t, host, threadNetnsInode(t), "caller's namespace after inNetns")

	closed, err := makeNetns()
	require.NoError(t, err)
	require.NoError(t, closed.Close())
	err = InNetns(closed, func() error { return nil })
	assert.ErrorIs(t, err, os.ErrClosed, "inNetns on a closed namespace file")
	assert.False(t, isOpen(closed), "isOpen after Close")
	assert.True(t, isOpen(ns), "isOpen before Close")
}
