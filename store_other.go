//go:build !linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"runtime"
)

func errStore(op string) error {
	return fmt.Errorf("sandbox: %s on %s: %w", op, runtime.GOOS, errors.ErrUnsupported)
}

// OpenStore opens the image store in dir; images need Linux.
func OpenStore(dir string) (*Store, error) { return nil, errStore("open store") }

// Load adds the image at path to the store; images need Linux.
func (st *Store) Load(ctx context.Context, path string, opts ...ImageOption) (*Image, error) {
	return nil, errStore("load")
}

// Pull adds the image ref to the store; images need Linux.
func (st *Store) Pull(ctx context.Context, ref string, opts ...ImageOption) (*Image, error) {
	return nil, errStore("pull")
}

// List returns the images in the store; images need Linux.
func (st *Store) List() ([]*Image, error) { return nil, errStore("list images") }

// Image returns the image ref names; images need Linux.
func (st *Store) Image(ref string) (*Image, error) { return nil, errStore("image") }

// Remove removes the reference ref; images need Linux.
func (st *Store) Remove(ctx context.Context, ref string) error { return errStore("remove") }

// Prune removes unused images and layers; images need Linux.
func (st *Store) Prune(ctx context.Context) ([]string, error) { return nil, errStore("prune") }

// DiskUsage returns the bytes the store takes; images need Linux.
func (st *Store) DiskUsage(ctx context.Context) (int64, error) { return 0, errStore("disk usage") }

// Close releases what the store keeps; images need Linux.
func (st *Store) Close() error { return nil }
