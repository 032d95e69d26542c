//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// sweepTimeout bounds the final cleanup, which must not inherit the
// cancellation that may have ended the benchmark.
const sweepTimeout = 30 * time.Second

// runInner runs the benchmark. It must run in a private mount namespace.
func runInner(ctx context.Context, o options, stdout io.Writer) (err error) {
	tmp, err := os.MkdirTemp("", idPrefix)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(tmp)) }()
	staging := filepath.Join(tmp, "cgroup")
	if err := os.Mkdir(staging, 0o700); err != nil {
		return err
	}
	if err := hideUnified(staging); err != nil {
		return fmt.Errorf("hide %s: %w", unifiedDir, err)
	}
	root := filepath.Join(tmp, "rootfs")
	busybox, err := buildRootfs(root)
	if err != nil {
		return fmt.Errorf("build rootfs: %w", err)
	}
	pick := contenders
	if o.exec {
		pick = execContenders
	}
	cs, err := pick(root, tmp, o.extra)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sweepTimeout)
		defer cancel()
		for _, c := range cs {
			if c.sweep != nil {
				err = errors.Join(err, c.sweep(sctx))
			}
		}
		if left := processesUnder(root); len(left) > 0 {
			err = errors.Join(err, fmt.Errorf("processes left running: %s", strings.Join(left, "; ")))
		}
	}()

	// A contender that cannot run here is reported and left out.
	var active []*contender
	for _, c := range cs {
		if c.skipped == "" {
			if err := once(ctx, c, 0); err != nil {
				if ctx.Err() != nil {
					return err
				}
				c.skipped = err.Error()
			}
		}
		if c.skipped == "" {
			active = append(active, c)
		}
	}
	if len(active) == 0 {
		return errors.New("no contender can run")
	}

	// Each block of len(active) rounds rotates one order, so that every
	// contender runs once in every position; each block shuffles a new
	// order, so that no contender always follows the same one (the kernel
	// finishes some teardown, of namespaces and cgroups, after a run ends).
	rng := rand.New(rand.NewPCG(o.seed, 0))
	order := slices.Clone(active)
	for r := range o.warmup + o.rounds {
		if r%len(order) == 0 {
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		for i := range order {
			c := order[(r+i)%len(order)]
			d, err := timed(ctx, c, r+1)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", c.name, r, err)
			}
			if r >= o.warmup {
				c.samples = append(c.samples, d)
			}
		}
	}
	return report(stdout, o, describeMachine(busybox), cs)
}

// once runs c once, untimed.
func once(ctx context.Context, c *contender, seq int) error {
	_, err := timed(ctx, c, seq)
	return err
}

// timed prepares run seq of c and returns how long the run took, from just
// before it started to after it ended and was cleaned up.
func timed(ctx context.Context, c *contender, seq int) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if c.prepare != nil {
		if err := c.prepare(seq); err != nil {
			return 0, fmt.Errorf("prepare: %w", err)
		}
	}
	start := time.Now()
	err := c.run(ctx, seq)
	return time.Since(start), err
}
