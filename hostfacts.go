package sandbox

import (
	"sync"

	"github.com/sandboxkit/sandbox/internal/state"
)

// hostFacts are facts about the host that cannot change while the process
// runs (which kernel files exist, the highest capability number, the
// process's own start time).
type hostFacts struct {
	lastCap     int
	maskedFiles []string // the masked files this kernel has
	maskedDirs  []string
	readOnly    []string
	owner       state.Owner // this process, for cgroup names
}

// facts returns the host facts, probed on the first call of the process:
// a service that builds a new definition per request probes once too.
var facts = sync.OnceValue(func() *hostFacts {
	f := &hostFacts{}
	f.probe()
	return f
})
