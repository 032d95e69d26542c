package execstub_test

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/execstub"
)

func gateStub(t *testing.T) string {
	if runtime.GOARCH != "amd64" {
		t.Skip("no gated stub for " + runtime.GOARCH)
	}
	fd, err := execstub.OpenGate()
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	return "/proc/self/fd/" + strconv.Itoa(fd)
}

// gatedCmd returns the gated stub running argv, its descriptor 3 the
// write end of ready and its GateFD the read end of gate.
func gatedCmd(t *testing.T, argv ...string) (cmd *exec.Cmd, ready, gate *os.File) {
	readyR, readyW, err := os.Pipe()
	require.NoError(t, err)
	gateR, gateW, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { readyR.Close(); gateW.Close() })
	cmd = &exec.Cmd{Path: gateStub(t), Args: argv, ExtraFiles: []*os.File{readyW, nil, nil, gateR}}
	require.Equal(t, 6, execstub.GateFD, "ExtraFiles puts gate at 3+3")
	t.Cleanup(func() { readyW.Close(); gateR.Close() })
	return cmd, readyR, gateW
}

func TestGateWaitsForItsByteThenExecutes(t *testing.T) {
	cmd, ready, gate := gatedCmd(t, "/bin/sh", "sh", "-c", "echo ran; ls /proc/self/fd")
	out, err := os.CreateTemp(t.TempDir(), "out")
	require.NoError(t, err)
	cmd.Stdout = out
	require.NoError(t, cmd.Start())
	cmd.ExtraFiles[0].Close()
	cmd.ExtraFiles[3].Close()
	// Descriptor 3 closes before the wait: the starter learns it is ready.
	n, _ := ready.Read(make([]byte, 1)) // io.EOF
	assert.Equal(t, 0, n, "the gated stub closes descriptor 3 before it waits")
	st, _ := os.ReadFile(out.Name())
	assert.Empty(t, st, "nothing ran before the gate opened")
	_, err = gate.Write([]byte{0})
	require.NoError(t, err)
	require.NoError(t, cmd.Wait())
	st, _ = os.ReadFile(out.Name())
	lines := strings.Fields(string(st))
	require.NotEmpty(t, lines)
	assert.Equal(t, "ran", lines[0], "the payload ran once the gate opened")
	assert.NotContains(t, lines[1:], strconv.Itoa(execstub.GateFD), "the payload does not inherit the gate")
}

func TestGateExitsWith127WhenClosedUnopened(t *testing.T) {
	cmd, _, gate := gatedCmd(t, "/bin/true", "true")
	require.NoError(t, cmd.Start())
	cmd.ExtraFiles[0].Close()
	cmd.ExtraFiles[3].Close()
	gate.Close()
	err := cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 127, ee.ExitCode(), "a gate closed without a byte must not run the payload")
}
