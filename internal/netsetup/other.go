//go:build !linux

package netsetup

import (
	"context"
	"errors"
)

// Detach is a no-op outside Linux, where no Attachment can exist.
func (a *Attachment) Detach(ctx context.Context) error { return nil }

// RemoveBridge is only implemented on Linux; elsewhere it returns an error
// matching errors.ErrUnsupported.
func RemoveBridge(ctx context.Context, cfg Config) error {
	return errors.ErrUnsupported
}

// Collect has nothing to collect outside Linux.
func Collect(ctx context.Context, stateDir string) error { return nil }
