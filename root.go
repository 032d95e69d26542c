package sandbox

import (
	"path/filepath"
	"strings"
)

type rootKind int

const (
	rootUnset rootKind = iota
	rootDir
	rootHost
)

// Root is the base file system of a sandbox, made by [Dir] or [HostRoot].
// The base is never written: the sandbox sees it through an overlay whose
// writable upper layer lives in memory and is thrown away when the run ends.
type Root struct {
	kind rootKind
	path string
}

// Dir returns a root that is the directory path on the host, which must be
// absolute and hold a usable root file system (at least the programs to
// run). Missing mount points (/proc, /dev, /sys, /tmp) are created in the
// overlay, not in the directory.
func Dir(path string) Root { return Root{kind: rootDir, path: path} }

// HostRoot returns a root that is the host's own root file system, read
// only, so that the host's tools (sh, python3, ...) work in the sandbox. It
// is the file system mounted at /: file systems mounted below it on the host
// (other than those the sandbox mounts itself: /proc, /dev, /sys, /tmp) are
// not seen.
func HostRoot() Root { return Root{kind: rootHost, path: "/"} }

// String returns the directory, or "host root".
func (r Root) String() string {
	switch r.kind {
	case rootHost:
		return "host root"
	case rootDir:
		return r.path
	}
	return "unset root"
}

// check returns why r cannot be used, or "".
func (r Root) check() string {
	switch {
	case r.kind == rootUnset:
		return "must be made by Dir or HostRoot"
	case r.kind == rootHost:
		return ""
	case r.path == "":
		return "must not be empty: Dir needs the absolute path of a root directory"
	case !filepath.IsAbs(r.path):
		return "must be an absolute path"
	case strings.IndexByte(r.path, 0) >= 0:
		return "must not contain a NUL byte"
	}
	return ""
}
