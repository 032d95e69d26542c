package oci

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// SendConsole sends the pty master f over the AF_UNIX socket at path, as
// runc's --console-socket does (SCM_RIGHTS, with the pty's name as data).
func SendConsole(path string, f *os.File) error {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return fmt.Errorf("console socket: %w", err)
	}
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("console socket %s: not a unix socket", path)
	}
	oob := unix.UnixRights(int(f.Fd()))
	if _, _, err := uc.WriteMsgUnix([]byte(f.Name()), oob, nil); err != nil {
		return fmt.Errorf("console socket %s: %w", path, err)
	}
	return nil
}
