package spawn_test

import (
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/spawn"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// run starts p with stdout connected to a pipe and returns what the child
// wrote and its wait status.
func run(t *testing.T, p *spawn.Program, w *os.File, r *os.File, flags uintptr) (string, unix.WaitStatus) {
	t.Helper()
	proc, err := spawn.Start(p, spawn.Attr{Cloneflags: flags, CgroupFD: -1})
	require.NoError(t, err)
	w.Close()
	out, err := io.ReadAll(r)
	require.NoError(t, err)
	var ws unix.WaitStatus
	_, err = unix.Wait4(proc.PID, &ws, 0, nil)
	require.NoError(t, err)
	unix.Close(proc.PIDFD)
	return string(out), ws
}

func TestStartRunsProgramInNewPIDNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	var p spawn.Program
	p.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
	p.Dup3(int(w.Fd()), 1)
	p.Exec("/nonexistent/sh", []string{"sh"}, nil, true)
	p.Exec("/bin/sh", []string{"sh", "-c", "echo pid=$$ env=$FOO"}, []string{"FOO=bar"}, false)

	out, ws := run(t, &p, w, r, unix.CLONE_NEWNS|unix.CLONE_NEWPID)
	assert.Equal(t, "pid=1 env=bar\n", out, "the payload must be PID 1 of a new PID namespace and see only the given env")
	assert.True(t, ws.Exited() && ws.ExitStatus() == 0, "wait status %v", ws)
}

func TestStartReportsTheFailingStep(t *testing.T) {
	testutil.RequireRoot(t)
	var p spawn.Program
	p.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
	p.Chdir("/does/not/exist")
	p.Exec("/bin/true", []string{"true"}, nil, false)

	proc, err := spawn.Start(&p, spawn.Attr{Cloneflags: unix.CLONE_NEWNS, CgroupFD: -1})
	require.Error(t, err)
	assert.Nil(t, proc)
	var se *spawn.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "chdir", se.Step.Op)
	assert.Equal(t, "/does/not/exist", se.Step.Path)
	assert.Equal(t, syscall.ENOENT, se.Errno)
	assert.Equal(t, "chdir /does/not/exist: no such file or directory", err.Error())
}

func TestStartCommandNotFound(t *testing.T) {
	var p spawn.Program
	p.Exec("/nope/a", []string{"a"}, nil, true)
	p.Exec("/nope/b", []string{"b"}, nil, false)
	_, err := spawn.Start(&p, spawn.Attr{CgroupFD: -1})
	var se *spawn.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 1, se.Index, "the last candidate reports the failure")
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func BenchmarkStartTrue(b *testing.B) {
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	require.NoError(b, err)
	defer devnull.Close()
	var p spawn.Program
	p.Dup3(int(devnull.Fd()), 1)
	p.Exec("/bin/true", []string{"true"}, nil, false)
	for b.Loop() {
		proc, err := spawn.Start(&p, spawn.Attr{CgroupFD: -1})
		require.NoError(b, err)
		var ws unix.WaitStatus
		unix.Wait4(proc.PID, &ws, 0, nil)
		unix.Close(proc.PIDFD)
	}
}
