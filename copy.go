package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// CopyTo unpacks the tar stream r into the directory dir (absolute, as the
// sandbox sees it; it must exist) of the running sandbox, as the
// sandbox's user: what it makes belongs to that user, and it writes only
// where that user may. Directories, regular files, symbolic links, hard
// links (to entries inside dir) and FIFOs are made; device nodes are
// refused. Modes keep their permission and sticky bits (not setuid or
// setgid), and modification times are kept. Every name is kept inside dir,
// and every path is resolved inside the sandbox's root: no symbolic link
// in the sandbox, nor one the stream makes, and no race while it unpacks,
// makes the host write outside the sandbox (the class of CVE-2018-15664
// and CVE-2019-14271). Nothing runs in the sandbox to do it. ctx is
// checked between entries. It returns ErrClosed once the sandbox has
// ended; on an error, what was unpacked before stays.
func (in *Instance) CopyTo(ctx context.Context, dir string, r io.Reader) error {
	if reason := checkSandboxPath(dir); reason != "" {
		return &ConfigError{Problems: []*FieldError{{Field: "dir", Value: dir, Reason: reason}}}
	}
	if ctx == nil {
		return &ConfigError{Problems: []*FieldError{{Field: "ctx", Value: nil, Reason: "must not be nil"}}}
	}
	if err := in.usable(); err != nil {
		return err
	}
	err := in.sys.copyTo(ctx, dir, r)
	if err != nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("sandbox: copy to %s: %w", dir, err)
	}
	return err
}

// CopyFrom returns a tar stream of path (absolute, as the sandbox sees
// it) in the running sandbox: the file, or the directory and everything
// below it, named from path's last element ("etc/passwd" for /etc). It is
// read as the host reads it, resolved inside the sandbox's root as CopyTo
// resolves it: the stream has symbolic links as links, never what they
// point to, and never a file of the host. Directories on /proc or /sys
// are left out. The stream is made as it is read; ctx bounds it. The
// caller must Close it. A file that changes size while it is read ends the
// stream with an error.
func (in *Instance) CopyFrom(ctx context.Context, path string) (io.ReadCloser, error) {
	if reason := checkSandboxPath(path); reason != "" {
		return nil, &ConfigError{Problems: []*FieldError{{Field: "path", Value: path, Reason: reason}}}
	}
	if ctx == nil {
		return nil, &ConfigError{Problems: []*FieldError{{Field: "ctx", Value: nil, Reason: "must not be nil"}}}
	}
	if err := in.usable(); err != nil {
		return nil, err
	}
	rc, err := in.sys.copyFrom(ctx, path)
	if err != nil && !errors.Is(err, ErrClosed) {
		return nil, fmt.Errorf("sandbox: copy from %s: %w", path, err)
	}
	return rc, err
}
