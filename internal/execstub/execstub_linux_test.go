package execstub_test

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/execstub"
)

func stubPath(t *testing.T) string {
	fd, err := execstub.Open()
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	return "/proc/self/fd/" + strconv.Itoa(fd)
}

func TestStubExecutesArgv0WithTheRestAsArgv(t *testing.T) {
	if _, ok := map[string]bool{"amd64": true, "arm64": true}[runtime.GOARCH]; !ok {
		t.Skip("no stub for " + runtime.GOARCH)
	}
	// exec.Cmd passes Args verbatim: Args[0] is the path the stub runs.
	cmd := &exec.Cmd{
		Path: stubPath(t),
		Args: []string{"/bin/sh", "sh", "-c", `echo "$0 $1 $X"`, "zero", "one"},
		Env:  []string{"X=env-kept"},
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "output: %s", out)
	assert.Equal(t, "zero one env-kept\n", string(out))
}

func TestStubExitsWith127WhenExecFails(t *testing.T) {
	cmd := &exec.Cmd{Path: stubPath(t), Args: []string{"/no/such/file", "x"}}
	err := cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 127, ee.ExitCode())
}

func TestStubIsSealed(t *testing.T) {
	fd, err := execstub.Open()
	require.NoError(t, err)
	defer unix.Close(fd)
	_, err = unix.Pwrite(fd, []byte("x"), 0)
	assert.ErrorIs(t, err, unix.EPERM, "a sealed stub must refuse writes")
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(fd), os.O_WRONLY, 0)
	if err == nil {
		_, err = f.Write([]byte("x"))
		f.Close()
	}
	assert.Error(t, err, "reopening the stub for writing must not allow a write")
}

func TestELFRejectsUnknownArch(t *testing.T) {
	_, err := execstub.ELF("mips")
	assert.ErrorIs(t, err, execstub.ErrUnsupportedArch)
}
