package sandbox

import (
	"fmt"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cgroupPrefix starts the name of every cgroup the package creates, one per
// run, directly below the root of each hierarchy:
// "sandboxkit-<owner pid>-<owner start time>-<16 hex digits>". One whose
// owner is gone is garbage a crashed caller left behind (see Collect).
const cgroupPrefix = "sandboxkit-"

// cfsPeriod is the CPU quota period: WithCPU(0.5) allows 50 ms per 100 ms.
const cfsPeriod = 100 * time.Millisecond

// limits is what a run asks of its cgroup.
type limits struct {
	memory int64 // bytes; 0 for none
	cpu    Cores // 0 for none
	pids   int   // 0 for none
	// freezer: the cgroup can be frozen (Pause); on v1 it joins one
	// more hierarchy, which a one-shot run does not pay for.
	freezer bool
	// oci, when set, is an OCI spec's whole resources section (FromSpec),
	// which the limits above come from; the cgroup applies all of it.
	oci *specs.LinuxResources
}

// usage is what a run's cgroup measured.
type usage struct {
	cpu        time.Duration
	memoryPeak int64
	oomKills   uint64
}

func (s *Sandbox) limits() limits {
	return limits{memory: s.memory, cpu: s.cpu, pids: s.pids, oci: s.oci.resources}
}

// MinMemory is the smallest memory limit WithMemory takes, as Docker's:
// under a smaller one the kernel cannot even start a program.
const MinMemory = 6 << 20

// WithMemory returns a copy of s whose processes may use at most bytes of
// memory, all together, with no swap beyond it (memory.max and
// memory.swap.max on cgroup v2, memory.limit_in_bytes and
// memory.memsw.limit_in_bytes on v1). A run that exceeds it is killed and
// its [Result] has OOMKilled set. bytes must be at least [MinMemory]; the
// last call wins. By default there is no limit.
func (s *Sandbox) WithMemory(bytes int64) *Sandbox {
	c := s.clone()
	switch {
	case bytes <= 0:
		c.invalid("memory", bytes, "must be positive")
		return c
	case bytes < MinMemory:
		c.invalid("memory", bytes, fmt.Sprintf("must be at least %d bytes (6 MiB): less cannot start a program", MinMemory))
		return c
	}
	c.memory = bytes
	return c
}

// Cores is an amount of CPU time per wall-clock time: 0.5 is half of one
// core, 2 is two full cores.
type Cores float64

// WithCPU returns a copy of s whose processes together get at most cores of
// CPU time (a CFS quota over a 100 ms period). cores must be at least 0.01;
// the last call wins. By default there is no limit.
func (s *Sandbox) WithCPU(cores Cores) *Sandbox {
	c := s.clone()
	if !(cores >= 0.01) || cores > 1<<20 {
		c.invalid("cpu", cores, "must be between 0.01 and 1048576 cores")
		return c
	}
	c.cpu = cores
	return c
}

// WithPids returns a copy of s in which at most n processes and threads may
// exist at once; a fork beyond it fails with EAGAIN. n must be positive; the
// last call wins. By default there is no limit.
func (s *Sandbox) WithPids(n int) *Sandbox {
	c := s.clone()
	if n <= 0 {
		c.invalid("pids", n, "must be positive")
		return c
	}
	c.pids = n
	return c
}
