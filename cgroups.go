package sandbox

import "time"

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
}

// usage is what a run's cgroup measured.
type usage struct {
	cpu        time.Duration
	memoryPeak int64
	oomKills   uint64
}

func (s *Sandbox) limits() limits {
	return limits{memory: s.memory, cpu: s.cpu, pids: s.pids}
}
