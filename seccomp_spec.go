package sandbox

import (
	"fmt"
	"runtime"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/sandboxkit/sandbox/internal/seccomp"
)

// specArch is the runtime-spec name of the architecture a profile
// compiles for.
var specArch = map[string]specs.Arch{"amd64": specs.ArchX86_64, "arm64": specs.ArchAARCH64}

var specActions = map[seccomp.Action]specs.LinuxSeccompAction{
	seccomp.ActErrno:       specs.ActErrno,
	seccomp.ActAllow:       specs.ActAllow,
	seccomp.ActKillProcess: specs.ActKillProcess,
	seccomp.ActTrap:        specs.ActTrap,
	seccomp.ActLog:         specs.ActLog,
}

var specOps = map[seccomp.Op]specs.LinuxSeccompOperator{
	seccomp.OpEqual:       specs.OpEqualTo,
	seccomp.OpNotEqual:    specs.OpNotEqual,
	seccomp.OpMaskedEqual: specs.OpMaskedEqual,
}

// seccompSpec returns p as a runtime-spec seccomp profile: its rules in
// order, then its unconditional allowlist as one last rule.
func seccompSpec(p *seccomp.Profile) *specs.LinuxSeccomp {
	out := &specs.LinuxSeccomp{DefaultAction: specActions[p.DefaultAction]}
	if p.DefaultAction == seccomp.ActErrno && p.DefaultErrno != 0 {
		e := uint(p.DefaultErrno)
		out.DefaultErrnoRet = &e
	}
	if a, ok := specArch[runtime.GOARCH]; ok {
		out.Architectures = []specs.Arch{a}
	}
	for _, r := range p.Rules {
		sc := specs.LinuxSyscall{Names: slices.Clone(r.Names), Action: specActions[r.Action]}
		if r.Action == seccomp.ActErrno && r.Errno != 0 {
			e := uint(r.Errno)
			sc.ErrnoRet = &e
		}
		for _, a := range r.Args {
			sa := specs.LinuxSeccompArg{Index: uint(a.Index), Value: a.Value, Op: specOps[a.Op]}
			if a.Op == seccomp.OpMaskedEqual {
				// libseccomp's order: the mask, then the value.
				sa.Value, sa.ValueTwo = a.Mask, a.Value
			}
			sc.Args = append(sc.Args, sa)
		}
		out.Syscalls = append(out.Syscalls, sc)
	}
	if len(p.Allow) > 0 {
		out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{Names: slices.Clone(p.Allow), Action: specs.ActAllow})
	}
	return out
}

// seccompFromSpec reads a runtime-spec seccomp profile; an unconditional
// last rule that allows becomes the allowlist, as seccompSpec writes it.
func seccompFromSpec(s *specs.LinuxSeccomp) (*seccomp.Profile, []*FieldError) {
	var problems []*FieldError
	bad := func(field string, v any, reason string) {
		problems = append(problems, &FieldError{Field: "linux.seccomp." + field, Value: v, Reason: reason})
	}
	action := func(field string, a specs.LinuxSeccompAction) seccomp.Action {
		for k, v := range specActions {
			if v == a {
				return k
			}
		}
		bad(field, a, "unsupported action: the sandbox's filter takes SCMP_ACT_ALLOW, ERRNO, KILL_PROCESS, TRAP and LOG")
		return seccomp.ActErrno
	}
	p := &seccomp.Profile{DefaultAction: action("defaultAction", s.DefaultAction)}
	if s.DefaultErrnoRet != nil {
		p.DefaultErrno = uint16(*s.DefaultErrnoRet)
	}
	if len(s.Architectures) > 0 && !slices.Contains(s.Architectures, specArch[runtime.GOARCH]) {
		bad("architectures", s.Architectures, fmt.Sprintf("must include %s: the filter allows this machine's own architecture only", specArch[runtime.GOARCH]))
	}
	if len(s.Flags) > 0 {
		bad("flags", s.Flags, "unsupported")
	}
	if s.ListenerPath != "" || s.ListenerMetadata != "" {
		bad("listenerPath", s.ListenerPath, "unsupported: no user notification")
	}
	for i, sc := range s.Syscalls {
		field := fmt.Sprintf("syscalls[%d]", i)
		if i == len(s.Syscalls)-1 && sc.Action == specs.ActAllow && len(sc.Args) == 0 {
			p.Allow = slices.Clone(sc.Names)
			continue
		}
		r := seccomp.Rule{Names: slices.Clone(sc.Names), Action: action(field+".action", sc.Action)}
		if sc.ErrnoRet != nil {
			r.Errno = uint16(*sc.ErrnoRet)
		}
		for j, a := range sc.Args {
			arg := seccomp.Arg{Index: uint8(a.Index), Value: a.Value}
			switch a.Op {
			case specs.OpEqualTo:
				arg.Op = seccomp.OpEqual
			case specs.OpNotEqual:
				arg.Op = seccomp.OpNotEqual
			case specs.OpMaskedEqual:
				arg.Op, arg.Mask, arg.Value = seccomp.OpMaskedEqual, a.Value, a.ValueTwo
			default:
				bad(fmt.Sprintf("%s.args[%d].op", field, j), a.Op, "unsupported: the filter compares with SCMP_CMP_EQ, NE and MASKED_EQ")
			}
			if a.Index > 5 {
				bad(fmt.Sprintf("%s.args[%d].index", field, j), a.Index, "must be 0 to 5")
			}
			r.Args = append(r.Args, arg)
		}
		p.Rules = append(p.Rules, r)
	}
	return p, problems
}
