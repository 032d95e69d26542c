package sandbox

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// copyTo unpacks r into dir as the sandbox's user (see asUser).
func (x instanceSys) copyTo(ctx context.Context, dir string, r io.Reader) error {
	uid, gid := x.r.pl.hostIDs()
	return asUser(uid, gid, func() error { return x.unpack(ctx, dir, r) })
}

// unpack is copyTo on asUser's thread. Each entry's directory is opened
// anew from the sandbox's root, inside it (inRoot): a link made by an
// earlier entry, or by the sandbox meanwhile, leads nowhere outside. The
// entry itself is made by a call on that directory that does not follow a
// link at its name.
func (x instanceSys) unpack(ctx context.Context, dir string, r io.Reader) error {
	root, err := x.openRoot()
	if err != nil {
		return err
	}
	defer unix.Close(root)
	top, err := inRoot(root, dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	err = refuseKernelFS(top, dir)
	unix.Close(top)
	if err != nil {
		return err
	}
	type dirTime struct {
		name  string
		mtime time.Time
	}
	var dirs []dirTime // set last: entries made in a directory change its time
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar stream: %w", err)
		}
		rel := path.Clean("/" + h.Name) // kept inside dir, whatever its ".."s
		if rel == "/" {
			continue
		}
		name := path.Join(dir, rel)
		if err := placeEntry(root, dir, name, h, tr); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirTime{name, h.ModTime})
		}
	}
	for _, d := range slices.Backward(dirs) {
		if err := atEntry(root, d.name, func(parent int, base string) error { return setMtime(parent, base, d.name, d.mtime) }); err != nil {
			return err
		}
	}
	return nil
}

// atEntry calls fn with the directory of name, opened inside the root and
// not on /proc or /sys, and name's last element.
func atEntry(root int, name string, fn func(parent int, base string) error) error {
	parent, err := inRoot(root, path.Dir(name), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	if err := refuseKernelFS(parent, name); err != nil {
		return err
	}
	return fn(parent, path.Base(name))
}

// placeEntry makes the tar entry h at name (inside dir), its body read
// from body.
func placeEntry(root int, dir, name string, h *tar.Header, body io.Reader) error {
	mode := uint32(h.Mode) & 0o1777 // no setuid or setgid
	return atEntry(root, name, func(parent int, base string) error {
		var err error
		switch h.Typeflag {
		case tar.TypeDir:
			err = unix.Mkdirat(parent, base, mode)
			if errors.Is(err, unix.EEXIST) {
				var st unix.Stat_t
				if unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
					return nil // merged with what is there
				}
			}
		case tar.TypeReg, 0: // the old format marks a regular file with a NUL
			err = writeEntry(parent, base, name, mode, body)
		case tar.TypeSymlink:
			if err = replaceable(parent, base, name); err == nil {
				err = unix.Symlinkat(h.Linkname, parent, base)
			}
		case tar.TypeLink:
			target := path.Join(dir, path.Clean("/"+h.Linkname))
			err = atEntry(root, target, func(tparent int, tbase string) error {
				if err := replaceable(parent, base, name); err != nil {
					return err
				}
				// No AT_SYMLINK_FOLLOW: a link to a symbolic link is
				// one to the link itself, never to where it points.
				return unix.Linkat(tparent, tbase, parent, base, 0)
			})
		case tar.TypeFifo:
			if err = replaceable(parent, base, name); err == nil {
				err = unix.Mknodat(parent, base, unix.S_IFIFO|mode, 0)
			}
		case tar.TypeChar, tar.TypeBlock:
			return &fs.PathError{Op: "copy", Path: name, Err: fmt.Errorf("a device node: %w", errors.ErrUnsupported)}
		default:
			return &fs.PathError{Op: "copy", Path: name, Err: fmt.Errorf("tar entry type %q: %w", h.Typeflag, errors.ErrUnsupported)}
		}
		if err != nil {
			return &fs.PathError{Op: "copy", Path: name, Err: err}
		}
		if h.Typeflag == tar.TypeLink {
			return nil // it shares the target's time
		}
		return setMtime(parent, base, name, h.ModTime)
	})
}

// writeEntry creates or replaces the regular file base in parent with
// body. A link or FIFO at base is replaced, never followed or opened.
func writeEntry(parent int, base, name string, mode uint32, body io.Reader) error {
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	fd, err := unix.Openat(parent, base, flags, mode)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENXIO) || errors.Is(err, unix.EISDIR) {
		if err = replaceable(parent, base, name); err == nil {
			fd, err = unix.Openat(parent, base, flags|unix.O_EXCL, mode)
		}
	}
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if err := requireRegular(f, name); err != nil {
		return err
	}
	if err := f.Chmod(fs.FileMode(mode & 0o777)); err != nil { // not masked by a umask
		return err
	}
	if mode&0o1000 != 0 {
		if err := unix.Fchmod(fd, mode); err != nil {
			return err
		}
	}
	if _, err := io.Copy(f, body); err != nil {
		return err
	}
	return f.Close()
}

// replaceable removes what is at base in parent, unless it is a
// directory (which an entry of another type does not replace).
func replaceable(parent int, base, name string) error {
	err := unix.Unlinkat(parent, base, 0)
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EISDIR):
		return fmt.Errorf("a directory is in the way: %w", fs.ErrExist)
	}
	return err
}

// setMtime sets the modification time of base in parent, not following a
// link.
func setMtime(parent int, base, name string, mtime time.Time) error {
	if mtime.IsZero() {
		return nil
	}
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(parent, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "set time", Path: name, Err: err}
	}
	return nil
}

// copyFrom returns a tar stream of name, made as it is read.
func (x instanceSys) copyFrom(ctx context.Context, name string) (io.ReadCloser, error) {
	root, err := x.openRoot()
	if err != nil {
		return nil, err
	}
	defer unix.Close(root)
	parent, err := inRoot(root, path.Dir(name), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	base := path.Base(name)
	if name == "/" {
		base = "."
	}
	var st unix.Stat_t
	if err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		unix.Close(parent)
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	pr, pw := io.Pipe()
	go func() {
		defer unix.Close(parent)
		p := &packer{ctx: ctx, tw: tar.NewWriter(pw), links: map[[2]uint64]string{}}
		tarName := base
		if name == "/" {
			tarName = ""
		}
		err := p.add(parent, base, tarName, name)
		pw.CloseWithError(errors.Join(err, p.tw.Close()))
	}()
	return pr, nil
}

// packer writes a tree of the sandbox to a tar stream, one entry at a
// time, through descriptors: every entry is reached from its directory's
// descriptor, without following a link.
type packer struct {
	ctx   context.Context
	tw    *tar.Writer
	links map[[2]uint64]string // device and inode of files with many links: the first name
}

// add writes the entry base of the directory dirFD, as tarName ("" for
// the root itself, which has no entry of its own); name is the path in the
// sandbox, for errors.
func (p *packer) add(dirFD int, base, tarName, name string) error {
	if err := p.ctx.Err(); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirFD, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	h := &tar.Header{
		Name:    tarName,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()),
		Format:  tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return p.addDir(dirFD, base, h, name)
	case unix.S_IFREG:
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := p.links[key]; ok && st.Nlink > 1 {
			h.Typeflag, h.Linkname = tar.TypeLink, first
			return p.tw.WriteHeader(h)
		}
		if st.Nlink > 1 {
			p.links[key] = tarName
		}
		return p.addFile(dirFD, base, h, name)
	case unix.S_IFLNK:
		target, err := readlinkat(dirFD, base)
		if err != nil {
			return &fs.PathError{Op: "readlink", Path: name, Err: err}
		}
		h.Typeflag, h.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		h.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor, h.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		h.Typeflag = tar.TypeFifo
	default:
		return nil // a socket: nothing a tar stream can hold
	}
	return p.tw.WriteHeader(h)
}

// addFile writes the regular file base of dirFD. It is opened without
// following a link and without blocking on a FIFO, then checked to be the
// file that was looked at.
func (p *packer) addFile(dirFD int, base string, h *tar.Header, name string) error {
	fd, err := unix.Openat(dirFD, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return &fs.PathError{Op: "open", Path: name, Err: errors.New("changed while copied")}
	}
	h.Typeflag, h.Size = tar.TypeReg, st.Size
	if err := p.tw.WriteHeader(h); err != nil {
		return err
	}
	n, err := io.Copy(p.tw, io.LimitReader(f, st.Size))
	if err == nil && n < st.Size {
		err = &fs.PathError{Op: "read", Path: name, Err: errors.New("changed size while copied")}
	}
	return err
}

// addDir writes the directory base of dirFD and what it holds, unless it
// is on /proc or /sys, whose files are the kernel's (only the entry is
// written then).
func (p *packer) addDir(dirFD int, base string, h *tar.Header, name string) error {
	fd, err := unix.Openat(dirFD, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: name, Err: err}
	}
	d := os.NewFile(uintptr(fd), name)
	defer d.Close()
	if h.Name != "" {
		h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		if err := p.tw.WriteHeader(h); err != nil {
			return err
		}
	}
	if refuseKernelFS(fd, name) != nil {
		return nil
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return &fs.PathError{Op: "read directory", Path: name, Err: err}
	}
	slices.Sort(names)
	for _, n := range names {
		if err := p.add(fd, n, path.Join(h.Name, n), path.Join(name, n)); err != nil {
			return err
		}
	}
	return nil
}

// readlinkat returns the target of the link base in dirFD.
func readlinkat(dirFD int, base string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirFD, base, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
