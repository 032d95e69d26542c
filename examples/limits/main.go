// Command limits shows the limits of a sandbox at work: a memory hog is
// OOM-killed, a fork bomb is stopped by the pids limit and an endless loop
// by the timeout, while the host stays unharmed. It needs root and uses the
// host's own root file system, read only.
//
//	sudo go run ./examples/limits
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
		fmt.Fprintln(os.Stderr, "limits:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	sb := sandbox.New(sandbox.HostRoot()).
		WithMemory(32 << 20).
		WithPids(16).
		WithCPU(0.5).
		WithTimeout(2 * time.Second)

	cases := []struct{ name, script string }{
		{"memory hog (32 MiB limit)", "x=$(yes | head -c 200000000); echo survived"},
		{"fork bomb (16 pids)", "bomb() { bomb | bomb & }; bomb; sleep 1"},
		{"endless loop (2 s timeout)", "while :; do :; done"},
	}
	for _, c := range cases {
		res, err := sb.Run(ctx, "/bin/sh", "-c", c.script)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		fmt.Fprintf(out, "%-28s exit %d signal %v oom-killed %v timed-out %v wall %v cpu %v peak %d MiB\n",
			c.name, res.ExitCode, res.Signal, res.OOMKilled, res.TimedOut,
			res.Wall.Round(time.Millisecond), res.CPU.Round(time.Millisecond), res.MemoryPeak>>20)
	}
	res, err := sb.Run(ctx, "/bin/echo", "the host is fine")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "after all that: %s", res.Stdout)
	return nil
}
