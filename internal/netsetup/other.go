//go:build !linux

package netsetup

import (
	"context"
	"errors"
	"os"
)

// NewNetns is only implemented on Linux; elsewhere it returns an error
// matching errors.ErrUnsupported.
func NewNetns() (*os.File, error) {
	return nil, errors.ErrUnsupported
}

// Attach is only implemented on Linux; elsewhere it returns an error matching
// errors.ErrUnsupported.
func Attach(ctx context.Context, cfg Config, netns *os.File) (*Attachment, error) {
	return nil, errors.ErrUnsupported
}

// Detach is a no-op outside Linux, where no Attachment can exist.
func (a *Attachment) Detach(ctx context.Context) error { return nil }

// RemoveBridge is only implemented on Linux; elsewhere it returns an error
// matching errors.ErrUnsupported.
func RemoveBridge(ctx context.Context, cfg Config) error {
	return errors.ErrUnsupported
}

// Collect has nothing to collect outside Linux.
func Collect(ctx context.Context, stateDir string) error { return nil }
