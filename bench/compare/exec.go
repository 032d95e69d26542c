//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/sandboxkit/sandbox"
)

// execContenders are the contenders of -exec: busybox true run in a
// sandbox that already runs, one per contender, made before the first
// round (an OCI runtime's exec, as containerd runs every kubectl exec and
// probe, against the package's Instance.Exec).
func execContenders(root, dir string, extra []extraRuntime) ([]*contender, error) {
	var in *sandbox.Instance
	cs := []*contender{{
		name:    "sandboxkit Exec",
		command: `in.Exec(ctx, "/bin/true") on in := sandbox.New(sandbox.Dir(ROOT)).WithMemory(64<<20).Start(ctx)`,
		prepare: func(int) error {
			if in != nil {
				return nil
			}
			var err error
			in, err = sandbox.New(sandbox.Dir(root)).WithMemory(memoryLimit).Start(context.Background())
			return err
		},
		run: func(ctx context.Context, _ int) error {
			return trueRan(in.Exec(ctx, "/bin/true"))
		},
		sweep: func(context.Context) error {
			if in == nil {
				return nil
			}
			return in.Close()
		},
	}}
	runtimes := []extraRuntime{}
	for _, rt := range []string{"sandboxkit-runtime", "runc", "crun"} {
		bin, err := exec.LookPath(rt)
		if err != nil {
			cs = append(cs, &contender{name: rt + " exec", skipped: err.Error()})
			continue
		}
		runtimes = append(runtimes, extraRuntime{name: rt, bin: bin})
	}
	for _, rt := range append(runtimes, extra...) {
		c, err := ociExecContender(rt.name, rt.bin, root, filepath.Join(dir, rt.name+"-exec"))
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// ociExecContender, named rt, runs "bin exec ID /bin/true" in one
// container that "bin run --detach" started before the first round.
func ociExecContender(rt, bin, root, bundle string) (*contender, error) {
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%s%s-exec-%d", idPrefix, rt, os.Getpid())
	started := false
	c := &contender{
		name:    rt + " exec",
		command: fmt.Sprintf("%s exec ID /bin/true, in a container of %s run --detach (sleep)", bin, bin),
	}
	c.prepare = func(int) error {
		if started {
			return nil
		}
		spec := ociSpec(root, "/"+id)
		spec.Process.Args = []string{"/bin/sleep", "86400"}
		if err := writeSpec(bundle, spec); err != nil {
			return err
		}
		// Its stdio are /dev/null: the container keeps them, and a pipe
		// would hold the wait for run until the container ends.
		errFile := filepath.Join(bundle, "run.err")
		f, err := os.Create(errFile)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd := exec.Command(bin, "run", "--detach", "--bundle", bundle, id)
		cmd.Stderr = f
		if err := cmd.Run(); err != nil {
			msg, _ := os.ReadFile(errFile)
			return fmt.Errorf("%s run --detach: %w: %s", bin, err, msg)
		}
		started = true
		return nil
	}
	c.run = func(ctx context.Context, _ int) error {
		return execRun(ctx, bin, "exec", id, "/bin/true")
	}
	c.sweep = func(ctx context.Context) error {
		if !started {
			return nil
		}
		err := execRun(ctx, bin, "delete", "--force", id)
		for _, d := range cgroupDirs(id) {
			err = errors.Join(err, os.Remove(d))
		}
		return err
	}
	return c, nil
}
