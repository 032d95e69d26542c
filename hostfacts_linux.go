package sandbox

// probe fills the facts from the host.
func (f *hostFacts) probe() {
	f.lastCap = lastCapability()
	f.maskedFiles = existing(maskedFiles)
	f.maskedDirs = existing(maskedDirs)
	f.readOnly = existing(readOnlyPaths)
	f.owner = ownerTag()
}
