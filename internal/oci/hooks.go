package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// RunHooks runs hooks in order, as the runtime-spec says: each with its
// path, args and env, the container's state as JSON on its stdin, and
// its timeout (seconds; none when nil). The first that fails ends the
// run, unless keepGoing (poststart and poststop hooks, whose failures are
// warnings); the error names each hook that failed and holds what it
// wrote.
func RunHooks(ctx context.Context, kind string, hooks []specs.Hook, st specs.State, keepGoing bool) error {
	var errs []error
	state, err := json.Marshal(st)
	if err != nil {
		return err
	}
	for i, h := range hooks {
		hctx := ctx
		if h.Timeout != nil {
			if *h.Timeout <= 0 {
				return fmt.Errorf("%s hook %d (%s): timeout must be positive", kind, i, h.Path)
			}
			var cancel context.CancelFunc
			hctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
			defer cancel()
		}
		cmd := exec.CommandContext(hctx, h.Path)
		if len(h.Args) > 0 {
			cmd.Args = h.Args
		}
		cmd.Env = h.Env
		if cmd.Env == nil {
			cmd.Env = []string{}
		}
		cmd.Stdin = bytes.NewReader(state)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Run(); err != nil {
			if hctx.Err() != nil {
				err = fmt.Errorf("%w (timeout %ds)", hctx.Err(), *h.Timeout)
			}
			err = fmt.Errorf("%s hook %d (%s): %w: %s", kind, i, h.Path, err, bytes.TrimSpace(stderr.Bytes()))
			if !keepGoing {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
