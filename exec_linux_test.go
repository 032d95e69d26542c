package sandbox_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

func TestCommandSettingsApplyToOneExec(t *testing.T) {
	sb, _ := busybox(t)
	for name, sb := range variants(sb.WithEnv("WHO=sandbox", "KEEP=1").WithUser(1000, 1000)) {
		in := start(t, sb)
		cmd := in.Command("/bin/sh", "-c", `echo $WHO $KEEP $NEW; id -u; id -g; pwd`).
			WithEnv("WHO=exec", "NEW=2").WithUser(0, 0).WithWorkdir("/tmp")
		res, err := cmd.Run(testCtx(t))
		require.NoError(t, err, name)
		assert.Equal(t, "exec 1 2\n0\n0\n/tmp\n", string(res.Stdout), "%s: the command's env, user and directory", name)
		// The sandbox's own settings are untouched by the command's.
		res, err = in.Exec(testCtx(t), "/bin/sh", "-c", `echo $WHO $NEW; id -u; pwd`)
		require.NoError(t, err, name)
		assert.Equal(t, "sandbox\n1000\n/\n", string(res.Stdout), name)

		res, err = in.Command("sleep", "30").WithTimeout(100 * time.Millisecond).Run(testCtx(t))
		require.NoError(t, err, "%s: a timeout is an outcome", name)
		assert.True(t, res.TimedOut, "%s: %v", name, res)
		assert.Equal(t, syscall.SIGKILL, res.Signal, name)

		_, err = in.Command("true").WithWorkdir("/no/such/dir").Run(testCtx(t))
		assert.ErrorIs(t, err, os.ErrNotExist, "%s: a missing workdir is not made for a command", name)
		require.NoError(t, in.Close())
	}
	in := start(t, sb.WithUserNamespace())
	_, err := in.Command("true").WithUser(70000, 0).Run(testCtx(t))
	var fe *sandbox.FieldError
	require.ErrorAs(t, err, &fe, "a user outside the ID map")
	assert.Equal(t, "user", fe.Field)
	require.NoError(t, in.Close())
	assert.Empty(t, testutil.SandboxCgroups(t))
}

func TestCommandValidates(t *testing.T) {
	sb, _ := busybox(t)
	in := start(t, sb)
	_, err := in.Command("true").WithEnv("NOEQUALS").WithWorkdir("rel").WithUser(-1, 0).
		WithTimeout(-time.Second).WithTTY(sandbox.WindowSize{}).Run(testCtx(t))
	var ce *sandbox.ConfigError
	require.ErrorAs(t, err, &ce)
	var fields []string
	for _, p := range ce.Problems {
		fields = append(fields, p.Field)
	}
	assert.Equal(t, []string{"env", "workdir", "uid", "timeout", "tty"}, fields)
	_, err = in.Command().Run(testCtx(t))
	assert.ErrorIs(t, err, sandbox.ErrInvalidConfig, "no argv")
}

// stdin, stdout and stderr are three streams, each read or written as the
// program goes, never gathered first.
func TestCommandStreams(t *testing.T) {
	sb, _ := busybox(t)
	for name, sb := range variants(sb) {
		in := start(t, sb)
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		var stderr bytes.Buffer
		p, err := in.Command("/bin/sh", "-c", `while read line; do echo "out $line"; echo "err $line" >&2; done`).
			WithStdin(inR).WithStdout(outW).WithStderr(&stderr).Start(testCtx(t))
		require.NoError(t, err, name)
		lines := bufio.NewReader(outR)
		for _, word := range []string{"one", "two"} {
			_, err := io.WriteString(inW, word+"\n")
			require.NoError(t, err)
			got, err := lines.ReadString('\n')
			require.NoError(t, err)
			assert.Equal(t, "out "+word+"\n", got, "%s: each line comes back while stdin stays open", name)
		}
		inW.Close()
		go io.Copy(io.Discard, outR)
		res, err := p.Wait(testCtx(t))
		require.NoError(t, err, name)
		assert.Equal(t, 0, res.ExitCode, name)
		assert.Equal(t, "err one\nerr two\n", stderr.String(), "%s: stderr is a stream of its own", name)
		assert.Empty(t, res.Stdout, "%s: stdout went to its writer", name)
	}
}

func TestCommandOnATerminal(t *testing.T) {
	sb, _ := busybox(t)
	for name, sb := range variants(sb.WithUser(1000, 1000)) {
		in := start(t, sb)
		res, err := in.Command("/bin/sh", "-c", `tty; stty size; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty; echo to-stderr >&2; ls -ln $(tty) | awk '{print $3}'`).
			WithTTY(sandbox.WindowSize{Rows: 24, Cols: 80}).Run(testCtx(t))
		require.NoError(t, err, name)
		out := strings.ReplaceAll(string(res.Stdout), "\r\n", "\n")
		assert.Regexp(t, `^/dev/pts/\d+\n24 80\nall-tty\nto-stderr\n1000\n$`, out, "%s: a controlling terminal of the sandbox's devpts, owned by its user", name)
		assert.Empty(t, res.Stderr, name)

		// Resize reaches the program as SIGWINCH and a new size; Signal
		// reaches this command alone.
		outR, outW := io.Pipe()
		p, err := in.Command("/bin/sh", "-c", `trap 'stty size' WINCH; echo ready; while :; do sleep 0.05; done`).
			WithTTY(sandbox.WindowSize{Rows: 24, Cols: 80}).WithStdout(outW).Start(testCtx(t))
		require.NoError(t, err, name)
		other, err := in.Command("sleep", "30").Start(testCtx(t))
		require.NoError(t, err, name)
		lines := bufio.NewReader(outR)
		requireLine(t, lines, "ready")
		require.NoError(t, p.Resize(sandbox.WindowSize{Rows: 30, Cols: 100}))
		requireLine(t, lines, "30 100")
		go io.Copy(io.Discard, outR)
		require.NoError(t, p.Signal(syscall.SIGTERM))
		res, err = p.Wait(testCtx(t))
		require.NoError(t, err, name)
		assert.Equal(t, syscall.SIGTERM, res.Signal, "%s: %v", name, res)
		assert.ErrorIs(t, p.Signal(syscall.SIGTERM), os.ErrProcessDone)
		assert.ErrorIs(t, p.Resize(sandbox.WindowSize{Rows: 1, Cols: 1}), os.ErrProcessDone)

		ctx, cancel := contextWithTimeout(t, 50*time.Millisecond)
		_, err = other.Wait(ctx)
		cancel()
		require.Error(t, err, "%s: the other command runs on", name)
		require.NoError(t, other.Signal(syscall.SIGKILL))
		res, err = other.Wait(testCtx(t))
		require.NoError(t, err)
		assert.Equal(t, syscall.SIGKILL, res.Signal)
		assert.Error(t, other.Resize(sandbox.WindowSize{Rows: 1, Cols: 1}), "no terminal")

		// ^C on the terminal interrupts the program, its foreground.
		keysR, keys := io.Pipe()
		p, err = in.Command("sleep", "30").WithTTY(sandbox.WindowSize{Rows: 24, Cols: 80}).WithStdin(keysR).Start(testCtx(t))
		require.NoError(t, err)
		time.Sleep(50 * time.Millisecond)
		_, err = keys.Write([]byte{3})
		require.NoError(t, err)
		res, err = p.Wait(testCtx(t))
		require.NoError(t, err)
		assert.Equal(t, syscall.SIGINT, res.Signal, "%s: ^C: %v", name, res)

		// A timeout ends a program on a terminal, which leads its own
		// session, even one that ignores the hangup.
		before, err := in.Stats()
		require.NoError(t, err)
		res, err = in.Command("/bin/sh", "-c", "trap '' HUP INT TERM; sleep 30; echo survived").
			WithTTY(sandbox.WindowSize{Rows: 24, Cols: 80}).WithTimeout(200 * time.Millisecond).Run(testCtx(t))
		require.NoError(t, err)
		assert.True(t, res.TimedOut, "%s: %v", name, res)
		require.Eventually(t, func() bool {
			st, err := in.Stats()
			return err == nil && st.Processes == before.Processes
		}, 5*time.Second, 10*time.Millisecond, "%s: the shell and its sleep are gone", name)
	}
}

// requireLine reads lines from r, a terminal's output, until one is want.
func requireLine(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err, "reading until %q", want)
		if strings.TrimRight(line, "\r\n") == want {
			return
		}
	}
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(testCtx(t), d)
}
