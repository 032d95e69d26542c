package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

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

// A container started by another process (an OCI runtime's create), known
// by its PID and cgroup path, gets a second process as an OCI runtime's
// exec --detach does; the caller reaps it by its PID. Linux and root only:
// without an Output line it is compiled, not run.
func ExampleSandbox_Attach() {
	ctx := context.Background()
	sb := sandbox.New(sandbox.Dir("/srv/rootfs")).WithCgroupPath("/oci/web")
	pid := 4242 // from the runtime's state
	in, err := sb.Attach(pid)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer in.Close() // the handle; the container runs on
	execPID, _, err := in.Command("/bin/sh", "-c", "echo hello from exec").WithStdout(os.Stdout).StartDetached(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	var ws syscall.WaitStatus
	syscall.Wait4(execPID, &ws, 0, nil)
	fmt.Println("exit", ws.ExitStatus())
}

// An OCI runtime's createContainer hook: a program of the host run in the
// sandbox's namespaces while its root is assembled and not yet pivoted
// into. Linux and root only: compiled, not run.
func ExampleSandbox_WithCreateHook() {
	ctx := context.Background()
	sb := sandbox.New(sandbox.Dir("/srv/bundle/rootfs")).WithCgroupPath("/oci/web")
	hooked := sb.WithCreateHook(func(pid int) error {
		in, err := sb.Attach(pid) // the sandbox as it waits
		if err != nil {
			return err
		}
		defer in.Close()
		res, err := in.Exec(ctx, "/usr/local/bin/prepare-rootfs", "/srv/bundle/rootfs")
		if err == nil && res.ExitCode != 0 {
			err = fmt.Errorf("prepare-rootfs: %s", res)
		}
		return err
	})
	pid, err := hooked.StartDetached(ctx, "/run/web/gate", "/bin/server")
	fmt.Println(pid, err)
}
