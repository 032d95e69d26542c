//go:build !linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"runtime"
	"syscall"
)

func (s *Sandbox) run(ctx context.Context, argv []string) (*Result, error) {
	return nil, fmt.Errorf("sandbox: run on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func removeBridge(context.Context, Network) error {
	return fmt.Errorf("sandbox: bridge on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// instanceSys is empty where there are no sandboxes: Start fails.
type instanceSys struct{}

func (s *Sandbox) start(ctx context.Context, argv []string) (instanceSys, error) {
	return instanceSys{}, fmt.Errorf("sandbox: start on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func (instanceSys) exited() <-chan struct{}                     { return nil }
func (instanceSys) result() *Result                             { return nil }
func (instanceSys) close() error                                { return nil }
func (instanceSys) network() *NetworkInfo                       { return nil }
func (instanceSys) kill()                                       {}
func (instanceSys) attached() bool                              { return false }
func (instanceSys) running() bool                               { return false }
func (instanceSys) signal(syscall.Signal) error                 { return errors.ErrUnsupported }
func (instanceSys) readFile(string) ([]byte, error)             { return nil, errors.ErrUnsupported }
func (instanceSys) writeFile(string, []byte, fs.FileMode) error { return errors.ErrUnsupported }
func (instanceSys) stats() (*Stats, error)                      { return nil, errors.ErrUnsupported }
func (instanceSys) waitPort(context.Context, int) error         { return errors.ErrUnsupported }
func (instanceSys) waitOutput(context.Context, string) error    { return errors.ErrUnsupported }
func (instanceSys) dial(context.Context, string, string) (net.Conn, error) {
	return nil, errors.ErrUnsupported
}
func (instanceSys) pause(context.Context) error  { return errors.ErrUnsupported }
func (instanceSys) resume(context.Context) error { return errors.ErrUnsupported }
func (instanceSys) copyTo(context.Context, string, io.Reader) error {
	return errors.ErrUnsupported
}
func (instanceSys) copyFrom(context.Context, string) (io.ReadCloser, error) {
	return nil, errors.ErrUnsupported
}
func (instanceSys) exec(context.Context, *Command, bool) (processSys, error) {
	return processSys{}, errors.ErrUnsupported
}

// processSys is empty where there are no sandboxes: Command.Start fails.
type processSys struct{}

func (processSys) wait(context.Context, bool) (*Result, error) { return nil, errors.ErrUnsupported }
func (processSys) signal(syscall.Signal) error                 { return errors.ErrUnsupported }
func (processSys) resize(WindowSize) error                     { return errors.ErrUnsupported }
func (processSys) pid() int                                    { return 0 }
func (processSys) console() *os.File                           { return nil }

// poolSys is empty where there are no sandboxes: NewPool fails.
type poolSys struct{}

func newPoolSys(*Pool) (*poolSys, error) {
	return nil, fmt.Errorf("sandbox: pool on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func (*poolSys) run(context.Context, *Job) (*Result, error) { return nil, errors.ErrUnsupported }
func (*poolSys) stats() PoolStats                           { return PoolStats{} }
func (*poolSys) close() error                               { return nil }

func (s *Sandbox) runJob(ctx context.Context, j *Job) (*Result, error) { return s.run(ctx, j.argv) }
