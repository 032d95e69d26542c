package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

// open opens the root's directory (O_PATH, close-on-exec) to check it and
// to reserve a descriptor number: the child opens the root again, in its
// own mount namespace, at that number, and names it to overlayfs as
// /proc/self/fd/N. The path's characters then never clash with the mount
// options.
//
// detached, for a user namespace, opens instead a detached copy of the
// mount the root is on, without the mounts under it, which addRoot mounts
// in the child's namespace. overlayfs refuses a lower layer with mounts
// under it that a user namespace may not uncover (the host's / has
// /proc, /sys and more), and it never showed those mounts anyway. The
// copy is reached without any path lookup, even below directories the
// namespace's root could not search.
//
// An image's root is always detached: a read-only overlay of its layers
// (see Image.mount). release lets go of what the root holds while the
// sandbox lives (an image's layer locks); it is never nil.
func (r rootSpec) open(ctx context.Context, detached bool) (fd int, release func() error, err error) {
	release = func() error { return nil }
	if r.kind == rootImage {
		fd, hold, err := r.image.mount(ctx)
		if err != nil {
			return -1, release, err
		}
		return fd, hold, nil
	}
	if detached {
		fd, err := unix.OpenTree(unix.AT_FDCWD, r.path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return -1, release, &fs.PathError{Op: "open_tree", Path: r.path, Err: err}
		}
		return fd, release, nil
	}
	fd, err = unix.Open(r.path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, release, &fs.PathError{Op: "open", Path: r.path, Err: err}
	}
	return fd, release, nil
}

// detached reports whether the base open returns is a detached mount,
// which the child moves into its mount namespace, rather than a directory
// it opens again by path: in a user namespace, and for an image.
func (r rootSpec) detached(userns bool) bool { return userns || r.kind == rootImage }

// checkRoot returns an error unless the base open at base can take the
// sandbox's own file systems (see checkMountPoints) and, when the plan
// writes the network's /etc files into the overlay, has a usable /etc.
func checkRoot(pl *plan, base int) error {
	if err := checkMountPoints(base); err != nil {
		return err
	}
	if pl.net.etcInUpper {
		return checkEtcDir(base)
	}
	return nil
}

// checkMountPoints returns an error unless each of the base's /proc,
// /dev, /sys and /tmp, where the sandbox mounts its own file systems, is a
// directory or absent (then made in the overlay). A symbolic link there
// would carry procfs, and the masks and read-only paths set on it, to
// wherever it points (the class of CVE-2019-16884 and CVE-2019-19921).
// The base is never written, so what is checked here is what the child
// mounts on.
func checkMountPoints(baseFD int) error {
	for _, name := range []string{"proc", "dev", "sys", "tmp"} {
		var st unix.Stat_t
		err := unix.Fstatat(baseFD, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		switch {
		case errors.Is(err, unix.ENOENT):
		case err != nil:
			return &fs.PathError{Op: "stat", Path: "/" + name, Err: err}
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			return &fs.PathError{Op: "check mount point", Path: "/" + name, Err: fmt.Errorf("must be a directory or absent: %w", ErrUnsafePath)}
		}
	}
	return nil
}

// checkEtcDir returns an error unless the base open at baseFD has no /etc
// or a directory there, which a user namespace's network files merge with
// (see addRoot).
func checkEtcDir(baseFD int) error {
	var st unix.Stat_t
	err := unix.Fstatat(baseFD, "etc", &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) || err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil
	}
	if err != nil {
		return &fs.PathError{Op: "stat", Path: "/etc", Err: err}
	}
	return &fs.PathError{Op: "stat", Path: "/etc", Err: errors.New("not a directory: a user namespace's /etc/hosts and /etc/resolv.conf need one")}
}
