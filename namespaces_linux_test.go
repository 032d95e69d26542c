package sandbox_test

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox"
)

func TestCallersSessionKeyringIsOutOfReach(t *testing.T) {
	root := escapeRoot(t)
	name := fmt.Sprintf("sandboxkit-secret-%d", os.Getpid())
	// A profile that allows the key calls, so that only the keyring
	// itself stands in the way.
	sb := sandbox.New(sandbox.Dir(root)).WithSeccomp(sandbox.DefaultSeccompProfile().Allow("keyctl", "add_key", "request_key"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		// This thread gets a session keyring of its own holding a
		// secret, as a service's might; it is never unlocked, so the
		// runtime discards it with its keyring when the goroutine ends.
		runtime.LockOSThread()
		_, err := unix.KeyctlJoinSessionKeyring("sandboxkit-test")
		require.NoError(t, err, "join a session keyring for the caller")
		id, err := unix.AddKey("user", name, []byte("hunter2"), unix.KEY_SPEC_SESSION_KEYRING)
		require.NoError(t, err, "add_key")
		defer unix.KeyctlInt(unix.KEYCTL_REVOKE, id, 0, 0, 0)
		// The control: the caller itself finds the key.
		require.Equal(t, "found hunter2", tryEscape("session-key", []string{name}))
		for variant, sb := range variants(sb) {
			assert.Equal(t, "ENOKEY", attempt(t, sb, "session-key", name), "%s: the caller's session key must be out of reach", variant)
		}
	}()
	<-done
}
