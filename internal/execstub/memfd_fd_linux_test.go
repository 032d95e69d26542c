package execstub_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/execstub"
)

// A stub at a low descriptor would be overwritten by the child's own
// descriptors (0 to 9) before it is executed: the lowest free numbers are
// handed out first, so free them and check where the stub lands.
func TestStubsAreAboveTheChildsDescriptors(t *testing.T) {
	var low []int
	for range 12 { // take what is free below 10 now, then free it
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		require.NoError(t, err)
		low = append(low, fd)
	}
	for _, fd := range low {
		if fd >= execstub.MinFD {
			unix.Close(fd)
		}
	}
	defer func() {
		for _, fd := range low {
			if fd < execstub.MinFD {
				unix.Close(fd)
			}
		}
	}()
	// Free the lowest of them again: the stub would get it.
	freed := low[0]
	require.Less(t, freed, execstub.MinFD, "a free descriptor below 10 to offer")
	unix.Close(freed)
	low = low[1:]
	for _, open := range []func() (int, error){execstub.Open, execstub.OpenInit} {
		fd, err := open()
		require.NoError(t, err)
		require.GreaterOrEqual(t, fd, execstub.MinFD, "the stub is at %d, where the child's setup may overwrite it", fd)
		unix.Close(fd)
	}
}
