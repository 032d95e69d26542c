package layers

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrUnsafeEntry is returned for a tar entry that would leave the layer or
// that the layer may not hold: a name with "..", a hard link out of the
// layer, or a device node that was not allowed.
var ErrUnsafeEntry = errors.New("unsafe layer entry")

// Whiteout names of the OCI image layer format.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// resolveFlags keep every lookup inside the layer: a symbolic link, from
// this layer's tar, resolves as if the layer were the root, and a /proc
// magic link or another mount is never crossed.
const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// applier writes one layer's entries under root, an open directory.
type applier struct {
	root  int
	opts  Options
	used  int64
	buf   []byte
	dirs  []dirTimes // set once the entries under them are written
	entry string     // name of the entry being applied, for errors
}

type dirTimes struct {
	name string
	ts   [2]unix.Timespec
}

// apply reads the tar stream r and writes its entries into dir. Each
// entry's parent is looked up again from the layer's root, never from a
// cache (CVE-2025-47290): an earlier entry may have replaced a directory
// by a symbolic link.
func apply(ctx context.Context, r io.Reader, dir string, opts Options) error {
	root, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(root)
	a := &applier{root: root, opts: opts, buf: make([]byte, 256<<10)}
	tr := tar.NewReader(r)
	for n := 0; ; n++ {
		if n%256 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		a.entry = hdr.Name
		if err := a.add(hdr, tr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	// Deepest first, though order does not matter: setting a
	// directory's times does not change its parent's.
	for _, d := range slices.Backward(a.dirs) {
		if err := a.setTimes(d.name, d.ts); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("entry %q: %w", d.name, err)
		}
	}
	return nil
}

// clean returns the entry's name relative to the layer's root ("" for the
// root itself), or an error for a name with a ".." component. A leading
// "/" is dropped: the name lands inside the layer.
func clean(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("NUL byte in name: %w", ErrUnsafeEntry)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("name has a \"..\" component: %w", ErrUnsafeEntry)
		}
	}
	p := strings.TrimPrefix(path.Clean("/"+name), "/")
	return p, nil
}

func (a *applier) charge(n int64) error {
	a.used += n
	if a.used > a.opts.MaxBytes {
		return fmt.Errorf("more than %d bytes: %w", a.opts.MaxBytes, ErrTooLarge)
	}
	return nil
}

func (a *applier) add(hdr *tar.Header, r io.Reader) error {
	if err := a.charge(512 + max(hdr.Size, 0)); err != nil {
		return err
	}
	name, err := clean(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		if hdr.Typeflag == tar.TypeDir {
			return a.meta(a.root, hdr)
		}
		return nil
	}
	dir, base := path.Split(name)
	parent, err := a.mkdirAll(dir)
	if err != nil {
		return err
	}
	defer unix.Close(parent)

	if base == opaqueMarker {
		return a.opaque(parent)
	}
	if victim, ok := strings.CutPrefix(base, whiteoutPrefix); ok {
		if victim == "" || victim == "." || victim == ".." {
			return fmt.Errorf("whiteout of nothing: %w", ErrUnsafeEntry)
		}
		return a.create(parent, victim, func() error {
			return unix.Mknodat(parent, victim, unix.S_IFCHR, 0)
		})
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		err := unix.Mkdirat(parent, base, 0o700)
		if errors.Is(err, unix.EEXIST) {
			var st unix.Stat_t
			if err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				if err := removeAt(parent, base); err != nil {
					return err
				}
				err = unix.Mkdirat(parent, base, 0o700)
			} else {
				err = nil
			}
		}
		if err != nil {
			return &fs.PathError{Op: "mkdir", Path: name, Err: err}
		}
		fd, err := unix.Openat(parent, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &fs.PathError{Op: "open", Path: name, Err: err}
		}
		defer unix.Close(fd)
		if err := a.meta(fd, hdr); err != nil {
			return err
		}
		a.dirs = append(a.dirs, dirTimes{name: name, ts: times(hdr)})
		return nil
	case tar.TypeReg, tar.TypeCont: // archive/tar reads the old TypeRegA as TypeReg
		var fd int
		err := a.create(parent, base, func() (err error) {
			fd, err = unix.Openat(parent, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
			return err
		})
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := a.copy(fd, r, hdr.Size); err != nil {
			return &fs.PathError{Op: "write", Path: name, Err: err}
		}
		if err := a.meta(fd, hdr); err != nil {
			return err
		}
		ts := times(hdr)
		return unix.UtimesNanoAt(fd, "", ts[:], unix.AT_EMPTY_PATH)
	case tar.TypeSymlink:
		if strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return fmt.Errorf("NUL byte in link target: %w", ErrUnsafeEntry)
		}
		if err := a.create(parent, base, func() error { return unix.Symlinkat(hdr.Linkname, parent, base) }); err != nil {
			return err
		}
		return a.metaAt(parent, base, hdr, false)
	case tar.TypeLink:
		return a.hardlink(parent, base, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode = unix.S_IFCHR
		case tar.TypeBlock:
			mode = unix.S_IFBLK
		}
		if mode != unix.S_IFIFO && !a.opts.AllowDevices {
			return fmt.Errorf("device node %d:%d: %w", hdr.Devmajor, hdr.Devminor, ErrUnsafeEntry)
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err := a.create(parent, base, func() error { return unix.Mknodat(parent, base, mode|0o600, dev) }); err != nil {
			return err
		}
		return a.metaAt(parent, base, hdr, true)
	}
	// Other types (GNU volume headers and the like) hold no file.
	return nil
}

// create runs mk, which makes base in parent; an entry of that name that
// exists already is removed first (a later entry replaces an earlier one),
// a directory with all it holds.
func (a *applier) create(parent int, base string, mk func() error) error {
	err := mk()
	if errors.Is(err, unix.EEXIST) {
		if err := removeAt(parent, base); err != nil {
			return err
		}
		err = mk()
	}
	if err != nil {
		return &fs.PathError{Op: "create", Path: base, Err: err}
	}
	return nil
}

// copy writes size bytes of r to fd.
func (a *applier) copy(fd int, r io.Reader, size int64) error {
	for size > 0 {
		n, err := io.ReadFull(r, a.buf[:min(int64(len(a.buf)), size)])
		if n > 0 {
			if werr := writeAll(fd, a.buf[:n]); werr != nil {
				return werr
			}
			size -= int64(n)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// hardlink links base in parent to the entry hdr.Linkname of this layer,
// looked up inside the layer. The link's own target is linked, never what
// a symbolic link there points to, so nothing outside the layer can be.
func (a *applier) hardlink(parent int, base string, hdr *tar.Header) error {
	target, err := clean(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("link target: %w", err)
	}
	if target == "" {
		return fmt.Errorf("hard link to the layer's root: %w", ErrUnsafeEntry)
	}
	tdir, tbase := path.Split(target)
	tparent, err := a.openDir(tdir)
	if err != nil {
		return fmt.Errorf("link target %q: %w", hdr.Linkname, err)
	}
	defer unix.Close(tparent)
	return a.create(parent, base, func() error { return unix.Linkat(tparent, tbase, parent, base, 0) })
}

// opaque marks the directory open at fd as hiding the lower layers'.
func (a *applier) opaque(fd int) error {
	// An O_PATH descriptor takes no xattrs: reopen it for reading.
	d, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: a.entry, Err: err}
	}
	defer unix.Close(d)
	if err := unix.Fsetxattr(d, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		return &fs.PathError{Op: "setxattr", Path: a.entry, Err: err}
	}
	return nil
}

// openDir opens the directory dir of the layer (O_PATH), resolved inside it.
func (a *applier) openDir(dir string) (int, error) {
	if dir == "" {
		dir = "."
	}
	fd, err := unix.Openat2(a.root, dir, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: resolveFlags,
	})
	if err != nil {
		return -1, &fs.PathError{Op: "openat2", Path: dir, Err: err}
	}
	return fd, nil
}

// mkdirAll opens the directory dir of the layer, making what is missing
// (mode 0755, owned by root, as tar does for entries a layer omits), each
// component looked up inside the layer.
func (a *applier) mkdirAll(dir string) (int, error) {
	fd, err := a.openDir(dir)
	if err == nil || !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	cur := ""
	for _, c := range strings.Split(strings.Trim(dir, "/"), "/") {
		parent, err := a.openDir(cur)
		if err != nil {
			return -1, err
		}
		err = unix.Mkdirat(parent, c, 0o755)
		unix.Close(parent)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, &fs.PathError{Op: "mkdir", Path: path.Join(cur, c), Err: err}
		}
		cur = path.Join(cur, c)
	}
	return a.openDir(cur)
}

// meta sets the owner, mode and extended attributes of the entry open at
// fd. The mode comes after the owner, which clears setuid and setgid.
func (a *applier) meta(fd int, hdr *tar.Header) error {
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return &fs.PathError{Op: "chown", Path: a.entry, Err: err}
	}
	if err := unix.Fchmod(fd, mode(hdr)); err != nil {
		return &fs.PathError{Op: "chmod", Path: a.entry, Err: err}
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || !allowedXattr(name) {
			continue
		}
		if err := unix.Fsetxattr(fd, name, []byte(v), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return &fs.PathError{Op: "setxattr " + name, Path: a.entry, Err: err}
		}
	}
	return nil
}

// metaAt sets the owner, mode (unless the entry is a symbolic link) and
// times of base in parent, which is not followed.
func (a *applier) metaAt(parent int, base string, hdr *tar.Header, chmod bool) error {
	if err := unix.Fchownat(parent, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "chown", Path: a.entry, Err: err}
	}
	if chmod {
		// A device or fifo just made: no link to follow.
		if err := unix.Fchmodat(parent, base, mode(hdr), 0); err != nil {
			return &fs.PathError{Op: "chmod", Path: a.entry, Err: err}
		}
	}
	ts := times(hdr)
	if err := unix.UtimesNanoAt(parent, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimes", Path: a.entry, Err: err}
	}
	return nil
}

// setTimes sets the times of the layer's entry name, not following it.
func (a *applier) setTimes(name string, ts [2]unix.Timespec) error {
	dir, base := path.Split(name)
	parent, err := a.openDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	return unix.UtimesNanoAt(parent, base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

// allowedXattr reports whether a layer may set the extended attribute
// name. overlayfs's own (trusted.overlay.*, user.overlay.*) would let a
// layer redirect lookups into other layers; other trusted.* and security.*
// attributes are the host's business. File capabilities and ACLs are kept.
func allowedXattr(name string) bool {
	switch {
	case strings.HasPrefix(name, "user.overlay."):
		return false
	case strings.HasPrefix(name, "user."), name == "security.capability",
		name == "system.posix_acl_access", name == "system.posix_acl_default":
		return true
	}
	return false
}

func mode(hdr *tar.Header) uint32 {
	m := uint32(hdr.Mode) & 0o777
	if hdr.Mode&0o4000 != 0 {
		m |= unix.S_ISUID
	}
	if hdr.Mode&0o2000 != 0 {
		m |= unix.S_ISGID
	}
	if hdr.Mode&0o1000 != 0 {
		m |= unix.S_ISVTX
	}
	return m
}

func times(hdr *tar.Header) [2]unix.Timespec {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	return [2]unix.Timespec{timespec(at), timespec(hdr.ModTime)}
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() || t.Unix() < 0 {
		return unix.Timespec{}
	}
	return unix.NsecToTimespec(t.UnixNano())
}

// removeAt removes base from the directory open at parent, with all it
// holds when it is a directory; nothing is followed.
func removeAt(parent int, base string) error {
	err := unix.Unlinkat(parent, base, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return &fs.PathError{Op: "unlink", Path: base, Err: err}
	}
	fd, err := unix.Openat(parent, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: base, Err: err}
	}
	names, err := readNames(fd)
	if err == nil {
		for _, n := range names {
			if err = removeAt(fd, n); err != nil {
				break
			}
		}
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(parent, base, unix.AT_REMOVEDIR); err != nil {
		return &fs.PathError{Op: "rmdir", Path: base, Err: err}
	}
	return nil
}

// readNames returns the names in the directory open at fd.
func readNames(fd int) ([]string, error) {
	var names []string
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, &fs.PathError{Op: "getdents", Path: ".", Err: err}
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}
