//go:build !linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"runtime"
)

// StartDetached is Linux only: elsewhere it returns an error matching
// errors.ErrUnsupported.
func (s *Sandbox) StartDetached(ctx context.Context, gate string, argv ...string) (int, error) {
	return 0, fmt.Errorf("sandbox: start detached on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// Attach is Linux only: elsewhere it returns an error matching
// errors.ErrUnsupported.
func (s *Sandbox) Attach(pid int) (*Instance, error) {
	return nil, fmt.Errorf("sandbox: attach on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
