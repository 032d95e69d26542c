package sandbox

import (
	"slices"
	"strings"
)

// Image is an OCI image in a [Store], made by [Store.Load] or [Store.Pull].
// It is a [Root]: sandbox.New(img) runs on the image's layers, stacked read
// only under the sandbox's throw-away overlay, with no copy and no unpack
// per run. The image's configuration gives the definition defaults that
// its own With methods override: the environment (WithEnv adds to and
// replaces the image's variables), the command (a Run with no argv runs
// the image's Entrypoint followed by its Cmd), the working directory
// (WithWorkdir) and the user (WithUser), resolved by name or number in the
// image's own /etc/passwd and /etc/group when it was loaded.
//
// An Image is immutable and safe to share between goroutines. The layers
// stay in the store until [Store.Remove] drops the image's last reference
// and [Store.Prune] runs; a sandbox that runs holds its layers so that
// Prune leaves them alone.
type Image struct {
	store      *Store
	id         string   // "sha256:<hex>" of the config
	ref        string   // the name it was loaded or pulled as
	diffIDs    []string // base layer first
	env        []string
	entrypoint []string
	cmd        []string
	workdir    string
	user       string
	uid, gid   int
	userErr    string // why user could not be resolved; "" when it was
}

func (img *Image) spec() rootSpec { return rootSpec{kind: rootImage, image: img} }

// String returns the image's reference, or its ID.
func (img *Image) String() string {
	switch {
	case img == nil:
		return "nil image"
	case img.ref != "":
		return img.ref
	}
	return img.id
}

// ID returns the image's ID: the digest of its configuration,
// "sha256:<hex>".
func (img *Image) ID() string { return img.id }

// Ref returns the reference the image was pulled or loaded as, such as
// "registry.example/app:1.2".
func (img *Image) Ref() string { return img.ref }

// Layers returns the DiffIDs of the image's layers, base first.
func (img *Image) Layers() []string { return slices.Clone(img.diffIDs) }

// Command returns the image's Entrypoint followed by its Cmd: what a Run
// with no argv runs.
func (img *Image) Command() []string {
	return append(slices.Clone(img.entrypoint), img.cmd...)
}

// Env returns the image's environment variables, each "KEY=value".
func (img *Image) Env() []string { return slices.Clone(img.env) }

// WorkingDir returns the image's working directory, or "" for none.
func (img *Image) WorkingDir() string { return img.workdir }

// User returns the image's user as its configuration names it ("" for
// root), and the UID and GID it was resolved to in the image's
// /etc/passwd and /etc/group.
func (img *Image) User() (user string, uid, gid int) { return img.user, img.uid, img.gid }

// image returns the root's image, or nil.
func (r rootSpec) imageOf() *Image {
	if r.kind == rootImage {
		return r.image
	}
	return nil
}

// imageProblems returns what makes the image's defaults unusable for s:
// a user the image names that could not be resolved, unless WithUser
// chooses one.
func (s *Sandbox) imageProblems() []*FieldError {
	img := s.root.imageOf()
	if img == nil || s.userSet || img.userErr == "" {
		return nil
	}
	return []*FieldError{{Field: "user", Value: img.user, Reason: img.userErr + " (the image's user; WithUser overrides it)"}}
}

// imageArgv returns argv, or the image's command when argv is empty.
func (s *Sandbox) imageArgv(argv []string) []string {
	if img := s.root.imageOf(); img != nil && len(argv) == 0 {
		return img.Command()
	}
	return argv
}

// baseEnv returns the environment the root brings: the image's.
func (s *Sandbox) baseEnv() []string {
	if img := s.root.imageOf(); img != nil {
		return img.env
	}
	return nil
}

// identity returns the working directory and user of a run: the
// definition's, or else the image's.
func (s *Sandbox) identity() (workdir string, uid, gid int) {
	workdir, uid, gid = s.workdir, s.uid, s.gid
	img := s.root.imageOf()
	if img == nil {
		return
	}
	if !s.workdirSet && strings.HasPrefix(img.workdir, "/") {
		workdir = img.workdir
	}
	if !s.userSet && img.userErr == "" {
		uid, gid = img.uid, img.gid
	}
	return
}
