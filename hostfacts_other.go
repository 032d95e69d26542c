//go:build !linux

package sandbox

func (f *hostFacts) probe() {}
