package sandbox

import (
	"runtime"
	"slices"
	"sync"

	"github.com/sandboxkit/sandbox/internal/seccomp"
)

// SeccompProfile is a system call filter for the programs of a sandbox.
// [DefaultSeccompProfile] returns the default; Allow and Deny return changed
// copies. A SeccompProfile is immutable and safe to share.
type SeccompProfile struct {
	p *seccomp.Profile
}

// DefaultSeccompProfile returns the filter every sandbox gets unless
// WithSeccomp says otherwise: the equivalent of Docker's default profile.
// Calls outside its allowlist fail with EPERM, among them mount, umount,
// pivot_root, unshare, setns, reboot, kexec_load, the module, keyring, swap
// and clock-setting calls, bpf, perf_event_open, open_by_handle_at,
// userfaultfd and the new mount API; clone may not create namespaces;
// clone3 fails with ENOSYS so that C libraries fall back to clone; socket
// fails with EPERM for the address families Docker refuses (AF_ALG,
// AF_VSOCK, the families current Linux has removed, and every family from
// 46 up); and the filter kills a process that uses another architecture's
// calling convention (such as i386 or x32 on amd64).
//
// io_uring_setup, io_uring_enter and io_uring_register fail with EPERM, as
// in Docker. A ring's requests run in the kernel, where no seccomp filter
// sees them: a program that has a ring can do what the ring's operations
// do (open files, connect, make an AF_VSOCK socket with IORING_OP_SOCKET)
// whatever the filter says of the matching system calls. A program that
// needs io_uring gets it with
//
//	DefaultSeccompProfile().Allow("io_uring_setup", "io_uring_enter", "io_uring_register")
//
// and with it, every argument check of the profile stops holding for the
// operations io_uring offers.
func DefaultSeccompProfile() *SeccompProfile {
	return &SeccompProfile{p: seccomp.Default()}
}

func (sp *SeccompProfile) clone() *SeccompProfile {
	p := *sp.p
	p.Allow = slices.Clone(p.Allow)
	p.Rules = slices.Clone(p.Rules)
	return &SeccompProfile{p: &p}
}

// Allow returns a copy of sp that also allows the named system calls (as
// the kernel spells them, e.g. "perf_event_open"), unless a rule of sp
// denies them.
func (sp *SeccompProfile) Allow(names ...string) *SeccompProfile {
	c := sp.clone()
	c.p.Allow = append(c.p.Allow, names...)
	return c
}

// Deny returns a copy of sp in which the named system calls fail with
// EPERM, whatever else sp says about them.
func (sp *SeccompProfile) Deny(names ...string) *SeccompProfile {
	c := sp.clone()
	c.p.Rules = append([]seccomp.Rule{{Names: slices.Clone(names), Action: seccomp.ActErrno}}, c.p.Rules...)
	return c
}

// defaultFilter is the default profile's filter, which every definition
// made by New shares: it is compiled once per process.
var defaultFilter = &compiledFilter{profile: DefaultSeccompProfile()}

// compiledFilter compiles a profile once, on first use, and is shared by
// every copy of the Sandbox that holds it: a template run thousands of
// times compiles its filter once.
type compiledFilter struct {
	profile *SeccompProfile // nil: no filter
	once    sync.Once
	prog    []seccomp.Instruction
	err     error
}

func (f *compiledFilter) get() ([]seccomp.Instruction, error) {
	if f == nil || f.profile == nil {
		return nil, nil
	}
	f.once.Do(func() { f.prog, f.err = f.profile.p.Compile(runtime.GOARCH) })
	return f.prog, f.err
}

// WithSeccomp returns a copy of s whose programs run under the filter p, or
// under no filter at all when p is nil. The default is
// [DefaultSeccompProfile]. The filter is installed last, after
// no_new_privs, just before the program is executed. A profile naming a
// system call Linux does not know is reported by Validate. Profiles compile
// for amd64 and arm64; on other architectures Run returns an error matching
// errors.ErrUnsupported unless p is nil. The last call wins.
func (s *Sandbox) WithSeccomp(p *SeccompProfile) *Sandbox {
	c := s.clone()
	c.seccomp = &compiledFilter{profile: p}
	if p != nil {
		if _, err := c.seccomp.get(); err != nil {
			c.invalid("seccomp", "profile", err.Error())
		}
	}
	return c
}
