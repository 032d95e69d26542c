//go:build linux

// Command compare measures how long it takes to run busybox "true" with
// comparable isolation under sandboxkit, runc, crun and bubblewrap, plus two
// baselines (a plain fork+exec and unshare(1)), all on this machine in one
// run. Every contender runs once per round, in an order that rotates from
// round to round and is reshuffled every few rounds, so that drift in the
// machine's load, and the kernel's deferred teardown of one run, spread
// over all of them alike. It prints a markdown table of the median, p10 and
// p90 wall-clock time of each, and each median relative to sandboxkit's.
//
// It needs root (namespaces, cgroups, mounts) and the runc, crun, bwrap,
// unshare and busybox-static packages; bench/compare.sh installs them. It
// downloads nothing. crun refuses hosts with hybrid cgroups, so the
// program re-executes itself in a private mount namespace and there
// replaces /sys/fs/cgroup by a tmpfs holding only the v1 hierarchies,
// without the cgroup2 mount at /sys/fs/cgroup/unified, for every contender
// alike. The host's own mounts are left untouched, which it checks at the
// end, together with leftover containers and cgroups.
//
//	sudo go run ./bench/compare -n 300 -warmup 20
//	sudo go run ./bench/compare -json results.json
//	sudo go run ./bench/compare -exec        # an exec into a running sandbox
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	if stop(); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	rounds int    // measured rounds; every contender runs once per round
	warmup int    // rounds run first and not measured
	json   string // file to write JSON results to; "-" means stdout instead of the table
	seed   uint64 // seed of the shuffled orders of the contenders
	exec   bool   // time an exec into a running sandbox instead of a run
	extra  []extraRuntime
}

// An extraRuntime is one more OCI runtime to time (-runtime NAME=PATH),
// such as another build of sandboxkit-runtime, so that two builds are
// compared in one run.
type extraRuntime struct {
	name, bin string
}

// parseRuntime parses a -runtime value, NAME=PATH.
func parseRuntime(v string, taken []extraRuntime) (extraRuntime, error) {
	name, bin, ok := strings.Cut(v, "=")
	if !ok || name == "" || bin == "" {
		return extraRuntime{}, fmt.Errorf("-runtime %q: want NAME=PATH", v)
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.') {
			return extraRuntime{}, fmt.Errorf("-runtime %q: NAME must be lower-case letters, digits, '-', '_' and '.'", v)
		}
	}
	if slices.Contains([]string{"sandboxkit", "sandboxkit-runtime", "runc", "crun", "bwrap", "unshare", "exec"}, name) ||
		slices.ContainsFunc(taken, func(x extraRuntime) bool { return x.name == name }) {
		return extraRuntime{}, fmt.Errorf("-runtime %q: the name %s is taken", v, name)
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return extraRuntime{}, err
	}
	if st, err := os.Stat(abs); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return extraRuntime{}, fmt.Errorf("-runtime %q: %s is not an executable file", v, abs)
	}
	return extraRuntime{name: name, bin: abs}, nil
}

// run parses args and either starts the benchmark in a private mount
// namespace (the first, outer invocation) or runs it (the inner one).
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("compare", flag.ContinueOnError)
	var o options
	fl.IntVar(&o.rounds, "n", 300, "measured rounds; every contender runs once per round")
	fl.IntVar(&o.warmup, "warmup", 20, "unmeasured rounds run first")
	fl.Uint64Var(&o.seed, "seed", 1, "seed of the shuffled orders in which the contenders run")
	fl.BoolVar(&o.exec, "exec", false, "time an exec of busybox true into a sandbox that runs (Instance.Exec, and each runtime's exec) instead of a whole run")
	fl.StringVar(&o.json, "json", "", `write the results as JSON to this file ("-": to stdout, instead of the table)`)
	fl.Func("runtime", "NAME=PATH: one more OCI runtime to time, e.g. another build of sandboxkit-runtime (repeatable)", func(v string) error {
		x, err := parseRuntime(v, o.extra)
		if err == nil {
			o.extra = append(o.extra, x)
		}
		return err
	})
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	if o.rounds < 1 || o.warmup < 0 {
		return errors.New("-n must be at least 1 and -warmup at least 0")
	}
	if os.Geteuid() != 0 {
		return errors.New("must run as root (namespaces, cgroups and mounts)")
	}
	if os.Getenv(innerEnv) == "" {
		return runOuter(ctx, o, args, stdout)
	}
	return runInner(ctx, o, stdout)
}
