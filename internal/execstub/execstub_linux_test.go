package execstub_test

import (
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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

// stubCommand returns a command that runs the stub for goarch: natively
// for this machine's, under qemu's user-mode emulator for the other one
// when it is installed (qemu-user-static), else nil.
func stubCommand(t *testing.T, goarch string, args ...string) *exec.Cmd {
	if goarch == runtime.GOARCH {
		return &exec.Cmd{Path: stubPath(t), Args: args}
	}
	emu, err := exec.LookPath("qemu-" + map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[goarch] + "-static")
	if err != nil {
		return nil
	}
	b, err := execstub.ELF(goarch)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "stub")
	require.NoError(t, os.WriteFile(path, b, 0o755))
	// qemu's -0 sets the argv[0] it passes, which the stub executes.
	return exec.Command(emu, append([]string{"-0", args[0], path}, args[1:]...)...)
}

func TestStubReportsWhyItsExecFailed(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	require.NoError(t, os.WriteFile(script, []byte("echo no interpreter line\n"), 0o755))
	tests := []struct {
		name, path string
		want       unix.Errno
	}{
		{"missing", "/no/such/file", unix.ENOENT},
		{"directory", dir, unix.EACCES},
		{"script without #!", script, unix.ENOEXEC},
	}
	for _, goarch := range []string{"amd64", "arm64"} {
		for _, tt := range tests {
			t.Run(goarch+" "+tt.name, func(t *testing.T) {
				cmd := stubCommand(t, goarch, tt.path, "x")
				if cmd == nil {
					t.Skip("no qemu-user-static to run the " + goarch + " stub; run: apt-get install qemu-user-static")
				}
				r, w, err := os.Pipe()
				require.NoError(t, err)
				defer r.Close()
				cmd.ExtraFiles = []*os.File{w} // descriptor 3
				require.NoError(t, cmd.Start())
				w.Close()
				got, err := io.ReadAll(r)
				require.NoError(t, err)
				var ee *exec.ExitError
				require.ErrorAs(t, cmd.Wait(), &ee)
				assert.Equal(t, 127, ee.ExitCode())
				require.Len(t, got, 8, "the stub writes one record to descriptor 3")
				assert.Equal(t, uint32(execstub.ExecFailed), binary.NativeEndian.Uint32(got[0:]))
				assert.Equal(t, tt.want, unix.Errno(binary.NativeEndian.Uint32(got[4:])))
			})
		}
	}
}

func TestStubClosesDescriptor3WhenItsExecSucceeds(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	cmd := &exec.Cmd{Path: stubPath(t), Args: []string{"/bin/sh", "sh", "-c", "readlink /proc/$$/fd/3 || echo closed"}}
	cmd.ExtraFiles = []*os.File{w}
	out, err := cmd.Output()
	w.Close()
	require.NoError(t, err)
	assert.Equal(t, "closed\n", string(out), "the stub's descriptor 3 must close at the exec")
	got, _ := io.ReadAll(r)
	assert.Empty(t, got)
}
