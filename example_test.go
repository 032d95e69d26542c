package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"time"

	"github.com/sandboxkit/sandbox"
)

// This example needs Linux and root, so it is compiled but not run by go
// test.
func ExampleSandbox_Run() {
	sb := sandbox.New(sandbox.HostRoot()).
		WithMemory(64 << 20).
		WithCPU(0.5).
		WithPids(32).
		WithTimeout(2 * time.Second)

	res, err := sb.Run(context.Background(), "/bin/sh", "-c", "echo hi")
	switch {
	case errors.Is(err, sandbox.ErrInvalidConfig): // fix the builder calls
		log.Fatal(err)
	case errors.Is(err, fs.ErrPermission): // not root
		log.Fatal(err)
	case err != nil: // the host could not run the sandbox; err names what failed
		log.Fatal(err)
	case res.TimedOut, res.OOMKilled, res.ExitCode != 0: // the program failed
		fmt.Printf("failed: exit %d, timed out %v, OOM %v\n", res.ExitCode, res.TimedOut, res.OOMKilled)
	}
	fmt.Printf("%s(cpu %v, memory peak %d bytes)\n", res.Stdout, res.CPU, res.MemoryPeak)
}

// One definition serves as a template: each With returns a copy.
func ExampleNew() {
	base := sandbox.New(sandbox.Dir("/srv/rootfs")).WithMemory(128 << 20)
	strict := base.WithTimeout(time.Second).WithPids(16)
	fmt.Println(base.Validate(), strict.Validate())
	// Output: <nil> <nil>
}

func ExampleSandbox_Validate() {
	err := sandbox.New(sandbox.Dir("./rootfs")).WithMemory(-1).Validate()
	fmt.Println(err)
	// Output:
	// sandbox: invalid configuration: root ./rootfs: must be an absolute path; memory -1: must be positive
}
