package oci

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// OpenPTY returns a new pseudo-terminal of the host's devpts: its master
// and its slave, which becomes the container's stdio.
func OpenPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err == nil {
		err = unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0)
	}
	if err != nil {
		m.Close()
		return nil, nil, os.NewSyscallError("ioctl /dev/ptmx", err)
	}
	path := "/dev/pts/" + strconv.Itoa(n)
	s, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, s, nil
}

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
