package seccomp

import "fmt"

// UnknownSyscallError reports a system call name in a [Profile] that no
// Linux architecture defines, typically a typo.
type UnknownSyscallError struct {
	Name string // the name as written in the profile
	Arch string // the architecture compiled for, e.g. "amd64"
}

// Error names the system call and the architecture.
func (e *UnknownSyscallError) Error() string {
	return fmt.Sprintf("unknown system call %q (compiling for %s)", e.Name, e.Arch)
}

// ProfileError reports an invalid setting in a [Profile], or a profile too
// large to compile.
type ProfileError struct {
	Field  string // e.g. "DefaultAction" or "Rules[2].Args[0].Index"
	Reason string
}

// Error names the field and the problem.
func (e *ProfileError) Error() string {
	return fmt.Sprintf("invalid seccomp profile: %s: %s", e.Field, e.Reason)
}
