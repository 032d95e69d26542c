package testutil

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// ConsoleSocket listens on an AF_UNIX socket in a temporary directory, as
// an OCI runtime's --console-socket caller does, and returns its path and
// a channel that receives the first descriptor sent on it, named by the
// message's data (nil if none came). The descriptor is non-blocking, so
// that read deadlines work on it.
func ConsoleSocket(tb testing.TB) (string, <-chan *os.File) {
	tb.Helper()
	sock := filepath.Join(tb.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	got := make(chan *os.File, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		buf, oob := make([]byte, 256), make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || perr != nil || len(msgs) != 1 {
			got <- nil
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			got <- nil
			return
		}
		unix.SetNonblock(fds[0], true)
		got <- os.NewFile(uintptr(fds[0]), string(buf[:n]))
	}()
	return sock, got
}
