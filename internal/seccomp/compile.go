package seccomp

import (
	"errors"
	"fmt"
	"slices"
)

// MaxInstructions is the kernel's limit on the length of one filter
// program (BPF_MAXINSNS).
const MaxInstructions = 4096

// Classic BPF opcodes (linux/filter.h), spelled out so that compiling is
// the same on every host OS.
const (
	opLdAbs   = 0x20 // BPF_LD | BPF_W | BPF_ABS
	opAndK    = 0x54 // BPF_ALU | BPF_AND | BPF_K
	opJa      = 0x05 // BPF_JMP | BPF_JA
	opJeqK    = 0x15 // BPF_JMP | BPF_JEQ | BPF_K
	opJgeK    = 0x35 // BPF_JMP | BPF_JGE | BPF_K
	opJsetK   = 0x45 // BPF_JMP | BPF_JSET | BPF_K
	opRetK    = 0x06 // BPF_RET | BPF_K
	maxJumpOf = 255  // conditional jump offsets are 8 bits
)

// Offsets into struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16 // args[6] of uint64 follow nr, arch and instruction_pointer
)

// SECCOMP_RET_* values.
const (
	retKillProcess = 0x80000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000
)

// Compile translates p into a seccomp BPF program for the Linux
// architecture goarch ("amd64" or "arm64", see [Arches]). The program
// kills the process (SECCOMP_RET_KILL_PROCESS) when a system call comes
// from another architecture's ABI, and on amd64 fails x32 system calls with
// EPERM. It then finds the call's number with a binary search, so a call
// costs about log2(distinct ranges) comparisons, and applies p's rules.
//
// A nil p compiles to a nil program, meaning no filter. Compile returns an
// error wrapping errors.ErrUnsupported for an unknown goarch, an
// *[UnknownSyscallError] for a name no architecture defines, and a
// *[ProfileError] for an invalid setting or a program longer than
// [MaxInstructions].
func (p *Profile) Compile(goarch string) ([]Instruction, error) {
	if p == nil {
		return nil, nil
	}
	a, ok := lookupArch(goarch)
	if !ok {
		return nil, fmt.Errorf("compile seccomp filter for %q: %w", goarch, errors.ErrUnsupported)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	bySyscall, err := p.rulesBySyscall(a)
	if err != nil {
		return nil, err
	}
	defaultRet := retValue(p.DefaultAction, p.DefaultErrno)

	prog := []Instruction{
		stmt(opLdAbs, offArch),
		jump(opJeqK, a.audit, 1, 0),
		stmt(opRetK, retKillProcess),
		stmt(opLdAbs, offNr),
	}
	if a.x32 {
		prog = append(prog,
			jump(opJsetK, x32SyscallBit, 0, 1),
			stmt(opRetK, retErrno|errnoEPERM),
		)
	}
	segs, err := segments(bySyscall, defaultRet)
	if err != nil {
		return nil, err
	}
	if shared, ok := sharedReturnTree(prog, segs); ok {
		prog = shared
	} else {
		prog = searchTree(prog, segs)
	}
	if len(prog) > MaxInstructions {
		return nil, &ProfileError{Field: "Rules", Reason: fmt.Sprintf(
			"compiles to %d BPF instructions, more than the kernel's limit of %d", len(prog), MaxInstructions)}
	}
	return prog, nil
}

// validate checks the actions, errnos and argument conditions of p.
func (p *Profile) validate() error {
	if p.DefaultAction > ActLog {
		return &ProfileError{Field: "DefaultAction", Reason: fmt.Sprintf("unknown action %d", p.DefaultAction)}
	}
	for i, r := range p.Rules {
		if r.Action > ActLog {
			return &ProfileError{Field: fmt.Sprintf("Rules[%d].Action", i), Reason: fmt.Sprintf("unknown action %d", r.Action)}
		}
		if len(r.Names) == 0 {
			return &ProfileError{Field: fmt.Sprintf("Rules[%d].Names", i), Reason: "no system calls named"}
		}
		for j, arg := range r.Args {
			field := fmt.Sprintf("Rules[%d].Args[%d]", i, j)
			if arg.Index > 5 {
				return &ProfileError{Field: field + ".Index", Reason: fmt.Sprintf("%d is not an argument number (0 to 5)", arg.Index)}
			}
			if arg.Op > OpMaskedEqual {
				return &ProfileError{Field: field + ".Op", Reason: fmt.Sprintf("unknown comparison %d", arg.Op)}
			}
		}
	}
	return nil
}

// rulesBySyscall maps each system call number of a that p mentions to its
// rules in evaluation order, the Allow entries last.
func (p *Profile) rulesBySyscall(a arch) (map[uint32][]Rule, error) {
	out := map[uint32][]Rule{}
	add := func(name string, r Rule) error {
		nr, ok := a.nr(name)
		if !ok {
			if knownSyscall(name) {
				return nil // exists elsewhere, not on a
			}
			return &UnknownSyscallError{Name: name, Arch: a.name}
		}
		out[nr] = append(out[nr], r)
		return nil
	}
	for _, r := range p.Rules {
		for _, name := range r.Names {
			if err := add(name, r); err != nil {
				return nil, err
			}
		}
	}
	allow := Rule{Action: ActAllow}
	for _, name := range p.Allow {
		if err := add(name, allow); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// segment is a range of system call numbers, from start up to the next
// segment's start, that share one block of code ending in a return.
type segment struct {
	start uint32
	code  []Instruction
}

// segments partitions the 32-bit number space into ranges with the same
// code: default-action gaps and the rules of each listed call, merging
// neighbours with identical code.
func segments(bySyscall map[uint32][]Rule, defaultRet uint32) ([]segment, error) {
	nrs := make([]uint32, 0, len(bySyscall))
	for nr := range bySyscall {
		nrs = append(nrs, nr)
	}
	slices.Sort(nrs)
	deflt := []Instruction{stmt(opRetK, defaultRet)}
	segs := []segment{{start: 0, code: deflt}}
	push := func(start uint32, code []Instruction) {
		last := &segs[len(segs)-1]
		if slices.Equal(last.code, code) {
			return
		}
		if last.start == start {
			last.code = code
			// The replaced segment may now equal its predecessor.
			if n := len(segs); n > 1 && slices.Equal(segs[n-2].code, code) {
				segs = segs[:n-1]
			}
			return
		}
		segs = append(segs, segment{start: start, code: code})
	}
	for _, nr := range nrs {
		code, err := ruleCode(bySyscall[nr], defaultRet)
		if err != nil {
			return nil, err
		}
		push(nr, code)
		if nr != ^uint32(0) {
			push(nr+1, deflt)
		}
	}
	return segs, nil
}

// searchTree appends to out a binary search over segs; A holds the system
// call number. Every path ends in a segment's return.
func searchTree(out []Instruction, segs []segment) []Instruction {
	if len(segs) == 1 {
		return append(out, segs[0].code...)
	}
	mid := len(segs) / 2
	pivot := segs[mid].start
	if left := treeSize(segs[:mid]); left <= maxJumpOf {
		out = append(out, jump(opJgeK, pivot, uint8(left), 0))
	} else {
		// Too far for a conditional jump: hop over an unconditional one.
		out = append(out, jump(opJgeK, pivot, 0, 1), stmt(opJa, uint32(left)))
	}
	out = searchTree(out, segs[:mid])
	return searchTree(out, segs[mid:])
}

// sharedReturnTree is searchTree with every plain return shared: a
// comparison whose side is a range that only returns jumps straight to one
// return instruction of that value, placed after the tree, instead of to a
// copy of its own. The default profile shrinks from 174 instructions to
// about half, which the kernel checks and compiles faster at every
// sandbox start. It reports false when a jump would be out of range; the
// caller then uses searchTree.
func sharedReturnTree(prefix []Instruction, segs []segment) ([]Instruction, bool) {
	type fixup struct {
		at   int
		onT  bool // the true branch, else the false branch
		retK uint32
	}
	var fixes []fixup
	out := slices.Clone(prefix)
	ok := true
	plainRet := func(s []segment) (uint32, bool) {
		if len(s) == 1 && len(s[0].code) == 1 && s[0].code[0].Code == opRetK {
			return s[0].code[0].K, true
		}
		return 0, false
	}
	var emit func(segs []segment)
	emit = func(segs []segment) {
		if len(segs) == 1 {
			out = append(out, segs[0].code...)
			return
		}
		mid := len(segs) / 2
		left, right := segs[:mid], segs[mid:]
		at := len(out)
		out = append(out, jump(opJgeK, segs[mid].start, 0, 0))
		lk, lRet := plainRet(left)
		rk, rRet := plainRet(right)
		switch {
		case lRet && rRet:
			fixes = append(fixes, fixup{at, true, rk}, fixup{at, false, lk})
		case lRet:
			fixes = append(fixes, fixup{at, false, lk})
			emit(right)
		case rRet:
			fixes = append(fixes, fixup{at, true, rk})
			emit(left)
		default:
			start := len(out)
			emit(left)
			if n := len(out) - start; n <= maxJumpOf {
				out[at].Jt = uint8(n)
			} else {
				ok = false
			}
			emit(right)
		}
	}
	emit(segs)
	rets := map[uint32]int{}
	for _, f := range fixes {
		if _, seen := rets[f.retK]; !seen {
			rets[f.retK] = len(out)
			out = append(out, stmt(opRetK, f.retK))
		}
		off := rets[f.retK] - (f.at + 1)
		if off > maxJumpOf {
			return nil, false
		}
		if f.onT {
			out[f.at].Jt = uint8(off)
		} else {
			out[f.at].Jf = uint8(off)
		}
	}
	return out, ok
}

// treeSize is the number of instructions searchTree emits for segs.
func treeSize(segs []segment) int {
	if len(segs) == 1 {
		return len(segs[0].code)
	}
	mid := len(segs) / 2
	left := treeSize(segs[:mid])
	n := 1 + left + treeSize(segs[mid:])
	if left > maxJumpOf {
		n++
	}
	return n
}

// ruleCode emits the checks for one system call: each rule in order, then
// the default return. The code is position independent.
func ruleCode(rules []Rule, defaultRet uint32) ([]Instruction, error) {
	var out []Instruction
	for i := 0; i < len(rules); {
		r := rules[i]
		ret := stmt(opRetK, retValue(r.Action, r.Errno))
		if len(r.Args) == 0 {
			return append(out, ret), nil // later rules are unreachable
		}
		if n := wordRun(rules[i:]); n > 1 {
			out = append(out, wordRunCode(rules[i:i+n])...)
			i += n
			continue
		}
		block, err := argChecks(r.Args)
		if err != nil {
			return nil, err
		}
		out = append(append(out, block...), ret)
		i++
	}
	return append(out, stmt(opRetK, defaultRet)), nil
}

// wholeWord reports whether r's only condition compares one 32-bit half
// of an argument, whole, with a value, and returns the half's offset in
// seccomp_data and the value: an OpMaskedEqual whose mask keeps every bit
// of one half and none of the other, and whose value lies in the kept half.
func wholeWord(r Rule) (off, val uint32, ok bool) {
	if len(r.Args) != 1 || r.Args[0].Op != OpMaskedEqual {
		return 0, 0, false
	}
	a := r.Args[0]
	lo := uint32(offArgs + 8*int(a.Index))
	switch {
	case a.Mask == 0xffffffff && a.Value>>32 == 0:
		return lo, uint32(a.Value), true
	case a.Mask == 0xffffffff<<32 && uint32(a.Value) == 0:
		return lo + 4, uint32(a.Value >> 32), true
	}
	return 0, 0, false
}

// wordRun returns how many rules at the start of rules compare the same
// half whole (see wholeWord) and take the same action: at most maxJumpOf,
// so that the first comparison reaches the shared return; 0 if the first
// rule does not.
func wordRun(rules []Rule) int {
	off, _, ok := wholeWord(rules[0])
	if !ok {
		return 0
	}
	ret := retValue(rules[0].Action, rules[0].Errno)
	n := 1
	for ; n < len(rules) && n < maxJumpOf; n++ {
		o, _, ok := wholeWord(rules[n])
		if !ok || o != off || retValue(rules[n].Action, rules[n].Errno) != ret {
			break
		}
	}
	return n
}

// wordRunCode emits a run of rules found by wordRun as one load, a
// comparison per rule that jumps to one shared return, and that return,
// which a miss of the last comparison skips. Since the rules share their
// action, matching any of them is what matching the first that matches
// would do.
func wordRunCode(rules []Rule) []Instruction {
	off, _, _ := wholeWord(rules[0])
	out := []Instruction{stmt(opLdAbs, off)}
	for i, r := range rules {
		_, val, _ := wholeWord(r)
		out = append(out, jump(opJeqK, val, uint8(len(rules)-1-i), 0))
	}
	out[len(out)-1].Jf = 1
	return append(out, stmt(opRetK, retValue(rules[0].Action, rules[0].Errno)))
}

// argChecks emits code that falls through when every condition holds and
// otherwise jumps past the instruction that follows the code.
func argChecks(args []Arg) ([]Instruction, error) {
	var out []Instruction
	type patch struct {
		at    int
		field byte // 't' for Jt, 'f' for Jf, 'k' for an unconditional K
	}
	var misses []patch
	for _, arg := range args {
		lo := uint32(offArgs + 8*int(arg.Index))
		hi := lo + 4
		vlo, vhi := uint32(arg.Value), uint32(arg.Value>>32)
		switch arg.Op {
		case OpEqual:
			out = append(out, stmt(opLdAbs, hi), jump(opJeqK, vhi, 0, 0))
			misses = append(misses, patch{len(out) - 1, 'f'})
			out = append(out, stmt(opLdAbs, lo), jump(opJeqK, vlo, 0, 0))
			misses = append(misses, patch{len(out) - 1, 'f'})
		case OpNotEqual:
			// Holds when either half differs.
			out = append(out, stmt(opLdAbs, hi), jump(opJeqK, vhi, 0, 2))
			out = append(out, stmt(opLdAbs, lo), jump(opJeqK, vlo, 0, 0))
			misses = append(misses, patch{len(out) - 1, 't'})
		case OpMaskedEqual:
			halves := []struct{ off, mask, val uint32 }{
				{hi, uint32(arg.Mask >> 32), vhi},
				{lo, uint32(arg.Mask), vlo},
			}
			for _, h := range halves {
				switch {
				case h.val&^h.mask != 0: // can never match
					out = append(out, stmt(opJa, 0))
					misses = append(misses, patch{len(out) - 1, 'k'})
				case h.mask == 0: // nothing to compare
				case h.mask == 0xffffffff: // the AND would change nothing
					out = append(out, stmt(opLdAbs, h.off), jump(opJeqK, h.val, 0, 0))
					misses = append(misses, patch{len(out) - 1, 'f'})
				default:
					out = append(out, stmt(opLdAbs, h.off), stmt(opAndK, h.mask), jump(opJeqK, h.val, 0, 0))
					misses = append(misses, patch{len(out) - 1, 'f'})
				}
			}
		}
	}
	// A miss lands just past the rule's return, which follows out.
	end := len(out) + 1
	for _, m := range misses {
		off := end - (m.at + 1)
		if m.field != 'k' && off > maxJumpOf {
			return nil, &ProfileError{Field: "Rules", Reason: "too many argument conditions in one rule"}
		}
		switch m.field {
		case 't':
			out[m.at].Jt = uint8(off)
		case 'f':
			out[m.at].Jf = uint8(off)
		case 'k':
			out[m.at].K = uint32(off)
		}
	}
	return out, nil
}

// retValue is the SECCOMP_RET_* value for action a with errno e.
func retValue(a Action, e uint16) uint32 {
	switch a {
	case ActAllow:
		return retAllow
	case ActKillProcess:
		return retKillProcess
	case ActTrap:
		return retTrap
	case ActLog:
		return retLog
	}
	if e == 0 {
		e = errnoEPERM
	}
	return retErrno | uint32(e)
}

func stmt(code uint16, k uint32) Instruction { return Instruction{Code: code, K: k} }

func jump(code uint16, k uint32, jt, jf uint8) Instruction {
	return Instruction{Code: code, Jt: jt, Jf: jf, K: k}
}
