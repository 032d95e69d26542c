package sandbox

import "path/filepath"

// console is a terminal of the sandbox's own for its program (see
// WithConsole).
type console struct {
	socket string     // where the master is sent
	size   WindowSize // zero: the kernel's default (0x0)
}

// WithConsole returns a copy of s whose program runs on a terminal of the
// sandbox's own, as an OCI runtime's process.terminal with
// --console-socket: a pseudo-terminal of the sandbox's devpts (so that
// the program's ttyname is /dev/pts/N), also bound onto /dev/console, that
// is the program's stdin, stdout and stderr and the controlling terminal
// of a session it leads. The terminal belongs to the program's user
// (WithUser), mode 0620, and has the window size size unless size is
// zero. Once the sandbox is set up, before its program starts, its child
// sends the terminal's master over the AF_UNIX stream socket listening at
// socket, as one SCM_RIGHTS message (whose data is "/dev/pts/ptmx"): the
// caller reads the program's output and writes its input there, and
// resizes it with TIOCSWINSZ.
//
// socket must be an absolute path; it is connected when the sandbox
// starts, and a start with nothing listening there fails with an
// *fs.PathError naming it. The terminal replaces standard I/O:
// WithStdin, WithStdout and WithStderr cannot be combined with it (a
// FieldError), and a Result's Stdout and Stderr stay empty. A Pool's
// sandboxes cannot have one. Spec does not write it (a runtime gets the
// socket as --console-socket, not in the spec). The last call wins.
func (s *Sandbox) WithConsole(socket string, size WindowSize) *Sandbox {
	c := s.clone()
	if !filepath.IsAbs(socket) {
		c.invalid("console", socket, "must be the absolute path of an AF_UNIX socket")
		return c
	}
	c.console = &console{socket: filepath.Clean(socket), size: size}
	return c
}

// checkConsole returns the problems of a console with the rest of the
// definition.
func (s *Sandbox) checkConsole() []*FieldError {
	if s.console == nil || s.stdin == nil && s.stdout == nil && s.stderr == nil {
		return nil
	}
	return []*FieldError{{Field: "console", Value: s.console.socket,
		Reason: "the terminal is the program's standard I/O: it cannot be combined with WithStdin, WithStdout or WithStderr"}}
}
