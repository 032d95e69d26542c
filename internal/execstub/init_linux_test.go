package execstub_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/execstub"
)

// initCommand returns a command running the init for goarch with args
// (args[0] the program's path), natively or under qemu-user-static.
func initCommand(t *testing.T, goarch string, args ...string) *exec.Cmd {
	b, err := execstub.InitELF(goarch)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "init")
	require.NoError(t, os.WriteFile(path, b, 0o755))
	if goarch == runtime.GOARCH {
		return &exec.Cmd{Path: path, Args: args}
	}
	emu, err := exec.LookPath("qemu-" + map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[goarch] + "-static")
	if err != nil {
		t.Skip("no qemu-user-static to run the " + goarch + " init; run: apt-get install qemu-user-static")
	}
	return exec.Command(emu, append([]string{"-0", args[0], path}, args[1:]...)...)
}

// runInit runs the init with its two pipes and returns what came on the
// error pipe, the program's wait status from the status pipe (or -1 when
// none came) and the init's own exit code. signal, when not zero, is sent
// to the init once the program runs.
func runInit(t *testing.T, goarch string, signal syscall.Signal, args ...string) (errRec []byte, status int, code int) {
	cmd := initCommand(t, goarch, args...)
	errR, errW, err := os.Pipe()
	require.NoError(t, err)
	defer errR.Close()
	stR, stW, err := os.Pipe()
	require.NoError(t, err)
	defer stR.Close()
	cmd.ExtraFiles = []*os.File{errW, stW} // 3 and 4
	require.NoError(t, cmd.Start())
	errW.Close()
	stW.Close()
	errRec, err = io.ReadAll(errR) // EOF once the program's exec succeeded
	require.NoError(t, err)
	if signal != 0 {
		time.Sleep(100 * time.Millisecond) // let sh start its sleep
		require.NoError(t, cmd.Process.Signal(signal))
	}
	st, err := io.ReadAll(stR)
	require.NoError(t, err)
	status = -1
	if len(st) == 4 {
		status = int(binary.NativeEndian.Uint32(st))
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if err != nil {
		require.ErrorAs(t, err, &ee)
		return errRec, status, ee.ExitCode()
	}
	return errRec, status, 0
}

func TestInitReportsTheProgramsOwnStatus(t *testing.T) {
	for _, goarch := range []string{"amd64", "arm64"} {
		t.Run(goarch, func(t *testing.T) {
			rec, st, code := runInit(t, goarch, 0, "/bin/sh", "sh", "-c", "exit 7")
			assert.Empty(t, rec)
			assert.Equal(t, 7, code, "the init exits with the program's code")
			ws := unix.WaitStatus(st)
			assert.True(t, ws.Exited() && ws.ExitStatus() == 7, "status %#x", st)

			_, st, code = runInit(t, goarch, 0, "/bin/sh", "sh", "-c", "kill -ABRT $$")
			ws = unix.WaitStatus(st)
			assert.True(t, ws.Signaled() && ws.Signal() == unix.SIGABRT, "a program's own SIGABRT: status %#x", st)
			assert.Equal(t, 128+int(unix.SIGABRT), code, "the init exits with 128 + the program's signal")
		})
	}
}

func TestInitForwardsSignals(t *testing.T) {
	for _, goarch := range []string{"amd64", "arm64"} {
		t.Run(goarch, func(t *testing.T) {
			_, st, code := runInit(t, goarch, unix.SIGTERM, "/bin/sleep", "sleep", "10")
			assert.Equal(t, 128+int(unix.SIGTERM), code)
			ws := unix.WaitStatus(st)
			assert.True(t, ws.Signaled() && ws.Signal() == unix.SIGTERM, "SIGTERM to the init reaches the program: status %#x", st)
		})
	}
}

// TestProgramDiesWithTheInit kills the init and sees its program go too:
// a command's init is what a kill by its PID reaches (an OCI runtime's
// caller knows only that PID).
func TestProgramDiesWithTheInit(t *testing.T) {
	for _, goarch := range []string{"amd64", "arm64"} {
		t.Run(goarch, func(t *testing.T) {
			cmd := initCommand(t, goarch, "/bin/sleep", "sleep", "100")
			errR, errW, err := os.Pipe()
			require.NoError(t, err)
			defer errR.Close()
			cmd.ExtraFiles = []*os.File{errW} // 3; no status pipe at 4
			require.NoError(t, cmd.Start())
			errW.Close()
			_, err = io.ReadAll(errR) // EOF once sleep runs
			require.NoError(t, err)
			kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
			require.NoError(t, err)
			fields := strings.Fields(string(kids))
			require.Len(t, fields, 1, "the init has one child, its program")
			program, err := strconv.Atoi(fields[0])
			require.NoError(t, err)
			pidfd, err := unix.PidfdOpen(program, 0)
			require.NoError(t, err)
			defer unix.Close(pidfd)

			require.NoError(t, cmd.Process.Kill())
			cmd.Wait()
			// The program, reparented and killed, becomes readable on its
			// pidfd once it exited.
			n, err := unix.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, 5000)
			require.NoError(t, err)
			assert.Equal(t, 1, n, "the program still runs after its init was killed")
			var ws unix.WaitStatus
			unix.Wait4(program, &ws, unix.WNOHANG, nil) // not ours: reaped by PID 1
		})
	}
}

func TestInitReportsAFailedExec(t *testing.T) {
	for _, goarch := range []string{"amd64", "arm64"} {
		t.Run(goarch, func(t *testing.T) {
			rec, st, _ := runInit(t, goarch, 0, "/no/such/program", "x")
			require.Len(t, rec, 8)
			assert.Equal(t, uint32(execstub.ExecFailed), binary.NativeEndian.Uint32(rec[0:]))
			assert.Equal(t, unix.ENOENT, unix.Errno(binary.NativeEndian.Uint32(rec[4:])))
			ws := unix.WaitStatus(st)
			assert.True(t, ws.Exited() && ws.ExitStatus() == 127, "status %#x", st)
		})
	}
}

// TestMachineCodeMatchesTheSources assembles testdata/init_*.s with GNU as
// and compares the result with the machine code the package holds.
func TestMachineCodeMatchesTheSources(t *testing.T) {
	for _, goarch := range []string{"amd64", "arm64"} {
		t.Run(goarch, func(t *testing.T) {
			want := assemble(t, goarch, "testdata/init_"+goarch+".s")
			elf, err := execstub.InitELF(goarch)
			require.NoError(t, err)
			assert.True(t, bytes.HasSuffix(elf, want), "init.go's %s code must be what testdata/init_%s.s assembles to", goarch, goarch)
		})
	}
}

// assemble returns the machine code GNU as makes of the source src for
// goarch (its .text section), skipping the test where there is no
// assembler for it.
func assemble(t *testing.T, goarch, src string) []byte {
	t.Helper()
	as, objcopy := "as", "objcopy"
	if goarch == "arm64" {
		as, objcopy = "aarch64-linux-gnu-as", "aarch64-linux-gnu-objcopy"
	}
	if _, err := exec.LookPath(as); err != nil {
		t.Skipf("no %s; run: apt-get install binutils binutils-aarch64-linux-gnu", as)
	}
	dir := t.TempDir()
	obj, bin := filepath.Join(dir, "o"), filepath.Join(dir, "bin")
	out, err := exec.Command(as, "-o", obj, src).CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = exec.Command(objcopy, "-O", "binary", "-j", ".text", obj, bin).CombinedOutput()
	require.NoError(t, err, "%s", out)
	b, err := os.ReadFile(bin)
	require.NoError(t, err)
	return b
}

func TestInitIdlesWithoutAProgram(t *testing.T) {
	for _, goarch := range []string{"amd64", "arm64"} {
		t.Run(goarch, func(t *testing.T) {
			cmd := initCommand(t, goarch, "", "ignored")
			errR, errW, err := os.Pipe()
			require.NoError(t, err)
			defer errR.Close()
			stR, stW, err := os.Pipe()
			require.NoError(t, err)
			defer stR.Close()
			cmd.ExtraFiles = []*os.File{errW, stW}
			require.NoError(t, cmd.Start())
			errW.Close()
			stW.Close()
			// Both pipes close at once: nothing is started, nothing will
			// be reported.
			rec, err := io.ReadAll(errR)
			require.NoError(t, err)
			assert.Empty(t, rec)
			st, err := io.ReadAll(stR)
			require.NoError(t, err)
			assert.Empty(t, st)
			// It ignores SIGTERM, and still runs after it.
			require.NoError(t, cmd.Process.Signal(unix.SIGTERM))
			time.Sleep(50 * time.Millisecond)
			require.NoError(t, cmd.Process.Signal(syscall.Signal(0)), "an idle init runs until killed")
			require.NoError(t, cmd.Process.Kill())
			var ee *exec.ExitError
			require.ErrorAs(t, cmd.Wait(), &ee)
			assert.Equal(t, "signal: killed", ee.Error())
		})
	}
}

// TestInitRunsARequest starts the init waiting for a request (argv
// ["", ""]), checks that it says so, sends it one, and checks that the
// program ran with the request's argv and environment.
func TestInitRunsARequest(t *testing.T) {
	for _, goarch := range []string{"amd64", "arm64"} {
		t.Run(goarch, func(t *testing.T) {
			cmd := initCommand(t, goarch, "", "")
			errR, errW, err := os.Pipe()
			require.NoError(t, err)
			defer errR.Close()
			stR, stW, err := os.Pipe()
			require.NoError(t, err)
			defer stR.Close()
			relR, relW, err := os.Pipe()
			require.NoError(t, err)
			defer relW.Close()
			req, err := os.CreateTemp(t.TempDir(), "request")
			require.NoError(t, err)
			defer req.Close()
			var out bytes.Buffer
			cmd.Stdout = &out
			cmd.ExtraFiles = []*os.File{errW, stW, nil, relR, req} // 3, 4, (5), 6, 7
			require.NoError(t, cmd.Start())
			errW.Close()
			stW.Close()
			relR.Close()
			rec := make([]byte, 8)
			_, err = io.ReadFull(errR, rec)
			require.NoError(t, err)
			assert.Equal(t, uint32(execstub.RequestWaiting), binary.NativeEndian.Uint32(rec), "the init says it waits")

			b, err := execstub.Request("/bin/sh", []string{"sh", "-c", `echo "$0 $1 $X"; exit 3`, "zero", "one"}, []string{"X=from the request"})
			require.NoError(t, err)
			_, err = req.WriteAt(b, 0)
			require.NoError(t, err)
			_, err = relW.Write([]byte{0})
			require.NoError(t, err)
			rest, err := io.ReadAll(errR) // EOF once the program's exec succeeded
			require.NoError(t, err)
			require.Len(t, rest, 8, "the init says it read the request, and nothing else")
			assert.Equal(t, uint32(execstub.RequestRead), binary.NativeEndian.Uint32(rest))
			st, err := io.ReadAll(stR)
			require.NoError(t, err)
			require.Len(t, st, 4)
			assert.Equal(t, 3, unix.WaitStatus(binary.NativeEndian.Uint32(st)).ExitStatus())
			var ee *exec.ExitError
			require.ErrorAs(t, cmd.Wait(), &ee)
			assert.Equal(t, 3, ee.ExitCode(), "the init exits with the program's code")
			assert.Equal(t, "zero one from the request\n", out.String())
		})
	}
}

func TestRequestTooLarge(t *testing.T) {
	_, err := execstub.Request("/bin/true", []string{string(make([]byte, execstub.RequestCapacity))}, nil)
	assert.ErrorIs(t, err, execstub.ErrRequestTooLarge)
}
