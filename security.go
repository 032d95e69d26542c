package sandbox

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// DefaultCapabilities returns the capabilities a sandbox's root user
// keeps unless WithCapabilities says otherwise: the set Docker grants a
// container by default. Every other capability is removed from the
// bounding set, so no program in the sandbox can ever regain it.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
		"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
}

// capabilityNames returns every capability's name, indexed by its Linux
// number.
func capabilityNames() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
		"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
		"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
		"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
		"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
		"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
		"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
		"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
		"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
	}
}

// WithCapabilities returns a copy of s whose root user has exactly the
// named capabilities ("CAP_NET_ADMIN", or "NET_ADMIN"; case does not
// matter) in its bounding, permitted and effective sets, instead of
// [DefaultCapabilities](). No names means no capabilities at all. The
// inheritable and ambient sets are always empty, and a program running as
// another user has no effective capabilities whatever this says. The last
// call wins.
func (s *Sandbox) WithCapabilities(names ...string) *Sandbox {
	c := s.clone()
	caps := make([]int, 0, len(names))
	ok := true
	for _, n := range names {
		num, known := capabilityNumber(n)
		if !known {
			c.invalid("capabilities", n, "unknown capability")
			ok = false
			continue
		}
		caps = append(caps, num)
	}
	if ok {
		slices.Sort(caps)
		c.caps = slices.Compact(caps)
		c.capsSet = true
		c.capSets = nil // FromSpec's five sets give way to the one set
	}
	return c
}

func capabilityNumber(name string) (int, bool) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	num := slices.Index(capabilityNames(), n)
	return num, num >= 0
}

// capabilities returns the numbers of the sandbox's capabilities.
func (s *Sandbox) capabilities() []int {
	if s.capsSet {
		return s.caps
	}
	var caps []int
	for _, n := range DefaultCapabilities() {
		num, _ := capabilityNumber(n)
		caps = append(caps, num)
	}
	slices.Sort(caps)
	return caps
}

// Rlimit names a resource limit of setrlimit(2).
type Rlimit int

// The resource limits, with Linux's numbers.
const (
	RlimitCPU        Rlimit = 0  // CPU time, seconds
	RlimitFSIZE      Rlimit = 1  // largest file created, bytes
	RlimitDATA       Rlimit = 2  // data segment, bytes
	RlimitSTACK      Rlimit = 3  // stack, bytes
	RlimitCORE       Rlimit = 4  // core file size, bytes
	RlimitRSS        Rlimit = 5  // resident set size (ignored by Linux)
	RlimitNPROC      Rlimit = 6  // processes of the user
	RlimitNOFILE     Rlimit = 7  // open file descriptors
	RlimitMEMLOCK    Rlimit = 8  // locked memory, bytes
	RlimitAS         Rlimit = 9  // address space, bytes
	RlimitLOCKS      Rlimit = 10 // file locks
	RlimitSIGPENDING Rlimit = 11 // queued signals
	RlimitMSGQUEUE   Rlimit = 12 // POSIX message queues, bytes
	RlimitNICE       Rlimit = 13 // ceiling of the nice value
	RlimitRTPRIO     Rlimit = 14 // real-time priority
	RlimitRTTIME     Rlimit = 15 // real-time CPU time, microseconds
)

// RlimitInfinity is the value of an unlimited resource limit.
const RlimitInfinity = ^uint64(0)

// String returns the resource's C name, e.g. "RLIMIT_NOFILE".
func (r Rlimit) String() string {
	names := map[Rlimit]string{
		RlimitCPU: "RLIMIT_CPU", RlimitFSIZE: "RLIMIT_FSIZE", RlimitDATA: "RLIMIT_DATA",
		RlimitSTACK: "RLIMIT_STACK", RlimitCORE: "RLIMIT_CORE", RlimitRSS: "RLIMIT_RSS", RlimitNPROC: "RLIMIT_NPROC",
		RlimitNOFILE: "RLIMIT_NOFILE", RlimitMEMLOCK: "RLIMIT_MEMLOCK", RlimitAS: "RLIMIT_AS",
		RlimitLOCKS: "RLIMIT_LOCKS", RlimitSIGPENDING: "RLIMIT_SIGPENDING",
		RlimitMSGQUEUE: "RLIMIT_MSGQUEUE", RlimitNICE: "RLIMIT_NICE", RlimitRTPRIO: "RLIMIT_RTPRIO",
		RlimitRTTIME: "RLIMIT_RTTIME",
	}
	if n, ok := names[r]; ok {
		return n
	}
	return fmt.Sprintf("Rlimit(%d)", int(r))
}

// rlimit is one resource limit to apply.
type rlimit struct {
	resource   Rlimit
	soft, hard uint64
}

// defaultRlimits apply unless WithRlimit overrides them: 1024 open files,
// and no core dumps (which would land in the sandbox's root).
func defaultRlimits() map[Rlimit][2]uint64 {
	return map[Rlimit][2]uint64{
		RlimitNOFILE: {1024, 1024},
		RlimitCORE:   {0, 0},
	}
}

// WithRlimit returns a copy of s in which resource is limited to soft, and
// to hard for raising it ([RlimitInfinity] for no limit). soft must not
// exceed hard. For each resource the last call wins; the defaults are
// RLIMIT_NOFILE 1024 and RLIMIT_CORE 0, other resources keep the caller's
// limits. A hard limit above the caller's own needs CAP_SYS_RESOURCE, and
// Run fails otherwise.
func (s *Sandbox) WithRlimit(resource Rlimit, soft, hard uint64) *Sandbox {
	c := s.clone()
	switch {
	case resource < RlimitCPU || resource > RlimitRTTIME:
		c.invalid("rlimit", resource, "unknown resource")
	case soft > hard:
		c.invalid("rlimit", fmt.Sprintf("%v %d>%d", resource, soft, hard), "soft limit must not exceed hard limit")
	default:
		c.rlimits = maps.Clone(c.rlimits)
		if c.rlimits == nil {
			c.rlimits = map[Rlimit][2]uint64{}
		}
		c.rlimits[resource] = [2]uint64{soft, hard}
	}
	return c
}

// rlimitSet returns the limits to apply, defaults included, in resource
// order.
func (s *Sandbox) rlimitSet() []rlimit {
	all := defaultRlimits()
	maps.Copy(all, s.rlimits)
	var out []rlimit
	for _, r := range slices.Sorted(maps.Keys(all)) {
		out = append(out, rlimit{r, all[r][0], all[r][1]})
	}
	return out
}
