package sandbox

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// WithCgroupPath returns a copy of s whose cgroup is path below the root
// of each cgroup hierarchy (an OCI spec's linux.cgroupsPath, which
// FromSpec reads), instead of one named after the calling process. path
// must be absolute, not "/", and hold no "..". A sandbox started with it
// must be the only one in that cgroup at a time, which the caller
// ensures; Run and Close remove the cgroup as usual. The last call wins.
func (s *Sandbox) WithCgroupPath(path string) *Sandbox {
	c := s.clone()
	if reason := checkCgroupPath(path); reason != "" {
		c.invalid("cgroup path", path, reason)
		return c
	}
	c.cgroupPath = filepath.Clean(path)
	return c
}

// checkCgroupPath returns why p cannot name a cgroup, or "".
func checkCgroupPath(p string) string {
	switch {
	case strings.Count(p, ":") == 2 && !strings.HasPrefix(p, "/"):
		return "the systemd form slice:prefix:name needs systemd, which sandboxkit does not use: give a path"
	case !filepath.IsAbs(p) || filepath.Clean(p) == "/" || strings.Contains(p, ".."):
		return "must be an absolute path below the cgroup root, without .."
	case strings.IndexByte(p, 0) >= 0:
		return "must not contain a NUL byte"
	}
	return ""
}

// checkDetached returns the problems of a definition that StartDetached
// cannot start: it needs its own cgroup path, no network to tear down, and
// standard I/O it hands over as files.
func (s *Sandbox) checkDetached(gate string) []*FieldError {
	var problems []*FieldError
	if s.cgroupPath == "" {
		problems = append(problems, &FieldError{Field: "cgroup path", Value: "", Reason: "must be set (WithCgroupPath) for a sandbox that outlives its caller"})
	}
	if s.network.kind == networkBridge {
		problems = append(problems, &FieldError{Field: "network", Value: s.network, Reason: "a sandbox that outlives its caller has no network to tear down: use NoNetwork or HostNetwork"})
	}
	problems = append(problems, checkOutliving(s.timeout, s.stdin, s.stdout, s.stderr)...)
	if gate == "" || !filepath.IsAbs(gate) {
		problems = append(problems, &FieldError{Field: "gate", Value: gate, Reason: "must be the absolute path of a FIFO"})
	}
	return problems
}

// checkOutliving returns the problems of a timeout and standard streams
// for a process that outlives its caller (StartDetached of a sandbox or a
// command): nothing enforces the one or copies the others once the caller
// is gone.
func checkOutliving(timeout time.Duration, stdin io.Reader, stdout, stderr io.Writer) []*FieldError {
	var problems []*FieldError
	if timeout > 0 {
		problems = append(problems, &FieldError{Field: "timeout", Value: timeout, Reason: "nothing enforces it once the caller is gone"})
	}
	for i, f := range []any{stdin, stdout, stderr} {
		switch f.(type) {
		case nil, *os.File:
		default:
			problems = append(problems, &FieldError{Field: []string{"stdin", "stdout", "stderr"}[i], Value: f,
				Reason: "must be an *os.File (or nil for /dev/null): nothing copies a pipe once the caller is gone"})
		}
	}
	return problems
}
