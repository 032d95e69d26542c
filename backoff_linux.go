package sandbox

import (
	"context"
	"time"
)

// backoff calls try until it reports done or fails, or ctx ends, waiting
// first, then twice as long each time, up to most, between tries: for
// kernel state that has no event to wait on.
func backoff(ctx context.Context, first, most time.Duration, try func() (done bool, err error)) error {
	delay := first
	for {
		done, err := try()
		if done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, most)
	}
}
