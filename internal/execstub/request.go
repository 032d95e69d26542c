package execstub

import (
	"encoding/binary"
	"errors"
)

// RequestAddr is where the init maps the request it waits for (see
// InitELF), and RequestCapacity the most bytes a request may take.
const (
	RequestAddr     = 0x10000000
	RequestCapacity = 256 << 10
)

// RequestWaiting is the first word of the record a waiting init writes to
// descriptor 3, and RequestRead that of the one it writes once it read
// its request; a zero word follows each.
const (
	RequestWaiting = 0xfffffffd
	RequestRead    = 0xfffffffc
)

// ErrRequestTooLarge is returned by Request for an argv and environment
// that do not fit in RequestCapacity.
var ErrRequestTooLarge = errors.New("execstub: request larger than the init's request area")

// Request encodes, for a waiting init, the initial stack of a process
// started with argv [path, argv...] and env: argc, the argv pointers, NULL,
// the env pointers, NULL, then the strings, every pointer into the init's
// request area at RequestAddr. The init executes path with argv and env.
func Request(path string, argv, env []string) ([]byte, error) {
	vec := append([]string{path}, argv...)
	words := 1 + len(vec) + 1 + len(env) + 1
	size := 8 * words
	for _, s := range vec {
		size += len(s) + 1
	}
	for _, s := range env {
		size += len(s) + 1
	}
	if size > RequestCapacity {
		return nil, ErrRequestTooLarge
	}
	b := make([]byte, size)
	binary.NativeEndian.PutUint64(b, uint64(len(vec)))
	slot, str := 1, 8*words
	put := func(ss []string) {
		for _, s := range ss {
			binary.NativeEndian.PutUint64(b[8*slot:], uint64(RequestAddr+str))
			slot++
			str += copy(b[str:], s) + 1 // b is zeroed: the NUL is there
		}
		slot++ // NULL
	}
	put(vec)
	put(env)
	return b, nil
}
