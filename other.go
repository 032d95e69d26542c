//go:build !linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"runtime"
)

func (s *Sandbox) run(ctx context.Context, argv []string) (*Result, error) {
	return nil, fmt.Errorf("sandbox: run on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func removeBridge(context.Context, Network) error {
	return fmt.Errorf("sandbox: bridge on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
