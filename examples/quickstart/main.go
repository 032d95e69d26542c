// Command quickstart runs a few commands in sandboxes on the host's own
// root file system, read only, and prints what each did. It needs root
// (namespaces, cgroups and mounts) and downloads nothing.
//
//	sudo go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/sandboxkit/sandbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Stdout)
	if stop(); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	// One definition, used as a template for every run below.
	sb := sandbox.New(sandbox.HostRoot()).
		WithMemory(256 << 20).
		WithCPU(1).
		WithPids(64).
		WithTimeout(10 * time.Second).
		WithHostname("quickstart")

	commands := [][]string{
		{"/bin/sh", "-c", "echo hello from $(hostname), I am PID $$"},
		{"/bin/sh", "-c", "ps -e -o pid,comm 2>/dev/null || ls /proc | grep -c '^[0-9]'"},
		{"/bin/sh", "-c", "ip -brief addr 2>/dev/null || cat /proc/net/dev"},
		{"/bin/sh", "-c", "echo scratch > /etc/written-in-sandbox && cat /etc/written-in-sandbox"},
		{"/bin/sh", "-c", "exit 3"},
	}
	for _, argv := range commands {
		res, err := sb.Run(ctx, argv...)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "$ %s\n%s", argv[len(argv)-1], res.Stdout)
		fmt.Fprintf(out, "  -> exit %d, wall %v, cpu %v, memory peak %d KiB\n\n",
			res.ExitCode, res.Wall.Round(time.Microsecond), res.CPU.Round(time.Microsecond), res.MemoryPeak>>10)
	}
	if _, err := os.Stat("/etc/written-in-sandbox"); err == nil {
		return fmt.Errorf("the sandbox wrote to the host's /etc")
	}
	fmt.Fprintln(out, "the host's /etc is untouched: writes went to the sandbox's throw-away overlay")
	return nil
}
