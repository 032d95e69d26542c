package state

import (
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSelfIsAliveAndADeadProcessIsNot(t *testing.T) {
	self, err := Self()
	require.NoError(t, err)
	assert.Equal(t, os.Getpid(), self.PID)
	assert.True(t, self.Alive())
	assert.False(t, Owner{PID: self.PID, Start: self.Start + 1}.Alive(), "a reused PID is another process")

	cmd := exec.Command("true")
	require.NoError(t, cmd.Start())
	child, err := Read(cmd.Process.Pid)
	require.NoError(t, err)
	require.NoError(t, cmd.Wait())
	assert.False(t, child.Alive(), "a reaped process is gone")
}

func TestParseOwner(t *testing.T) {
	o := Owner{PID: 42, Start: 123456}
	got, ok := ParseOwner(o.String(), '-')
	require.True(t, ok)
	assert.Equal(t, o, got)
	for _, bad := range []string{"", "42", "x-1", "42-y", "0-5", "-1-5"} {
		_, ok := ParseOwner(bad, '-')
		assert.False(t, ok, "%q", bad)
	}
}
