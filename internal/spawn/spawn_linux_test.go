package spawn_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
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

// TestStartFromFreshGoroutinesGetsAValidPIDFD starts children from new
// goroutines, whose small stacks grow (and move) inside Start while
// syscall.ForkLock is contended. clone3 writes the child's pidfd to an
// address taken before the clone: if that address is on a stack that then
// moved, the kernel writes the old copy and the caller is left with -1,
// so killing the child through it does nothing.
func TestStartFromFreshGoroutinesGetsAValidPIDFD(t *testing.T) {
	testutil.RequireRoot(t)
	const workers, rounds = 8, 40
	errs := make(chan error, workers*rounds)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				done := make(chan struct{})
				// A fresh goroutine each time, its small stack filled to
				// a different depth, so that some Start grows it.
				go func(depth int) {
					defer close(done)
					errs <- atDepth(depth, startAndKill)
				}(rand.IntN(300))
				<-done
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// atDepth calls f under depth frames of about 100 bytes each.
//
//go:noinline
func atDepth(depth int, f func() error) error {
	var pad [64]byte
	if depth > 0 {
		return atDepth(depth-1, f)
	}
	_ = pad
	return f()
}

// startAndKill starts sleep through the non-vfork path (AfterClone), then
// kills it through its pidfd.
func startAndKill() error {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	var p spawn.Program
	p.WaitByte(spawn.Step{Op: "wait"}, fds[0])
	p.Exec("/bin/sleep", []string{"sleep", "60"}, nil, false)
	proc, err := spawn.Start(&p, spawn.Attr{CgroupFD: -1, Release: fds[1], AfterClone: func(int) error { return nil }})
	if err != nil {
		return err
	}
	defer proc.Wait()
	if proc.PIDFD < 0 {
		unix.Kill(proc.PID, unix.SIGKILL)
		return fmt.Errorf("Start returned pidfd %d for pid %d", proc.PIDFD, proc.PID)
	}
	defer unix.Close(proc.PIDFD)
	if err := unix.PidfdSendSignal(proc.PIDFD, unix.SIGKILL, nil, 0); err != nil {
		unix.Kill(proc.PID, unix.SIGKILL)
		return fmt.Errorf("kill pid %d through pidfd %d: %w", proc.PID, proc.PIDFD, err)
	}
	return nil
}

// SendFD sends a descriptor that the child opened (held in a register,
// its number unknown when the program was built) over a socket; a peer
// that has gone fails the step, and does not kill the child by SIGPIPE.
func TestSendFDSendsADescriptorOfTheChild(t *testing.T) {
	testutil.RequireRoot(t)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(pair[0])
	defer unix.Close(pair[1])
	var sfs unix.Statfs_t
	require.NoError(t, unix.Statfs("/dev/null", &sfs))
	const r = spawn.Reg(1)
	var p spawn.Program
	p.Chdir("/") // OpenInRoot resolves in the current directory
	p.OpenInRoot("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, r)
	p.RequireFS(r, "/dev/null", sfs.Type)
	p.SendFD(spawn.Step{Op: "send", Path: "null"}, pair[1], r, "/dev/null")
	p.Exec("/bin/true", []string{"true"}, nil, false)
	proc, err := spawn.Start(&p, spawn.Attr{CgroupFD: -1})
	require.NoError(t, err)
	proc.Wait()
	unix.Close(proc.PIDFD)

	buf, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(pair[0], buf, oob, 0)
	require.NoError(t, err)
	assert.Equal(t, "/dev/null", string(buf[:n]))
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	fds, err := unix.ParseUnixRights(&msgs[0])
	require.NoError(t, err)
	require.Len(t, fds, 1)
	defer unix.Close(fds[0])
	var st unix.Stat_t
	require.NoError(t, unix.Fstat(fds[0], &st))
	assert.Equal(t, unix.Mkdev(1, 3), st.Rdev, "the descriptor received is the child's /dev/null")

	// A file system other than the one required fails the step (EPERM).
	p = spawn.Program{}
	p.Chdir("/")
	p.OpenInRoot("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, r)
	p.RequireFS(r, "/dev/null", unix.DEVPTS_SUPER_MAGIC)
	p.Exec("/bin/true", []string{"true"}, nil, false)
	_, err = spawn.Start(&p, spawn.Attr{CgroupFD: -1})
	var se *spawn.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, syscall.EPERM, se.Errno)
	assert.Equal(t, 2, se.Index, "the check fails, not the open")

	// A peer that has gone: the send fails, the child reports it.
	unix.Close(pair[0])
	p = spawn.Program{}
	p.Chdir("/")
	p.OpenInRoot("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, r)
	p.SendFD(spawn.Step{Op: "send", Path: "null"}, pair[1], r, "/dev/null")
	p.Exec("/bin/true", []string{"true"}, nil, false)
	_, err = spawn.Start(&p, spawn.Attr{CgroupFD: -1})
	require.ErrorAs(t, err, &se)
	assert.Equal(t, syscall.EPIPE, se.Errno, "sendmsg to a closed peer")
}
