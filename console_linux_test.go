package sandbox_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// readUntil reads f until what it read contains want, or 10s passed.
func readUntil(f *os.File, want string) string {
	var all []byte
	buf := make([]byte, 512)
	f.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !bytes.Contains(all, []byte(want)) {
		n, err := f.Read(buf)
		all = append(all, buf[:n]...)
		if err != nil {
			break
		}
	}
	return string(all)
}

// The program's terminal is one of the sandbox's own devpts: ttyname
// finds it, it is /dev/console too, it belongs to the program's user
// with mode 0620, has the size asked for, and is the program's
// controlling terminal; its master, sent over the socket, reads what the
// program writes and writes what it reads.
func TestWithConsoleGivesTheProgramATerminalOfItsOwn(t *testing.T) {
	testutil.RequireRoot(t)
	root := testutil.Rootfs(t)
	script := `tty; stat -c 'owner=%u:%g mode=%a' $(tty); ls -l /dev/console; stty size; ` +
		`test -e /dev/tty && exec 3</dev/tty && echo ctty-ok; read line; echo got=$line`
	for _, tt := range []struct {
		init, userns bool
	}{{true, false}, {false, false}, {true, true}} {
		t.Run(fmt.Sprintf("init %v userns %v", tt.init, tt.userns), func(t *testing.T) {
			sock, got := testutil.ConsoleSocket(t)
			sb := sandbox.New(sandbox.Dir(root)).WithInit(tt.init).WithUser(1000, 1000).
				WithConsole(sock, sandbox.WindowSize{Rows: 33, Cols: 101})
			if tt.userns {
				sb = sb.WithUserNamespace()
			}
			before := testutil.SnapshotHost(t)
			wait := make(chan error, 1)
			var res *sandbox.Result
			go func() {
				var err error
				res, err = sb.Run(testCtx(t), "/bin/sh", "-c", script)
				wait <- err
			}()
			var master *os.File
			select {
			case master = <-got:
			case err := <-wait:
				t.Fatalf("Run ended before it sent the terminal: %v", err)
			}
			require.NotNil(t, master, "the child sends the terminal's master over the socket")
			t.Cleanup(func() { master.Close() })
			assert.Equal(t, "/dev/pts/ptmx", master.Name(), "the message's data")
			// The whole line first: typed earlier, the echo of what is
			// typed can come between a program's text and its newline
			// (seen once in the VM lane).
			out := readUntil(master, "ctty-ok\r\n")
			_, err := master.WriteString("hello\n")
			require.NoError(t, err)
			out += readUntil(master, "got=hello\r\n")
			require.NoError(t, <-wait)
			master.Close()
			assert.Equal(t, 0, res.ExitCode, "output %q", out)
			lines := strings.Split(out, "\r\n")
			require.GreaterOrEqual(t, len(lines), 5, "output %q", out)
			assert.Equal(t, "/dev/pts/0", lines[0], "ttyname finds the terminal in the sandbox's own devpts")
			assert.Equal(t, "owner=1000:1000 mode=620", lines[1], "the program's user owns its terminal")
			assert.Regexp(t, `^crw--w---- +1 user +user +136, +0 .*/dev/console$`, lines[2], "/dev/console is the terminal")
			assert.Equal(t, "33 101", lines[3], "the window size asked for")
			assert.Equal(t, "ctty-ok", lines[4], "the terminal is the program's controlling terminal (/dev/tty opens)")
			assert.Contains(t, out, "got=hello\r\n", "the program reads what is written to the master")
			assert.Empty(t, res.Stdout, "the output went to the terminal")
			assert.Empty(t, testutil.OwnCgroups(t))
			testutil.CheckFDs(t, before, "a run with a console")
		})
	}
}

// Nothing listening at the socket: the start fails naming it, and leaves
// nothing behind.
func TestWithConsoleWithoutAListener(t *testing.T) {
	testutil.RequireRoot(t)
	sock := filepath.Join(t.TempDir(), "nobody.sock")
	_, err := sandbox.New(sandbox.Dir(testutil.Rootfs(t))).WithConsole(sock, sandbox.WindowSize{}).Run(testCtx(t), "/bin/true")
	var pe *os.PathError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, sock, pe.Path)
	assert.Empty(t, testutil.OwnCgroups(t))
}

func TestReadmeConsole(t *testing.T) {
	testutil.RequireRoot(t)
	requireInReadme(t, `sb := sandbox.New(sandbox.Dir(root)).WithConsole(sock, sandbox.WindowSize{Rows: 24, Cols: 80})`,
		`res, err := sb.Run(ctx, "/bin/tty") // "/dev/pts/0" on the terminal whose master went to sock`)
	ctx := testCtx(t)
	root := testutil.Rootfs(t)
	sock, got := testutil.ConsoleSocket(t)
	done := make(chan struct{})
	var out string
	var master *os.File
	go func() {
		defer close(done)
		if master = <-got; master != nil {
			out = readUntil(master, "\r\n")
		}
	}()

	sb := sandbox.New(sandbox.Dir(root)).WithConsole(sock, sandbox.WindowSize{Rows: 24, Cols: 80})
	res, err := sb.Run(ctx, "/bin/tty") // "/dev/pts/0" on the terminal whose master went to sock
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
	<-done
	// Closed only once the program ended: a terminal whose master closes
	// hangs up, and its program gets SIGHUP.
	if master != nil {
		master.Close()
	}
	assert.Equal(t, "/dev/pts/0\r\n", out)
}

// The terminal is only ever a pty of a devpts: a definition that puts a
// host file on /dev/pts/ptmx (a bind) gets an error, and the file is not
// what goes to the socket.
func TestWithConsoleTakesOnlyThePTMXOfADevpts(t *testing.T) {
	testutil.RequireRoot(t)
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("host file"), 0o600))
	sock, got := testutil.ConsoleSocket(t)
	_, err := sandbox.New(sandbox.Dir(testutil.Rootfs(t))).WithBind(secret, "/dev/pts/ptmx").
		WithConsole(sock, sandbox.WindowSize{}).Run(testCtx(t), "/bin/true")
	require.ErrorIs(t, err, sandbox.ErrUnsafePath, "a console whose ptmx is a bound host file")
	assert.Contains(t, err.Error(), "/dev/pts/ptmx")
	select {
	case f := <-got: // nil once the connection closed with nothing sent
		if f != nil {
			f.Close()
			t.Fatal("something was sent over the console socket")
		}
	default:
	}
	assert.Empty(t, testutil.OwnCgroups(t))
}
