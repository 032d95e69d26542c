package sandbox

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/spawn"
)

// addKeepCaps appends prctl(PR_SET_KEEPCAPS) for a user other than root
// whose plan has capability sets: its permitted set then survives the
// change of IDs, for capset to choose from.
func (pl *plan) addKeepCaps(p *spawn.Program) {
	if pl.capSets != nil && pl.uid != 0 {
		p.Syscall(spawn.Step{Op: "prctl", Path: "PR_SET_KEEPCAPS"}, unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1)
	}
}

// addCapSets appends capset(2) with the plan's effective, permitted and
// inheritable sets, then clears the ambient set and raises its ambient
// capabilities one by one. At the exec the kernel derives the program's
// sets from these as for any process (capabilities(7)): root gets its
// bounding and inheritable sets as permitted and effective, another user
// its ambient set.
func (pl *plan) addCapSets(p *spawn.Program) {
	cs := pl.capSets
	var e, pm, in [2]uint32
	for _, s := range []struct {
		set  *[2]uint32
		caps []int
	}{{&e, cs.effective}, {&pm, cs.permitted}, {&in, cs.inheritable}} {
		for _, c := range s.caps {
			s.set[c/32] |= 1 << (c % 32)
		}
	}
	hdr := make([]byte, 8)
	binary.NativeEndian.PutUint32(hdr[0:], unix.LINUX_CAPABILITY_VERSION_3)
	data := make([]byte, 24)
	for i := range 2 {
		binary.NativeEndian.PutUint32(data[12*i:], e[i])
		binary.NativeEndian.PutUint32(data[12*i+4:], pm[i])
		binary.NativeEndian.PutUint32(data[12*i+8:], in[i])
	}
	p.Syscall(spawn.Step{Op: "capset"}, unix.SYS_CAPSET, p.Bytes(hdr), p.Bytes(data))
	p.Syscall(spawn.Step{Op: "prctl", Path: "clear ambient capabilities"}, unix.SYS_PRCTL,
		unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL)
	for _, c := range cs.ambient {
		p.Syscall(spawn.Step{Op: "raise ambient capability", Path: capabilityName(c)}, unix.SYS_PRCTL,
			unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c))
	}
}
