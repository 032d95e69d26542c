package execstub

import "runtime"

// OpenGate is Open for the gated stub.
func OpenGate() (int, error) {
	elf, err := GateELF(runtime.GOARCH)
	if err != nil {
		return -1, err
	}
	return openSealed(elf)
}
