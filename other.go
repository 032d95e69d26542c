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
