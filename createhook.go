package sandbox

// WithCreateHook returns a copy of s that calls fn while the sandbox is
// being made: once its file system is assembled (the root, /proc, /dev,
// /sys, /tmp and the masked paths; binds and files come after) and before
// it becomes the sandbox's root (pivot_root), so that the sandbox's mount
// namespace still shows the host's file system with the new root below
// it. That is when an OCI runtime runs a spec's createContainer hooks:
// [Sandbox.Attach] with the PID fn gets, and a Command of it, runs a
// program there, in the sandbox's namespaces, its path found on the
// host's file system. The sandbox waits until fn returns; an error from
// fn ends the start, with fn's error. pid is the sandbox's first process,
// in the caller's PID namespace. Starts with a create hook run one at a
// time in a process (fn's own commands need the package's other clone
// thread). A Pool's sandboxes cannot have one, and Spec does not write it.
// The last call wins; nil removes it.
func (s *Sandbox) WithCreateHook(fn func(pid int) error) *Sandbox {
	c := s.clone()
	c.createHook = fn
	return c
}

// createPause is the pair of pipes on which the child waits, before
// pivot_root, for the plan's create hook: it writes a byte to paused and
// reads one from resume (both its ends at 10 or above); the parent's ends
// are pausedR and resumeW.
type createPause struct {
	paused, resume   int // the child's ends
	pausedR, resumeW int // the parent's
}
