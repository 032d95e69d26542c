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
	rootImage
)

// Root is the base file system of a sandbox: a [Dir], the [HostRoot] or an
// [*Image] of a [Store]. The base is never written: the sandbox sees it
// through an overlay whose writable upper layer lives in memory and is
// thrown away when the run ends. Only this package's types are roots.
type Root interface {
	// String names the root, for messages.
	String() string
	spec() rootSpec
}

// rootSpec is what a Root stands for, as the plan holds it.
type rootSpec struct {
	kind  rootKind
	path  string
	image *Image // for rootImage
}

func (r rootSpec) spec() rootSpec { return r }

// Dir returns a root that is the directory path on the host, which must be
// absolute and hold a usable root file system (at least the programs to
// run). Missing mount points (/proc, /dev, /sys, /tmp) are created in the
// overlay, not in the directory.
func Dir(path string) Root { return rootSpec{kind: rootDir, path: path} }

// HostRoot returns a root that is the host's own root file system, read
// only, so that the host's tools (sh, python3, ...) work in the sandbox. It
// is the file system mounted at /: file systems mounted below it on the host
// (other than those the sandbox mounts itself: /proc, /dev, /sys, /tmp) are
// not seen.
func HostRoot() Root { return rootSpec{kind: rootHost, path: "/"} }

// specOf returns what root stands for; a nil root is an unset one.
func specOf(root Root) rootSpec {
	if root == nil {
		return rootSpec{}
	}
	return root.spec()
}

// String returns the directory, "host root" or the image.
func (r rootSpec) String() string {
	switch r.kind {
	case rootHost:
		return "host root"
	case rootDir:
		return r.path
	case rootImage:
		return r.image.String()
	}
	return "unset root"
}

// check returns why r cannot be used, or "".
func (r rootSpec) check() string {
	switch {
	case r.kind == rootUnset:
		return "must be made by Dir, HostRoot or a Store's Load or Pull"
	case r.kind == rootHost:
		return ""
	case r.kind == rootImage && r.image == nil:
		return "must not be a nil *Image"
	case r.kind == rootImage:
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
