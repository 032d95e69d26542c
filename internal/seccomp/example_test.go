package seccomp_test

import (
	"errors"
	"fmt"

	"github.com/sandboxkit/sandbox/internal/seccomp"
)

func ExampleDefault() {
	prog, err := seccomp.Default().Compile("arm64")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(prog) <= seccomp.MaxInstructions)
	// Output: true
}

func ExampleProfile_Compile() {
	p := &seccomp.Profile{
		Allow: []string{"read", "write", "exit_group", "chwon"},
	}
	_, err := p.Compile("amd64")
	var unknown *seccomp.UnknownSyscallError
	if errors.As(err, &unknown) {
		fmt.Println("typo:", unknown.Name)
	}
	// Output: typo: chwon
}
