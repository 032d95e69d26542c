package sandbox

import (
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// MountOption changes how [Sandbox.WithBind] mounts a path.
type MountOption int

const (
	// ReadOnly makes a bind mount read only, with every mount below it.
	ReadOnly MountOption = iota + 1
)

type mountKind int

const (
	mountBind mountKind = iota + 1
	mountTmpfs
)

// mount is a bind mount or a tmpfs inside the sandbox.
type mount struct {
	kind     mountKind
	source   string // host path, for binds; for tmpfs, its source in mountinfo ("": "tmpfs")
	target   string // clean absolute path inside the sandbox
	readOnly bool
	size     int64 // bytes, for tmpfs

	// Set only through an OCI spec (FromSpec), and written back by Spec.
	mode        uint32 // permission bits of a tmpfs's root; 0 means 01777
	noexec      bool
	atime       string // "strictatime", "noatime" or "relatime"; "": the kernel's default, relatime
	nodiratime  bool
	propagation string // a key of mountPropagations; "": private
}

// mountPropagations are the propagation options of a spec's mount, by
// name: what each is after the mount is attached (see addMounts).
var mountPropagations = map[string]struct {
	// receives: the mount is a slave of its source's peer group, if the
	// source is shared, so that mounts the host makes below the source
	// appear below it too; nothing goes the other way.
	receives bool
	shared   bool // a peer group of its own in the sandbox
	// unbindable: it cannot be bound elsewhere.
	unbindable bool
	recursive  bool // to every mount of the tree, not only its top
}{
	"private": {}, "rprivate": {recursive: true},
	"slave": {receives: true}, "rslave": {receives: true, recursive: true},
	"shared": {receives: true, shared: true}, "rshared": {receives: true, shared: true, recursive: true},
	"unbindable": {unbindable: true}, "runbindable": {unbindable: true, recursive: true},
}

// tmpfsSource is the source of a tmpfs in mountinfo.
func (m mount) tmpfsSource() string {
	if m.source == "" {
		return "tmpfs"
	}
	return m.source
}

// tmpfsMode is the permission bits of a tmpfs's root.
func (m mount) tmpfsMode() uint32 {
	if m.mode == 0 {
		return 0o1777
	}
	return m.mode
}

// file is a file put into the sandbox before its program starts.
type file struct {
	path string
	data []byte
	mode uint32
}

// WithBind returns a copy of s in which the host's hostPath (a directory or
// a file, with everything mounted below it) appears at sandboxPath.
// Changes write through to the host unless [ReadOnly] is given, which makes
// the whole tree read only. The mount is nosuid and nodev. sandboxPath is
// created if missing; it is resolved inside the sandbox's root, so a
// symbolic link in the root can never make the mount land outside it.
// hostPath must be absolute and exist when Run is called; sandboxPath must
// be absolute, not "/", and not under /proc or /sys. Binds and tmpfs mounts
// append, and are mounted in the order given, except that a mount comes
// after every one its target lies in (parents first), which a later
// parent would otherwise hide; the sandbox's mountinfo lists them so.
func (s *Sandbox) WithBind(hostPath, sandboxPath string, opts ...MountOption) *Sandbox {
	c := s.clone()
	m := mount{kind: mountBind, source: hostPath, target: path.Clean(sandboxPath)}
	ok := true
	if !filepath.IsAbs(hostPath) || strings.IndexByte(hostPath, 0) >= 0 {
		c.invalid("bind", hostPath, "host path must be an absolute path")
		ok = false
	}
	if reason := checkMountTarget(sandboxPath); reason != "" {
		c.invalid("bind", sandboxPath, reason)
		ok = false
	}
	for _, o := range opts {
		switch o {
		case ReadOnly:
			m.readOnly = true
		default:
			c.invalid("bind", o, "unknown mount option")
			ok = false
		}
	}
	if ok {
		c.mounts = append(c.mounts, m)
	}
	return c
}

// WithTmpfs returns a copy of s with an empty, writable, in-memory file
// system of at most bytes at sandboxPath (writes past it fail with
// ENOSPC). Its pages count against the sandbox's memory limit. It is
// nosuid and nodev. The rules for sandboxPath are WithBind's; bytes must be
// positive. Mounts append.
func (s *Sandbox) WithTmpfs(sandboxPath string, bytes int64) *Sandbox {
	c := s.clone()
	ok := true
	if reason := checkMountTarget(sandboxPath); reason != "" {
		c.invalid("tmpfs", sandboxPath, reason)
		ok = false
	}
	if bytes <= 0 {
		c.invalid("tmpfs", bytes, "size must be positive")
		ok = false
	}
	if ok {
		c.mounts = append(c.mounts, mount{kind: mountTmpfs, target: path.Clean(sandboxPath), size: bytes})
	}
	return c
}

// WithFile returns a copy of s in which a file holding data, with the
// permission bits mode, exists at sandboxPath when the program starts,
// owned by the sandbox's user (see WithUser). Missing parent directories
// are created, owned by the user too. The file is written after the mounts,
// so it may go into a tmpfs or a writable bind. sandboxPath must be
// absolute and not "/"; mode may hold only permission bits. data is copied.
// Files append. In a user namespace (WithUserNamespace) the file's
// directory must be one the namespace's root may write: a new one, /tmp, a
// tmpfs or a bind, not a directory of the base that belongs to a host user
// outside the ID map (such as /etc on HostRoot), where Run fails with
// fs.ErrPermission naming the file.
func (s *Sandbox) WithFile(sandboxPath string, data []byte, mode fs.FileMode) *Sandbox {
	c := s.clone()
	ok := true
	if reason := checkMountTarget(sandboxPath); reason != "" {
		c.invalid("file", sandboxPath, reason)
		ok = false
	}
	if mode&^fs.ModePerm != 0 {
		c.invalid("file", sandboxPath, fmt.Sprintf("mode %#o may hold only permission bits (0o777): no setuid, setgid or sticky bit, no file type", uint32(mode)))
		ok = false
	}
	if ok {
		c.files = append(c.files, file{path: path.Clean(sandboxPath), data: slices.Clone(data), mode: uint32(mode)})
	}
	return c
}

// DefaultScratchSize is how many bytes the writable layer of the root, and
// separately /tmp, may hold when neither WithScratchSize nor WithMemory is
// given: 512 MiB each.
const DefaultScratchSize = 512 << 20

// WithScratchSize returns a copy of s whose writable layer of the root
// (what the program writes outside binds and tmpfs mounts) and whose /tmp
// may each hold at most bytes: a write past it fails with ENOSPC. Both are
// in memory and their pages count against the memory limit. bytes must be
// positive; the last call wins. By default each is [DefaultScratchSize],
// or, with a memory limit (WithMemory), a quarter of that limit, so that
// filling both leaves the processes half of it and a full disk is ENOSPC,
// not an OOM kill.
func (s *Sandbox) WithScratchSize(bytes int64) *Sandbox {
	c := s.clone()
	if bytes <= 0 {
		c.invalid("scratch size", bytes, "must be positive")
		return c
	}
	c.scratchSize = bytes
	return c
}

// scratchBytes returns the size of the writable layer and of /tmp.
func (s *Sandbox) scratchBytes() int64 {
	switch {
	case s.scratchSize > 0:
		return s.scratchSize
	case s.memory > 0:
		return s.memory / 4
	}
	return DefaultScratchSize
}

// WithReadOnlyRoot returns a copy of s whose root is read only for its
// program: writes anywhere but a tmpfs (including /tmp) or a writable bind
// fail with EROFS. Mount points, files given with WithFile and the working
// directory are created first, in the throw-away layer; the base is never
// written either way.
func (s *Sandbox) WithReadOnlyRoot() *Sandbox {
	c := s.clone()
	c.readOnly = true
	return c
}

// checkMountTarget returns why p cannot be a mount or file target, or "".
func checkMountTarget(p string) string {
	if reason := checkSandboxPath(p); reason != "" {
		return reason
	}
	clean := path.Clean(p)
	switch {
	case clean == "/":
		return "must not be the root"
	case underAny(clean, "/proc", "/sys"):
		return "must not be under /proc or /sys"
	}
	return ""
}

func underAny(p string, dirs ...string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// checkTargets reports mounts and files that share a target.
func (s *Sandbox) checkTargets() []*FieldError {
	var problems []*FieldError
	seen := map[string]bool{}
	for _, m := range s.mounts {
		if seen[m.target] {
			problems = append(problems, &FieldError{Field: "mount", Value: m.target, Reason: "duplicate target"})
		}
		seen[m.target] = true
	}
	files := map[string]bool{}
	for _, f := range s.files {
		if files[f.path] || seen[f.path] {
			problems = append(problems, &FieldError{Field: "file", Value: f.path, Reason: "duplicate target"})
		}
		files[f.path] = true
	}
	return problems
}

// WithWritableProc returns a copy of s whose /proc is writable, as in
// Docker: a program can then write its own /proc/self files (such as
// oom_score_adj). The kernel's tunables and triggers (/proc/sys,
// /proc/sysrq-trigger, /proc/irq, /proc/bus, /proc/fs) stay read only,
// each by a bind mount of its own. By default the whole /proc is read only,
// as nsjail has it, which protects the same files with no mount at all.
func (s *Sandbox) WithWritableProc() *Sandbox {
	c := s.clone()
	c.writableProc = true
	return c
}
