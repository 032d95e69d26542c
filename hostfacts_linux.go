package sandbox

import (
	"path/filepath"

	"github.com/sandboxkit/sandbox/internal/state"
)

// probe fills the facts from the host.
func (f *hostFacts) probe() {
	f.lastCap = lastCapability()
	f.maskedFiles = existing(maskedFiles)
	f.maskedDirs = existing(append(maskedDirs, thermalThrottleDirs()...))
	f.readOnly = existing(readOnlyPaths)
	f.owner, _ = state.Self() // the zero Owner, never alive, if /proc fails
}

// thermalThrottleDirs returns each CPU's thermal_throttle directory of
// sysfs, which Docker masks (GHSA-6fw5-f8r9-fgfm): its counters leak what
// other tenants run.
func thermalThrottleDirs() []string {
	dirs, _ := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle")
	return dirs
}
