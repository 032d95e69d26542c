//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sandboxkit/sandbox"
)

// A contender is one way of running busybox true in isolation.
type contender struct {
	name    string // short name in the table
	command string // what one run does, for the report
	// prepare does the untimed setup of run number seq.
	prepare func(seq int) error
	// run runs busybox true once, waits for it and cleans up after it; it
	// fails if true did not exit with status 0.
	run func(ctx context.Context, seq int) error
	// sweep removes whatever runs that were interrupted left behind.
	sweep func(ctx context.Context) error

	skipped string          // why it cannot run here, or ""
	samples []time.Duration // wall-clock time of each measured run
	deletes int             // runs after which the runtime's state had to be deleted
}

// contenders returns the contenders, sandboxkit first, for the rootfs at
// root and OCI bundles made in dir; extra are more OCI runtimes to time,
// after the three.
func contenders(root, dir string, extra []extraRuntime) ([]*contender, error) {
	sb := sandbox.New(sandbox.Dir(root)).WithMemory(memoryLimit)
	cs := []*contender{{
		name:    "sandboxkit",
		command: `sandbox.New(sandbox.Dir(ROOT)).WithMemory(64<<20).Run(ctx, "/bin/true")`,
		run: func(ctx context.Context, _ int) error {
			return trueRan(sb.Run(ctx, "/bin/true"))
		},
	}}
	// sandboxkit-runtime (cmd/sandboxkit-runtime, which compare.sh builds
	// and puts on PATH) gets the very bundle runc and crun get.
	for _, rt := range []string{"sandboxkit-runtime", "runc", "crun"} {
		bin, err := exec.LookPath(rt)
		if err != nil {
			cs = append(cs, &contender{name: rt, skipped: err.Error()})
			continue
		}
		c, err := ociContender(rt, bin, root, filepath.Join(dir, rt))
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	for _, x := range extra {
		c, err := ociContender(x.name, x.bin, root, filepath.Join(dir, x.name))
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	cs = append(cs,
		execContender("bwrap", "bwrap", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
			"--die-with-parent", "--ro-bind", root, "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "/bin/true"),
		execContender("unshare", "unshare", "--pid", "--fork", "--mount", "--uts", "--ipc", "--net", root+"/bin/true"),
		execContender("exec", root+"/bin/true"),
	)
	return cs, nil
}

// trueRan returns err, or an error unless res is a clean exit of true.
func trueRan(res *sandbox.Result, err error) error {
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("exit code %d, signal %v: %s", res.ExitCode, res.Signal, res.Stderr)
	}
	return nil
}

// execContender runs argv with os/exec, as a Go service shells out.
func execContender(name string, argv ...string) *contender {
	return &contender{
		name:    name,
		command: strings.Join(argv, " "),
		run: func(ctx context.Context, _ int) error {
			return execRun(ctx, argv...)
		},
	}
}

// ociContender, named rt, runs "bin run --bundle B ID" with a fresh
// container ID and cgroup per run, and deletes the container if anything
// of it is left.
func ociContender(rt, bin, root, bundle string) (*contender, error) {
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		return nil, err
	}
	// The default --root of the three runtimes, /run/ and the binary's
	// name: another build of one of them keeps its state there too.
	stateDir := "/run/" + filepath.Base(bin)
	id := func(seq int) string { return fmt.Sprintf("%s%s-%d-%d", idPrefix, rt, os.Getpid(), seq) }
	c := &contender{
		name:    rt,
		command: fmt.Sprintf("%s run --bundle BUNDLE %sID (+ delete --force ID if state is left)", bin, idPrefix),
		prepare: func(seq int) error {
			return writeSpec(bundle, ociSpec(root, "/"+id(seq)))
		},
	}
	c.run = func(ctx context.Context, seq int) error {
		if err := execRun(ctx, bin, "run", "--bundle", bundle, id(seq)); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(stateDir, id(seq))); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		c.deletes++
		return execRun(ctx, bin, "delete", "--force", id(seq))
	}
	c.sweep = func(ctx context.Context) error {
		var errs []error
		entries, _ := os.ReadDir(stateDir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), idPrefix+rt+"-") {
				errs = append(errs, execRun(ctx, bin, "delete", "--force", e.Name()))
			}
		}
		for _, d := range cgroupDirs(idPrefix + rt + "-") {
			if err := os.Remove(d); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	return c, nil
}

// execRun runs argv to its end with empty stdin and captured output, and
// fails unless it exits with status 0.
func execRun(ctx context.Context, argv ...string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// version returns the first line that "bin --version" prints, or why there
// is none.
func version(bin string) string {
	out, err := exec.Command(bin, "--version").CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil {
		return fmt.Sprintf("unknown (%s --version: %v)", bin, err)
	}
	return line
}
