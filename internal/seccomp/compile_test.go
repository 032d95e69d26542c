package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	wantAllow  = retAllow
	wantEPERM  = retErrno | errnoEPERM
	wantENOSYS = retErrno | errnoENOSYS
	wantKill   = retKillProcess
)

// mustNr returns the number of a system call on goarch or fails the test.
func mustNr(t *testing.T, goarch, name string) uint32 {
	t.Helper()
	a, ok := lookupArch(goarch)
	require.True(t, ok, "lookupArch(%q)", goarch)
	nr, ok := a.nr(name)
	require.True(t, ok, "no system call %q on %s", name, goarch)
	return nr
}

// eval runs prog on a call to name with args on goarch.
func eval(t *testing.T, prog []Instruction, goarch, name string, args ...uint64) uint32 {
	t.Helper()
	a, _ := lookupArch(goarch)
	c := call{arch: a.audit, nr: mustNr(t, goarch, name)}
	copy(c.args[:], args)
	ret, err := runFilter(prog, c)
	require.NoError(t, err, "run filter on %s(%v)", name, args)
	return ret
}

func TestCompileDefault(t *testing.T) {
	const (
		cloneNewNS   = 0x00020000
		cloneNewUser = 0x10000000
		cloneThread  = 0x00010f00 // CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD
		sigchld      = 17
	)
	tests := []struct {
		name    string
		syscall string
		args    []uint64
		want    uint32
	}{
		{"getpid", "getpid", nil, wantAllow},
		{"read", "read", nil, wantAllow},
		{"openat", "openat", nil, wantAllow},
		{"execve", "execve", nil, wantAllow},
		{"futex", "futex", nil, wantAllow},
		{"ptrace as docker on >=4.8", "ptrace", nil, wantAllow},
		{"fork-like clone", "clone", []uint64{sigchld}, wantAllow},
		{"thread clone", "clone", []uint64{cloneThread}, wantAllow},
		{"clone NEWNS", "clone", []uint64{cloneNewNS | sigchld}, wantEPERM},
		{"clone NEWUSER", "clone", []uint64{cloneNewUser}, wantEPERM},
		{"clone NEWNET in upper half ignored", "clone", []uint64{1 << 40}, wantAllow},
		{"clone3", "clone3", nil, wantENOSYS},
		{"personality query", "personality", []uint64{0xffffffff}, wantAllow},
		{"personality PER_LINUX", "personality", []uint64{0}, wantAllow},
		{"personality UNAME26|PER_LINUX32", "personality", []uint64{0x20008}, wantAllow},
		{"personality ADDR_NO_RANDOMIZE", "personality", []uint64{0x0040000}, wantEPERM},
		{"personality upper bits", "personality", []uint64{1<<32 | 8}, wantEPERM},
		{"socket AF_UNIX", "socket", []uint64{1}, wantAllow},
		{"socket AF_INET6", "socket", []uint64{10}, wantAllow},
		{"socket AF_VSOCK", "socket", []uint64{40}, wantEPERM},
		{"socket AF_VSOCK upper bits", "socket", []uint64{1<<32 | 40}, wantEPERM},
		{"socket AF_ALG", "socket", []uint64{38}, wantEPERM},
		{"socket AF_ALG upper bits", "socket", []uint64{0xffffffff<<32 | 38}, wantEPERM},
		{"socket AF_INET upper bits", "socket", []uint64{1<<32 | 2}, wantAllow},
		{"io_uring_setup", "io_uring_setup", nil, wantEPERM},
		{"io_uring_enter", "io_uring_enter", nil, wantEPERM},
		{"io_uring_register", "io_uring_register", nil, wantEPERM},
		{"mount", "mount", nil, wantEPERM},
		{"unshare", "unshare", nil, wantEPERM},
		{"keyctl", "keyctl", nil, wantEPERM},
		{"bpf", "bpf", nil, wantEPERM},
	}
	for _, goarch := range Arches() {
		prog, err := Default().Compile(goarch)
		require.NoError(t, err, "Default().Compile(%q)", goarch)
		assert.LessOrEqual(t, len(prog), MaxInstructions, "instructions for %s", goarch)
		t.Logf("default filter for %s: %d instructions", goarch, len(prog))
		for _, tt := range tests {
			t.Run(goarch+"/"+tt.name, func(t *testing.T) {
				got := eval(t, prog, goarch, tt.syscall, tt.args...)
				assert.Equal(t, tt.want, got, "%s(%#x) on %s: got %#x, want %#x", tt.syscall, tt.args, goarch, got, tt.want)
			})
		}
	}
}

// deniedSyscalls must fail with EPERM under the default profile wherever
// they exist.
var deniedSyscalls = []string{
	"mount", "umount2", "umount", "reboot", "kexec_load", "kexec_file_load",
	"init_module", "finit_module", "delete_module", "swapon", "swapoff",
	"pivot_root", "keyctl", "add_key", "request_key", "bpf",
	"perf_event_open", "unshare", "setns", "open_by_handle_at",
	"userfaultfd", "clock_settime", "clock_adjtime", "settimeofday",
	"adjtimex", "acct", "lookup_dcookie", "iopl", "ioperm", "quotactl",
	"quotactl_fd", "move_mount", "fsopen", "fsmount", "fsconfig", "fspick",
	"open_tree", "mount_setattr", "name_to_handle_at", "nfsservctl", "vm86",
	"syslog", "uselib", "sysfs", "_sysctl", "chroot", "sethostname",
	"setdomainname", "fanotify_init", "kcmp", "pidfd_getfd",
	"process_madvise", "mbind", "set_mempolicy", "vhangup",
	// io_uring runs requests in the kernel where the filter never sees
	// them (an IORING_OP_SOCKET request ignores the socket rule).
	"io_uring_setup", "io_uring_enter", "io_uring_register",
}

func TestCompileDefaultDenies(t *testing.T) {
	allowed := map[string]bool{}
	for _, name := range Default().Allow {
		allowed[name] = true
	}
	for _, goarch := range Arches() {
		prog, err := Default().Compile(goarch)
		require.NoError(t, err)
		a, _ := lookupArch(goarch)
		for _, name := range deniedSyscalls {
			t.Run(goarch+"/"+name, func(t *testing.T) {
				assert.False(t, allowed[name], "Default().Allow lists %s", name)
				if _, ok := a.nr(name); !ok {
					return // not on this architecture
				}
				got := eval(t, prog, goarch, name)
				assert.Equal(t, uint32(wantEPERM), got, "%s on %s: got %#x, want ERRNO(EPERM)", name, goarch, got)
			})
		}
	}
}

// dockerDeniedFamilies are the socket families below AF_MAX (46) that
// Docker's current default profile refuses: those Linux has removed or is
// removing (DECnet 12, Econet 19, ATM SVC 20, IrDA 23, WAN pipe 25, ISDN
// 34, CAIF 37), AF_ALG 38 and AF_VSOCK 40. It refuses every family from 46
// up as well.
var dockerDeniedFamilies = map[uint64]bool{12: true, 19: true, 20: true, 23: true, 25: true, 34: true, 37: true, 38: true, 40: true}

func TestCompileDefaultSocketFamilies(t *testing.T) {
	families := []uint64{0x7fff, 0x7fffffff, 0xffffffff}
	for f := range uint64(80) {
		families = append(families, f)
	}
	for _, goarch := range Arches() {
		prog, err := Default().Compile(goarch)
		require.NoError(t, err)
		for _, f := range families {
			want := uint32(wantAllow)
			if dockerDeniedFamilies[f] || f >= 46 {
				want = wantEPERM
			}
			// The kernel reads the family as an int: the upper half of the
			// register must change nothing.
			for _, upper := range []uint64{0, 1 << 32, 0xffffffff << 32} {
				got := eval(t, prog, goarch, "socket", upper|f, 1)
				assert.Equal(t, want, got, "socket(%#x) on %s: got %#x, want %#x", upper|f, goarch, got, want)
			}
		}
	}
}

func TestCompileDefaultAllowsIOUringWhenAsked(t *testing.T) {
	p := Default()
	p.Allow = append(p.Allow, "io_uring_setup", "io_uring_enter", "io_uring_register")
	for _, goarch := range Arches() {
		prog, err := p.Compile(goarch)
		require.NoError(t, err)
		for _, name := range []string{"io_uring_setup", "io_uring_enter", "io_uring_register"} {
			assert.Equal(t, uint32(wantAllow), eval(t, prog, goarch, name), "%s on %s with the calls added to Allow", name, goarch)
		}
		assert.Equal(t, uint32(wantEPERM), eval(t, prog, goarch, "socket", 40), "the socket rule still holds on %s", goarch)
	}
}

func TestCompileForeignABI(t *testing.T) {
	const auditArchI386 = 0x40000003
	prog, err := Default().Compile("amd64")
	require.NoError(t, err)
	tests := []struct {
		name string
		c    call
		want uint32
	}{
		{"i386 getpid", call{arch: auditArchI386, nr: 20}, wantKill},
		{"aarch64 on amd64", call{arch: 0xc00000b7, nr: 172}, wantKill},
		{"x32 getpid", call{arch: 0xc000003e, nr: x32SyscallBit | 39}, wantEPERM},
		{"x32 read", call{arch: 0xc000003e, nr: x32SyscallBit}, wantEPERM},
		{"nr -1", call{arch: 0xc000003e, nr: ^uint32(0)}, wantEPERM},
		{"nr past the table", call{arch: 0xc000003e, nr: 1000}, wantEPERM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runFilter(prog, tt.c)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got, "got %#x, want %#x", got, tt.want)
		})
	}
}

func TestCompileCustom(t *testing.T) {
	tests := []struct {
		name    string
		profile *Profile
		syscall string
		args    []uint64
		want    uint32
	}{
		{"allowlist allows", &Profile{Allow: []string{"read", "write"}}, "write", nil, wantAllow},
		{"allowlist denies the rest", &Profile{Allow: []string{"read", "write"}}, "openat", nil, wantEPERM},
		{"zero profile denies everything", &Profile{}, "exit_group", nil, wantEPERM},
		{"default errno", &Profile{DefaultErrno: errnoENOSYS}, "getpid", nil, wantENOSYS},
		{"denylist", &Profile{DefaultAction: ActAllow, Rules: []Rule{{Names: []string{"mount"}}}}, "mount", nil, wantEPERM},
		{"denylist allows the rest", &Profile{DefaultAction: ActAllow, Rules: []Rule{{Names: []string{"mount"}}}}, "getpid", nil, wantAllow},
		{"rule beats allow", &Profile{Allow: []string{"kill"}, Rules: []Rule{{Names: []string{"kill"}, Action: ActTrap}}}, "kill", nil, retTrap},
		{"kill process", &Profile{DefaultAction: ActKillProcess}, "getpid", nil, wantKill},
		{"log", &Profile{Rules: []Rule{{Names: []string{"getpid"}, Action: ActLog}}}, "getpid", nil, retLog},
		{"arg equal matches", argProfile(OpEqual, 0x1_0000_0002, 0), "kill", []uint64{0x1_0000_0002}, wantAllow},
		{"arg equal checks upper half", argProfile(OpEqual, 0x1_0000_0002, 0), "kill", []uint64{2}, wantEPERM},
		{"arg not equal", argProfile(OpNotEqual, 7, 0), "kill", []uint64{8}, wantAllow},
		{"arg not equal upper half", argProfile(OpNotEqual, 7, 0), "kill", []uint64{1<<32 | 7}, wantAllow},
		{"arg not equal same", argProfile(OpNotEqual, 7, 0), "kill", []uint64{7}, wantEPERM},
		{"masked equal", argProfile(OpMaskedEqual, 0x10, 0xf0), "kill", []uint64{0x1f}, wantAllow},
		{"masked equal mismatch", argProfile(OpMaskedEqual, 0x10, 0xf0), "kill", []uint64{0x2f}, wantEPERM},
		{"masked value outside mask never matches", argProfile(OpMaskedEqual, 0x100, 0xf0), "kill", []uint64{0x100}, wantEPERM},
		{"masked low half", argProfile(OpMaskedEqual, 7, 0xffffffff), "kill", []uint64{1<<32 | 7}, wantAllow},
		{"masked low half mismatch", argProfile(OpMaskedEqual, 7, 0xffffffff), "kill", []uint64{8}, wantEPERM},
		{"masked all bits", argProfile(OpMaskedEqual, 1<<32|7, ^uint64(0)), "kill", []uint64{1<<32 | 7}, wantAllow},
		{"masked all bits upper half differs", argProfile(OpMaskedEqual, 1<<32|7, ^uint64(0)), "kill", []uint64{7}, wantEPERM},
		{"args are ANDed", &Profile{Rules: []Rule{{Names: []string{"kill"}, Action: ActAllow, Args: []Arg{
			{Index: 0, Value: 1}, {Index: 5, Value: 2},
		}}}}, "kill", []uint64{1, 0, 0, 0, 0, 3}, wantEPERM},
		{"args all match", &Profile{Rules: []Rule{{Names: []string{"kill"}, Action: ActAllow, Args: []Arg{
			{Index: 0, Value: 1}, {Index: 5, Value: 2},
		}}}}, "kill", []uint64{1, 0, 0, 0, 0, 2}, wantAllow},
	}
	for _, goarch := range Arches() {
		for _, tt := range tests {
			t.Run(goarch+"/"+tt.name, func(t *testing.T) {
				prog, err := tt.profile.Compile(goarch)
				require.NoError(t, err)
				got := eval(t, prog, goarch, tt.syscall, tt.args...)
				assert.Equal(t, tt.want, got, "%s(%#x): got %#x, want %#x", tt.syscall, tt.args, got, tt.want)
			})
		}
	}
}

func TestCompileFullMaskNeedsNoAnd(t *testing.T) {
	// A half whose mask keeps every bit is compared as loaded.
	prog, err := argProfile(OpMaskedEqual, 1<<32|7, ^uint64(0)).Compile("amd64")
	require.NoError(t, err)
	for i, in := range prog {
		assert.NotEqual(t, uint16(opAndK), in.Code, "instruction %d: AND with an all-ones mask", i)
	}
}

func TestCompileWordRuns(t *testing.T) {
	// Rules that compare one half of an argument whole, with one action,
	// share a load and a return; the answers must be those of the rules
	// taken one by one.
	low := func(v uint64, a Action) Rule {
		return Rule{Names: []string{"kill"}, Action: a, Args: []Arg{{Index: 0, Op: OpMaskedEqual, Mask: 0xffffffff, Value: v}}}
	}
	high := func(v uint64, a Action) Rule {
		return Rule{Names: []string{"kill"}, Action: a, Args: []Arg{{Index: 1, Op: OpMaskedEqual, Mask: 0xffffffff << 32, Value: v << 32}}}
	}
	p := &Profile{DefaultAction: ActErrno, DefaultErrno: errnoENOSYS, Rules: []Rule{
		low(1, ActErrno), low(2, ActErrno), low(3, ActErrno), // a run of three
		low(4, ActAllow), low(2, ActAllow), // another action: a second run, 2 unreachable in it
		low(1<<32|5, ActAllow),             // value outside the mask: never matches
		high(6, ActTrap), high(7, ActTrap), // the upper half of another argument
		low(8, ActErrno), // a run of one
	}}
	tests := []struct {
		name string
		args []uint64
		want uint32
	}{
		{"first of a run", []uint64{1}, wantEPERM},
		{"last of a run", []uint64{3}, wantEPERM},
		{"upper bits ignored", []uint64{0xffffffff<<32 | 2}, wantEPERM},
		{"second run", []uint64{4}, wantAllow},
		{"outside the mask", []uint64{5}, wantENOSYS},
		{"upper half", []uint64{0, 7 << 32}, retTrap},
		{"upper half, lower bits ignored", []uint64{0, 6<<32 | 9}, retTrap},
		{"lower half of the upper-half rule", []uint64{0, 7}, wantENOSYS},
		{"run of one", []uint64{8}, wantEPERM},
		{"no rule", []uint64{9}, wantENOSYS},
	}
	for _, goarch := range Arches() {
		prog, err := p.Compile(goarch)
		require.NoError(t, err)
		for _, tt := range tests {
			t.Run(goarch+"/"+tt.name, func(t *testing.T) {
				got := eval(t, prog, goarch, "kill", tt.args...)
				assert.Equal(t, tt.want, got, "kill(%#x): got %#x, want %#x", tt.args, got, tt.want)
			})
		}
	}
	code, err := ruleCode(p.Rules[:3], retErrno|errnoENOSYS)
	require.NoError(t, err)
	assert.Len(t, code, 6, "a run of three: one load, three comparisons, one return, then the default")
}

func TestCompileLongWordRun(t *testing.T) {
	// More rules than a conditional jump can cross: the run is split.
	p := &Profile{}
	for v := range uint64(600) {
		p.Rules = append(p.Rules, Rule{Names: []string{"kill"}, Action: ActAllow,
			Args: []Arg{{Index: 0, Op: OpMaskedEqual, Mask: 0xffffffff, Value: 2 * v}}})
	}
	for _, goarch := range Arches() {
		prog, err := p.Compile(goarch)
		require.NoError(t, err)
		for v := range uint64(1202) {
			want := uint32(wantEPERM)
			if v%2 == 0 && v < 1200 {
				want = wantAllow
			}
			require.Equal(t, want, eval(t, prog, goarch, "kill", v), "kill(%d) on %s", v, goarch)
		}
	}
}

func argProfile(op Op, value, mask uint64) *Profile {
	return &Profile{Rules: []Rule{{Names: []string{"kill"}, Action: ActAllow, Args: []Arg{
		{Index: 0, Op: op, Value: value, Mask: mask},
	}}}}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name     string
		profile  *Profile
		goarch   string
		unknown  string // UnknownSyscallError.Name; "" for other errors
		field    string // ProfileError.Field
		sentinel error
	}{
		{name: "typo in Allow", profile: &Profile{Allow: []string{"read", "chwon"}}, goarch: "amd64", unknown: "chwon"},
		{name: "typo in Rules", profile: &Profile{Rules: []Rule{{Names: []string{"clone4"}}}}, goarch: "arm64", unknown: "clone4"},
		{name: "unsupported arch", profile: Default(), goarch: "mips", sentinel: errors.ErrUnsupported},
		{name: "bad default action", profile: &Profile{DefaultAction: 99}, goarch: "amd64", field: "DefaultAction"},
		{name: "bad rule action", profile: &Profile{Rules: []Rule{{Names: []string{"read"}, Action: 42}}}, goarch: "amd64", field: "Rules[0].Action"},
		{name: "rule without names", profile: &Profile{Rules: []Rule{{Action: ActAllow}}}, goarch: "amd64", field: "Rules[0].Names"},
		{name: "bad arg index", profile: &Profile{Rules: []Rule{{Names: []string{"read"}, Args: []Arg{{Index: 6}}}}}, goarch: "amd64", field: "Rules[0].Args[0].Index"},
		{name: "bad op", profile: &Profile{Rules: []Rule{{Names: []string{"read"}, Args: []Arg{{Op: 9}}}}}, goarch: "amd64", field: "Rules[0].Args[0].Op"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog, err := tt.profile.Compile(tt.goarch)
			require.Error(t, err, "Compile(%q): want an error", tt.goarch)
			assert.Nil(t, prog)
			switch {
			case tt.unknown != "":
				var ue *UnknownSyscallError
				require.ErrorAs(t, err, &ue)
				assert.Equal(t, tt.unknown, ue.Name)
				assert.Equal(t, tt.goarch, ue.Arch)
				assert.Contains(t, err.Error(), tt.unknown, "message names the system call")
			case tt.sentinel != nil:
				assert.ErrorIs(t, err, tt.sentinel)
			default:
				var pe *ProfileError
				require.ErrorAs(t, err, &pe)
				assert.Equal(t, tt.field, pe.Field)
			}
		})
	}
}

func TestCompileOtherArchNamesSkipped(t *testing.T) {
	// chown32 exists on 386 and arm only, arch_prctl on x86 only.
	p := &Profile{Allow: []string{"chown32", "arch_prctl", "getpid"}}
	for _, goarch := range Arches() {
		_, err := p.Compile(goarch)
		assert.NoError(t, err, "Compile(%q) of names missing on that arch", goarch)
	}
}

func TestCompileNil(t *testing.T) {
	var p *Profile
	prog, err := p.Compile("amd64")
	require.NoError(t, err)
	assert.Nil(t, prog, "a nil profile means no filter")
}

func TestCompileTooLarge(t *testing.T) {
	// 900 distinct personality values need more than 4096 instructions.
	p := &Profile{}
	for v := range uint64(900) {
		p.Rules = append(p.Rules, Rule{Names: []string{"personality"}, Action: ActAllow, Args: []Arg{{Value: v}}})
	}
	_, err := p.Compile("amd64")
	var pe *ProfileError
	require.ErrorAs(t, err, &pe, "Compile of an oversized profile")
	assert.Contains(t, pe.Reason, "4096")
}

func TestCompileLongRuleChains(t *testing.T) {
	// Enough rules that the search tree needs its long-jump form.
	p := &Profile{}
	for v := range uint64(120) {
		p.Rules = append(p.Rules, Rule{Names: []string{"personality"}, Action: ActAllow, Args: []Arg{{Value: v}}})
	}
	p.Allow = Default().Allow
	for _, goarch := range Arches() {
		prog, err := p.Compile(goarch)
		require.NoError(t, err)
		assert.Equal(t, uint32(wantAllow), eval(t, prog, goarch, "personality", 119))
		assert.Equal(t, uint32(wantEPERM), eval(t, prog, goarch, "personality", 120))
		assert.Equal(t, uint32(wantAllow), eval(t, prog, goarch, "read"))
		assert.Equal(t, uint32(wantEPERM), eval(t, prog, goarch, "mount"))
	}
}

func TestCompileEveryNumber(t *testing.T) {
	// Every number in the table must reach a return, and only the
	// profile's calls may be allowed.
	for _, goarch := range Arches() {
		prog, err := Default().Compile(goarch)
		require.NoError(t, err)
		a, _ := lookupArch(goarch)
		allowed := map[uint32]bool{}
		for _, name := range Default().Allow {
			if nr, ok := a.nr(name); ok {
				allowed[nr] = true
			}
		}
		for _, name := range []string{"clone", "personality", "socket"} {
			allowed[mustNr(t, goarch, name)] = true
		}
		for nr := range uint32(600) {
			got, err := runFilter(prog, call{arch: a.audit, nr: nr})
			require.NoError(t, err, "nr %d on %s", nr, goarch)
			if !allowed[nr] {
				assert.NotEqual(t, uint32(wantAllow), got, "nr %d on %s is allowed but not listed", nr, goarch)
			}
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	for _, goarch := range Arches() {
		b.Run(goarch, func(b *testing.B) {
			for b.Loop() {
				if _, err := Default().Compile(goarch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// call is the seccomp_data a test feeds to a compiled program.
type call struct {
	arch uint32
	nr   uint32
	args [6]uint64
}

// bytes lays c out as struct seccomp_data on a little-endian machine.
func (c call) bytes() []byte {
	b := make([]byte, offArgs+6*8)
	binary.LittleEndian.PutUint32(b[offNr:], c.nr)
	binary.LittleEndian.PutUint32(b[offArch:], c.arch)
	for i, a := range c.args {
		binary.LittleEndian.PutUint64(b[offArgs+8*i:], a)
	}
	return b
}

// runFilter interprets prog on c with the subset of classic BPF the
// compiler emits, checking the rules the kernel's verifier enforces that
// matter here (jumps stay in the program, every path returns).
func runFilter(prog []Instruction, c call) (uint32, error) {
	data := c.bytes()
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case opLdAbs:
			if int(in.K)+4 > len(data) || in.K%4 != 0 {
				return 0, fmt.Errorf("pc %d: load at offset %d", pc, in.K)
			}
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case opAndK:
			acc &= in.K
		case opJa:
			pc += int(in.K)
		case opJeqK, opJgeK, opJsetK:
			var taken bool
			switch in.Code {
			case opJeqK:
				taken = acc == in.K
			case opJgeK:
				taken = acc >= in.K
			default:
				taken = acc&in.K != 0
			}
			if taken {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case opRetK:
			return in.K, nil
		default:
			return 0, fmt.Errorf("pc %d: unexpected opcode %#x", pc, in.Code)
		}
		if pc+1 > len(prog) {
			return 0, fmt.Errorf("pc %d: jump past the end", pc)
		}
	}
	return 0, fmt.Errorf("fell off the end of a %d-instruction program", len(prog))
}
