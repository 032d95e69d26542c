package sandbox

import "sync"

// hostFacts are facts about the host that cannot change while the process
// runs (which kernel files exist, the highest capability number, the
// process's own start time). They are
// probed once per definition, on its first run, and shared by every copy
// of the definition, so that a template run thousands of times probes once.
type hostFacts struct {
	once        sync.Once
	lastCap     int
	maskedFiles []string // the masked files this kernel has
	maskedDirs  []string
	readOnly    []string
	owner       string // this process's PID and start time, for cgroup names
}

// get returns the facts, probing the host on the first call.
func (f *hostFacts) get() *hostFacts {
	if f == nil { // a Sandbox not made by New
		f = &hostFacts{}
	}
	f.once.Do(f.probe)
	return f
}
