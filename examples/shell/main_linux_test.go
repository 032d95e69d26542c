package main

import (
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/sandboxtest"
)

// openPTY returns a new terminal of 33x99: the master, as a user's
// terminal emulator holds it, and the slave, run's terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)
	require.NoError(t, unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0))
	require.NoError(t, unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 99}))
	fd, _, errno := unix.Syscall(unix.SYS_IOCTL, m.Fd(), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	require.Zero(t, errno)
	s := os.NewFile(fd, "pty")
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// lockedBuffer is a strings.Builder safe for one writer and one reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestShellOnATerminal(t *testing.T) {
	sandboxtest.Requirements(t)
	master, slave := openPTY(t)
	var seen lockedBuffer
	go io.Copy(&seen, master)
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := run(t.Context(), nil, slave, slave)
		done <- result{code, err}
	}()
	_, err := master.WriteString("stty size; hostname; exit 3\r")
	require.NoError(t, err)
	select {
	case r := <-done:
		require.NoError(t, r.err)
		assert.Equal(t, 3, r.code, "the shell's exit code: %q", seen.String())
	case <-time.After(30 * time.Second):
		t.Fatal("the shell did not end")
	}
	assert.Eventually(t, func() bool { return strings.Contains(seen.String(), "33 99") }, 5*time.Second, 10*time.Millisecond,
		"the sandbox's terminal has the host terminal's size: %q", seen.String())
	assert.Contains(t, seen.String(), "shell", "the sandbox's host name")
}
