package execstub_test

import (
	"bytes"
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

var goarchs = []string{"amd64", "arm64"}

// gateCommand returns a command that runs the gated stub for goarch with
// argv (argv[0] the payload's path): natively from its sealed memfd for
// this machine's, under qemu's user-mode emulator for the other one.
func gateCommand(t *testing.T, goarch string, argv ...string) *exec.Cmd {
	if goarch == runtime.GOARCH {
		fd, err := execstub.OpenGate()
		require.NoError(t, err)
		t.Cleanup(func() { unix.Close(fd) })
		return &exec.Cmd{Path: "/proc/self/fd/" + strconv.Itoa(fd), Args: argv}
	}
	emu, err := exec.LookPath("qemu-" + map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[goarch] + "-static")
	if err != nil {
		t.Skip("no qemu-user-static to run the " + goarch + " gated stub; run: apt-get install qemu-user-static")
	}
	b, err := execstub.GateELF(goarch)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "gate")
	require.NoError(t, os.WriteFile(path, b, 0o755))
	// qemu's -0 sets the argv[0] it passes, which the stub executes.
	return exec.Command(emu, append([]string{"-0", argv[0], path}, argv[1:]...)...)
}

// gatedCmd returns the gated stub for goarch running argv, its descriptor
// 3 the write end of ready and its GateFD the read end of gate. Once it
// started, the caller closes cmd.ExtraFiles[0] and [3], its copies.
func gatedCmd(t *testing.T, goarch string, argv ...string) (cmd *exec.Cmd, ready, gate *os.File) {
	readyR, readyW, err := os.Pipe()
	require.NoError(t, err)
	gateR, gateW, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { readyR.Close(); gateW.Close() })
	cmd = gateCommand(t, goarch, argv...)
	cmd.ExtraFiles = []*os.File{readyW, nil, nil, gateR}
	require.Equal(t, 6, execstub.GateFD, "ExtraFiles puts gate at 3+3")
	t.Cleanup(func() { readyW.Close(); gateR.Close() })
	return cmd, readyR, gateW
}

func TestGateWaitsForItsByteThenExecutes(t *testing.T) {
	for _, goarch := range goarchs {
		t.Run(goarch, func(t *testing.T) {
			cmd, ready, gate := gatedCmd(t, goarch, "/bin/sh", "sh", "-c", "echo ran; ls /proc/self/fd")
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
		})
	}
}

func TestGateExitsWith127WhenClosedUnopened(t *testing.T) {
	for _, goarch := range goarchs {
		t.Run(goarch, func(t *testing.T) {
			cmd, _, gate := gatedCmd(t, goarch, "/bin/true", "true")
			require.NoError(t, cmd.Start())
			cmd.ExtraFiles[0].Close()
			cmd.ExtraFiles[3].Close()
			gate.Close()
			err := cmd.Wait()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, 127, ee.ExitCode(), "a gate closed without a byte must not run the payload")
		})
	}
}

// TestGateOutlivesTheThreadThatStartedIt starts the stub with a parent
// death signal from a thread that then ends, as the child of a sandbox
// is started: the stub clears the signal before it reports ready, so it
// lives on, and runs its payload when the gate opens.
func TestGateOutlivesTheThreadThatStartedIt(t *testing.T) {
	for _, goarch := range goarchs {
		t.Run(goarch, func(t *testing.T) {
			cmd, ready, gate := gatedCmd(t, goarch, "/bin/sh", "sh", "-c", "exit 3")
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			var err error
			tid := onEndingThread(func() {
				if err = cmd.Start(); err == nil {
					cmd.ExtraFiles[0].Close()
					cmd.ExtraFiles[3].Close()
					ready.Read(make([]byte, 1)) // io.EOF once the stub cleared the signal
				}
			})
			require.NoError(t, err)
			// The kernel sends the signal as the thread exits, before
			// its /proc entry goes.
			task := "/proc/self/task/" + strconv.Itoa(tid)
			require.Eventually(t, func() bool { _, err := os.Stat(task); return err != nil },
				10*time.Second, time.Millisecond, "the thread that started the stub must end")
			_, err = gate.Write([]byte{0})
			require.NoError(t, err)
			err = cmd.Wait()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, "the payload's exit status 3, not a kill")
			assert.Equal(t, 3, ee.ExitCode(), "the payload ran: its parent thread's death did not kill the stub (%v)", err)
		})
	}
}

// onEndingThread runs fn on a thread of its own that ends when fn
// returns, and returns the thread's ID. The main thread never ends, so a
// goroutine that finds itself locked to it tries again elsewhere.
func onEndingThread(fn func()) int {
	for {
		tid := make(chan int)
		go func() {
			runtime.LockOSThread() // never unlocked but on the main thread: the thread ends with the goroutine
			if unix.Gettid() == unix.Getpid() {
				runtime.UnlockOSThread()
				tid <- 0
				return
			}
			fn()
			tid <- unix.Gettid()
		}()
		if id := <-tid; id != 0 {
			return id
		}
	}
}

// TestGateMachineCodeMatchesTheSources assembles testdata/gate_*.s with
// GNU as and compares the result with the machine code the package holds.
func TestGateMachineCodeMatchesTheSources(t *testing.T) {
	for _, goarch := range []string{"amd64", "arm64"} {
		t.Run(goarch, func(t *testing.T) {
			want := assemble(t, goarch, "testdata/gate_"+goarch+".s")
			elf, err := execstub.GateELF(goarch)
			require.NoError(t, err)
			assert.True(t, bytes.HasSuffix(elf, want), "gate.go's %s code must be what testdata/gate_%s.s assembles to", goarch, goarch)
		})
	}
}
