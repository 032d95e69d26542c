package seccomp

import "fmt"

// Action says what the filter does with a system call. The zero Action is
// [ActErrno], so a zero rule or profile denies rather than allows.
type Action uint8

const (
	// ActErrno fails the call without running it; the call returns -1 with
	// errno set to the rule's (or profile's) Errno, EPERM when that is 0.
	ActErrno Action = iota
	// ActAllow runs the call.
	ActAllow
	// ActKillProcess kills the whole process with SIGSYS, as if by a core
	// dumping signal that cannot be caught.
	ActKillProcess
	// ActTrap sends SIGSYS to the calling thread; the call is not run.
	ActTrap
	// ActLog runs the call and logs it to the audit log.
	ActLog
)

// String returns the libseccomp-style name of a, e.g. "SCMP_ACT_ALLOW".
func (a Action) String() string {
	switch a {
	case ActErrno:
		return "SCMP_ACT_ERRNO"
	case ActAllow:
		return "SCMP_ACT_ALLOW"
	case ActKillProcess:
		return "SCMP_ACT_KILL_PROCESS"
	case ActTrap:
		return "SCMP_ACT_TRAP"
	case ActLog:
		return "SCMP_ACT_LOG"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Op is the comparison an [Arg] makes.
type Op uint8

const (
	// OpEqual matches when the argument equals Value (all 64 bits).
	OpEqual Op = iota
	// OpNotEqual matches when the argument differs from Value.
	OpNotEqual
	// OpMaskedEqual matches when argument & Mask equals Value.
	OpMaskedEqual
)

// String returns the libseccomp-style name of o, e.g. "SCMP_CMP_EQ".
func (o Op) String() string {
	switch o {
	case OpEqual:
		return "SCMP_CMP_EQ"
	case OpNotEqual:
		return "SCMP_CMP_NE"
	case OpMaskedEqual:
		return "SCMP_CMP_MASKED_EQ"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Arg is one condition on a system call argument.
type Arg struct {
	Index uint8  // argument number, 0 to 5
	Op    Op     // comparison; the zero Op is OpEqual
	Value uint64 // the value compared against
	Mask  uint64 // bits of the argument compared; used by OpMaskedEqual only
}

// Rule gives an action to the named system calls when all of its Args match.
type Rule struct {
	// Names are system call names as the kernel spells them ("openat",
	// "newfstatat"). A name that exists on some Linux architecture but not
	// on the one compiled for is skipped, as libseccomp does.
	Names []string
	// Action is taken when every Arg matches. The zero Action is ActErrno.
	Action Action
	// Errno is the error number returned by ActErrno, as the Linux value
	// (EPERM is 1, ENOSYS is 38); 0 means EPERM. Ignored by other actions.
	Errno uint16
	// Args are ANDed; an empty Args matches every call.
	Args []Arg
}

// Profile describes a seccomp filter: which system calls run and what
// happens to the others. Compile it with [Profile.Compile].
//
// A nil *Profile means no filter. A Profile is a plain value: it is safe to
// share between goroutines as long as none of them modifies it.
type Profile struct {
	// DefaultAction is taken for system calls no rule matches. The zero
	// value is ActErrno.
	DefaultAction Action
	// DefaultErrno is the Linux error number used when DefaultAction is
	// ActErrno; 0 means EPERM.
	DefaultErrno uint16
	// Allow lists system calls allowed without conditions. It behaves like
	// an unconditional ActAllow rule placed after all of Rules, so a Rule
	// naming the same call takes precedence.
	Allow []string
	// Rules are checked in order for the system call being made; the first
	// rule that names it and whose Args all match decides. Calls whose rules
	// all fail to match get DefaultAction.
	Rules []Rule
}
