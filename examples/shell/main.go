//go:build linux

// Command shell runs an interactive shell in a sandbox on your terminal:
// the host's root read only, with a throw-away writable layer, no network,
// 256 MiB of memory and 64 processes. The terminal is the sandbox's own
// (a pseudo-terminal of its /dev/pts); resizing your window resizes it.
// It needs root.
//
//	go run ./examples/shell            # /bin/sh
//	go run ./examples/shell bash -l    # or any program of the host's root
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	code, err := run(ctx, os.Args[1:], os.Stdin, os.Stdout)
	if stop(); err != nil {
		fmt.Fprintln(os.Stderr, "shell:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// run runs argv (default /bin/sh) in a sandbox on the terminal term (its
// input) and out, and returns the program's exit code.
func run(ctx context.Context, argv []string, term, out *os.File) (int, error) {
	if len(argv) == 0 {
		argv = []string{"/bin/sh"}
	}
	size, err := windowSize(term)
	if err != nil {
		return 0, fmt.Errorf("stdin is not a terminal: %w", err)
	}
	in, err := sandbox.New(sandbox.HostRoot()).
		WithMemory(256 << 20).WithPids(64).
		WithHostname("shell").
		WithEnv("TERM=" + os.Getenv("TERM")).
		Start(ctx)
	if err != nil {
		return 0, err
	}
	defer in.Close()

	restore, err := makeRaw(term)
	if err != nil {
		return 0, err
	}
	defer restore()
	p, err := in.Command(argv...).WithTTY(size).WithStdin(term).WithStdout(out).Start(ctx)
	if err != nil {
		return 0, err
	}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)
	go func() {
		for range winch {
			if size, err := windowSize(term); err == nil {
				p.Resize(size) // it may have ended meanwhile: nothing to resize
			}
		}
	}()
	res, err := p.Wait(context.Background())
	if err != nil {
		return 0, err
	}
	if res.Signal != 0 {
		return 128 + int(res.Signal), nil
	}
	return res.ExitCode, nil
}

// windowSize returns the size of the terminal f.
func windowSize(f *os.File) (sandbox.WindowSize, error) {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return sandbox.WindowSize{}, err
	}
	if ws.Row == 0 || ws.Col == 0 {
		return sandbox.WindowSize{Rows: 24, Cols: 80}, nil
	}
	return sandbox.WindowSize{Rows: ws.Row, Cols: ws.Col}, nil
}

// makeRaw puts the terminal f in raw mode, as cfmakeraw(3) does, so that
// every key goes to the sandbox's terminal, which does the line editing
// and signals; restore puts it back.
func makeRaw(f *os.File) (restore func(), err error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
