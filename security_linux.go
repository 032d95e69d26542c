package sandbox

import (
	"encoding/binary"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/spawn"
)

// lastCapability returns the highest capability number the kernel knows.
func lastCapability() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return n
		}
	}
	return unix.CAP_LAST_CAP
}

// addRlimits appends a prlimit64 for each resource limit.
func (pl *plan) addRlimits(p *spawn.Program) {
	for _, l := range pl.rlimits {
		b := make([]byte, 16)
		binary.NativeEndian.PutUint64(b[0:], l.soft)
		binary.NativeEndian.PutUint64(b[8:], l.hard)
		p.Syscall(spawn.Step{Op: "setrlimit", Path: l.resource.String()}, unix.SYS_PRLIMIT64, 0, uintptr(l.resource), p.Bytes(b), 0)
	}
}

// addDropBounding appends the ops that remove every capability outside
// caps from the bounding set, so that no exec can bring it back. It must
// run while the process still has CAP_SETPCAP.
func addDropBounding(p *spawn.Program, caps []int, last int) {
	keep := make(map[int]bool, len(caps))
	for _, c := range caps {
		keep[c] = true
	}
	for c := 0; c <= last; c++ {
		if !keep[c] {
			p.Syscall(spawn.Step{Op: "drop capability", Path: capabilityName(c)}, unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c))
		}
	}
}

func capabilityName(c int) string {
	if names := capabilityNames(); c < len(names) {
		return names[c]
	}
	return "capability " + strconv.Itoa(c)
}

// addCapset appends capset(2): for the sandbox's root, effective and
// permitted are the plan's capabilities; for any other user, nothing; inheritable is always
// empty. Then the ambient set is cleared.
func (pl *plan) addCapset(p *spawn.Program) {
	var set [2]uint32
	if pl.uid == 0 {
		for _, c := range pl.caps {
			set[c/32] |= 1 << (c % 32)
		}
	}
	hdr := make([]byte, 8)
	binary.NativeEndian.PutUint32(hdr[0:], unix.LINUX_CAPABILITY_VERSION_3)
	data := make([]byte, 24) // two of {effective, permitted, inheritable}
	for i := range 2 {
		binary.NativeEndian.PutUint32(data[12*i:], set[i])
		binary.NativeEndian.PutUint32(data[12*i+4:], set[i])
	}
	p.Syscall(spawn.Step{Op: "capset"}, unix.SYS_CAPSET, p.Bytes(hdr), p.Bytes(data))
	p.Syscall(spawn.Step{Op: "prctl", Path: "clear ambient capabilities"}, unix.SYS_PRCTL,
		unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL)
}

// addNoNewPrivs appends prctl(PR_SET_NO_NEW_PRIVS): from here on no exec
// can gain privileges, through setuid bits or file capabilities.
func addNoNewPrivs(p *spawn.Program) {
	p.Syscall(spawn.Step{Op: "prctl", Path: "no_new_privs"}, unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1)
}
