package sandbox_test

import (
	"errors"
	"fmt"

	"github.com/sandboxkit/sandbox"
)

// A definition as an OCI runtime configuration, and back. It needs
// neither Linux nor root: nothing runs.
func ExampleSandbox_Spec() {
	spec, err := sandbox.New(sandbox.Dir("/srv/rootfs")).WithMemory(64<<20).WithPids(32).Spec("/bin/echo", "hi")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(spec.Process.Args, *spec.Linux.Resources.Memory.Limit, *spec.Linux.Resources.Pids.Limit)
	sb, err := sandbox.FromSpec(spec, "/srv/bundle")
	fmt.Println(sb != nil, err)
	// Output:
	// [/bin/echo hi] 67108864 32
	// true <nil>
}

// A field FromSpec does not honour is an error naming it, never ignored.
func ExampleFromSpec() {
	spec, _ := sandbox.New(sandbox.Dir("/srv/rootfs")).Spec("/bin/true")
	spec.Linux.Sysctl = map[string]string{"kernel.panic": "1"}
	_, err := sandbox.FromSpec(spec, "/srv/bundle")
	var ce *sandbox.ConfigError
	if errors.As(err, &ce) {
		fmt.Println(ce.Problems[0].Field)
	}
	// Output:
	// linux.sysctl.kernel.panic
}
