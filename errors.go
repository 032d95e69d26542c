package sandbox

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidConfig is matched (with errors.Is) by every error that reports
// an invalid [Sandbox] definition. Such errors are [*ConfigError] values.
var ErrInvalidConfig = errors.New("sandbox: invalid configuration")

// ErrClosed is returned by the methods of an [Instance] after Close, and of
// one whose sandbox has ended where it must run (Signal, files, stats).
var ErrClosed = errors.New("sandbox: instance closed")

// ErrUnsafePath is matched by the error of a run that a path would have led
// out of the sandbox's root: a symbolic link to a /proc magic link (such as
// /proc/self/fd/N, a descriptor of the host) on the way to a mount target,
// a file or the working directory, a mount target or file that a link
// carries onto /proc or /sys, or a root whose /proc, /dev, /sys or /tmp is
// not a directory. Such a run fails before its program starts.
var ErrUnsafePath = errors.New("unsafe path: it leads out of the root, through a /proc magic link or onto /proc or /sys")

// FieldError is one invalid builder setting.
type FieldError struct {
	Field  string // the builder setting, e.g. "memory"
	Value  any    // the rejected value
	Reason string // what is wrong with it, e.g. "must be positive"
	Err    error  // the underlying error, if a check of the host found it; may be nil
}

// Error says which setting is wrong, its value and why.
func (e *FieldError) Error() string {
	v := fmt.Sprint(e.Value)
	if v == "" {
		v = `""` // an empty value still shows
	}
	return fmt.Sprintf("%s %s: %s", e.Field, v, e.Reason)
}

// Unwrap returns the underlying error, so that a missing host path matches
// fs.ErrNotExist as well as ErrInvalidConfig.
func (e *FieldError) Unwrap() error { return e.Err }

// ConfigError lists every problem found in a [Sandbox] definition. It
// matches [ErrInvalidConfig], and errors.As reaches each [*FieldError].
type ConfigError struct {
	Problems []*FieldError
}

// Error lists every problem, after the ErrInvalidConfig text.
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalidConfig.Error())
	for i, p := range e.Problems {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// Is reports whether target is [ErrInvalidConfig].
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// Unwrap returns every problem, for errors.As.
func (e *ConfigError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}
