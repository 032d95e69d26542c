package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mount returns a detached, read-only overlay of the image's layers (a
// bind of the layer, for an image of one), and a release that lets go of
// the layers. Until release, each layer's directory is open and holds a
// shared lock, so that Prune, which needs it exclusively, leaves it
// alone. Each layer is named to overlayfs as /proc/self/fd/N with
// "lowerdir+", one by one: no mount option string, however many layers,
// reaches the page-size limit.
//
// The overlay is made once per image and Store (see Store.Close): later
// runs get a clone of it, whose dentries are warm, as long as each layer
// is still the directory it was made of.
func (img *Image) mount(ctx context.Context) (mnt int, release func() error, err error) {
	var fds []int
	hold := func() error {
		for _, fd := range fds {
			unix.Close(fd)
		}
		fds = nil
		return nil
	}
	defer func() {
		if err != nil {
			hold()
		}
	}()
	// Topmost first; a layer that comes again lower down is shadowed by
	// its upper copy whole and is stacked once.
	var order []string
	for _, d := range slices.Backward(img.diffIDs) {
		if !slices.Contains(order, d) {
			order = append(order, d)
		}
	}
	ids := make([][2]uint64, 0, len(order))
	for _, d := range order {
		fd, err := img.store.holdLayer(ctx, d)
		if err != nil {
			return -1, nil, err
		}
		fds = append(fds, fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return -1, nil, &fs.PathError{Op: "stat layer", Path: d, Err: err}
		}
		ids = append(ids, [2]uint64{st.Dev, st.Ino})
	}
	if len(fds) == 1 {
		fd, err := unix.OpenTree(fds[0], "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
		if err != nil {
			return -1, nil, &fs.PathError{Op: "open_tree", Path: img.store.path(storeLayers), Err: err}
		}
		return fd, hold, nil
	}
	if fd, ok, err := img.store.cachedStack(img.id, ids); ok || err != nil {
		return fd, hold, err
	}
	names := make([]string, len(fds))
	for i, fd := range fds {
		names[i] = "/proc/self/fd/" + strconv.Itoa(fd)
	}
	stack, err := overlayOf(names, true)
	if err != nil {
		// Before Linux 6.8 there is no lowerdir+ (before 6.5 overlayfs
		// takes it as an unknown option, at create): one string, whose
		// short names fit about 200 layers in the page it may fill.
		var legacyErr error
		if stack, legacyErr = overlayOf(names, false); legacyErr != nil {
			return -1, nil, errors.Join(err, legacyErr)
		}
	}
	mnt, err = cloneMount(stack)
	if errors.Is(err, unix.EINVAL) {
		// Older kernels (the VM lane's 6.1) cannot clone a detached
		// mount: each run then has an overlay of its own, none is kept.
		return stack, hold, nil
	}
	if err != nil {
		unix.Close(stack)
		return -1, nil, err
	}
	img.store.keepStack(img.id, ids, stack)
	return mnt, hold, nil
}

// cloneMount returns a new detached copy of the detached mount mnt.
func cloneMount(mnt int) (int, error) {
	fd, err := unix.OpenTree(mnt, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return -1, os.NewSyscallError("open_tree clone of the image's layers", err)
	}
	return fd, nil
}

// cachedStack returns a clone of the overlay kept for the image id, if
// there is one made of exactly the layer directories ids.
func (st *Store) cachedStack(id string, ids [][2]uint64) (int, bool, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.stacks[id]
	if !ok || !slices.Equal(s.layers, ids) {
		return -1, false, nil
	}
	fd, err := cloneMount(s.mnt)
	return fd, err == nil, err
}

// keepStack keeps mnt as the overlay of the image id for later runs,
// closing one it replaces.
func (st *Store) keepStack(id string, ids [][2]uint64, mnt int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if old, ok := st.stacks[id]; ok {
		unix.Close(old.mnt)
	}
	if st.stacks == nil {
		st.stacks = map[string]stack{}
	}
	st.stacks[id] = stack{mnt: mnt, layers: ids}
}

// Close releases the read-only overlays the store keeps of the images it
// ran (one mount, and its descriptor, for each image of several layers),
// which later runs would reuse. Sandboxes that run keep theirs. The Store
// stays usable: a later run mounts again. Close is safe to call more than
// once and from several goroutines.
func (st *Store) Close() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	for id, s := range st.stacks {
		unix.Close(s.mnt)
		delete(st.stacks, id)
	}
	return nil
}

// overlayOf mounts a detached, read-only overlay of the lower layers
// names, topmost first: each given with lowerdir+ when plus, else all in
// one lowerdir.
func overlayOf(names []string, plus bool) (int, error) {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, os.NewSyscallError("fsopen overlay", err)
	}
	defer unix.Close(fsfd)
	if plus {
		for _, n := range names {
			if err := unix.FsconfigSetString(fsfd, "lowerdir+", n); err != nil {
				return -1, &fs.PathError{Op: "fsconfig lowerdir+", Path: n, Err: err}
			}
		}
	} else if lower := strings.Join(names, ":"); len(lower) > maxFsconfigString {
		return overlayOfShortNames(names)
	} else if err := unix.FsconfigSetString(fsfd, "lowerdir", lower); err != nil {
		return -1, &fs.PathError{Op: "fsconfig lowerdir", Path: strconv.Itoa(len(names)) + " layers", Err: err}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, os.NewSyscallError("fsconfig create overlay of "+strconv.Itoa(len(names))+" layers", err)
	}
	mnt, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return -1, os.NewSyscallError("fsmount overlay", err)
	}
	return mnt, nil
}

// maxFsconfigString is the longest string fsconfig takes before Linux 6.5
// (a page after): the one lowerdir of kernels without lowerdir+.
const maxFsconfigString = 255

// overlayOfShortNames is overlayOf with one lowerdir string too long for
// an older fsconfig: the layers are named by links of one or two
// characters in a directory of their own, which a thread with a working
// directory of its own (unshare CLONE_FS) names them from. About 85
// layers fit.
func overlayOfShortNames(names []string) (int, error) {
	dir, err := os.MkdirTemp("", "sandboxkit-layers-")
	if err != nil {
		return -1, err
	}
	defer os.RemoveAll(dir)
	short := make([]string, len(names))
	for i, n := range names {
		short[i] = strconv.FormatInt(int64(i), 36)
		if err := os.Symlink(n, dir+"/"+short[i]); err != nil {
			return -1, err
		}
	}
	if len(strings.Join(short, ":")) > maxFsconfigString {
		return -1, fmt.Errorf("%d layers: more than this kernel's overlayfs takes without lowerdir+ (Linux 6.8): %w", len(names), errors.ErrUnsupported)
	}
	type mounted struct {
		fd  int
		err error
	}
	done := make(chan mounted, 1)
	go func() {
		// The thread's working directory is its own after the unshare,
		// and it is never given back to the runtime (it exits locked).
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			done <- mounted{-1, os.NewSyscallError("unshare CLONE_FS", err)}
			return
		}
		if err := unix.Chdir(dir); err != nil {
			done <- mounted{-1, &fs.PathError{Op: "chdir", Path: dir, Err: err}}
			return
		}
		fd, err := overlayOf(short, false)
		done <- mounted{fd, err}
	}()
	m := <-done
	return m.fd, m.err
}

// holdLayer opens the layer diffID's directory and takes its shared lock,
// and checks that it is still the store's layer (Prune may have renamed it
// away before the lock was had).
func (st *Store) holdLayer(ctx context.Context, diffID string) (int, error) {
	h, err := hexOf(diffID)
	if err != nil {
		return -1, err
	}
	dir := st.path(storeLayers, h)
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open layer", Path: dir, Err: err}
	}
	if err := flock(ctx, fd, unix.LOCK_SH); err != nil {
		unix.Close(fd)
		return -1, &fs.PathError{Op: "flock", Path: dir, Err: err}
	}
	var held, now unix.Stat_t
	if err := unix.Fstat(fd, &held); err != nil {
		unix.Close(fd)
		return -1, &fs.PathError{Op: "stat", Path: dir, Err: err}
	}
	if err := unix.Lstat(dir, &now); err != nil || now.Ino != held.Ino || now.Dev != held.Dev {
		unix.Close(fd)
		return -1, &fs.PathError{Op: "open layer", Path: dir, Err: fmt.Errorf("pruned from the store: %w", fs.ErrNotExist)}
	}
	return fd, nil
}

// maxIDFile caps what is read of the image's /etc/passwd and /etc/group.
const maxIDFile = 4 << 20

// resolveUser returns the UID and GID of the image's user, looked up in
// the image's own /etc/passwd and /etc/group through the stacked layers,
// every path resolved inside them. A user that cannot be resolved is
// returned as a reason, not an error: WithUser may override it. err is
// for a store that cannot be read.
func (img *Image) resolveUser(ctx context.Context) (uid, gid int, reason string, err error) {
	if img.user == "" {
		return 0, 0, "", nil
	}
	mnt, release, err := img.mount(ctx)
	if err != nil {
		return 0, 0, "", err
	}
	defer release()
	defer unix.Close(mnt)
	passwd, err := readInRoot(mnt, "etc/passwd")
	if err != nil {
		return 0, 0, "", err
	}
	group, err := readInRoot(mnt, "etc/group")
	if err != nil {
		return 0, 0, "", err
	}
	uid, gid, reason = lookupUser(img.user, passwd, group)
	return uid, gid, reason, nil
}

// readInRoot returns the regular file name under the directory root
// (resolved inside it), nil if it is missing.
func readInRoot(root int, name string) ([]byte, error) {
	fd, err := unix.Openat2(root, name, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open image file", Path: "/" + name, Err: err}
	}
	f := os.NewFile(uintptr(fd), "/"+name)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read image file", Path: "/" + name, Err: errors.New("not a regular file")}
	}
	b := make([]byte, maxIDFile+1)
	n, _ := f.Read(b)
	for n < len(b) {
		m, err := f.Read(b[n:])
		n += m
		if err != nil || m == 0 {
			break
		}
	}
	if n > maxIDFile {
		return nil, &fs.PathError{Op: "read image file", Path: "/" + name, Err: fmt.Errorf("more than %d bytes", maxIDFile)}
	}
	return b[:n], nil
}

// lookupUser resolves an image's User ("user", "uid", "user:group",
// "uid:gid" and mixes) in the passwd and group files' contents. A user
// named by number that passwd lacks gets the GID of the same number,
// never root's. The reason says what could not be resolved.
func lookupUser(user string, passwd, group []byte) (uid, gid int, reason string) {
	u, g, hasGroup := strings.Cut(user, ":")
	entry, found := findEntry(passwd, u, 2)
	switch n, isNum := parseID(u); {
	case isNum && n < 0:
		return 0, 0, "UID does not fit in 0 to 4294967294"
	case isNum:
		uid, gid = n, n
		if found {
			if gid, reason = entryID(entry, 3); reason != "" {
				return 0, 0, reason
			}
		}
	case !found:
		return 0, 0, fmt.Sprintf("no user %q in the image's /etc/passwd", u)
	default:
		if uid, reason = entryID(entry, 2); reason != "" {
			return 0, 0, reason
		}
		if gid, reason = entryID(entry, 3); reason != "" {
			return 0, 0, reason
		}
	}
	if !hasGroup {
		return uid, gid, ""
	}
	if n, isNum := parseID(g); isNum {
		if n < 0 {
			return 0, 0, "GID does not fit in 0 to 4294967294"
		}
		return uid, n, ""
	}
	gentry, ok := findEntry(group, g, 2)
	if !ok {
		return 0, 0, fmt.Sprintf("no group %q in the image's /etc/group", g)
	}
	if gid, reason = entryID(gentry, 2); reason != "" {
		return 0, 0, reason
	}
	return uid, gid, ""
}

// parseID reads a UID or GID: isNum for a decimal number, n -1 when it does
// not fit.
func parseID(s string) (n int, isNum bool) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v >= 1<<32-1 {
		return -1, true
	}
	return int(v), true
}

// findEntry returns the fields of the line of a passwd or group file whose
// name (field 0), or whose number (field idField) when key is numeric, is
// key.
func findEntry(data []byte, key string, idField int) ([]string, bool) {
	_, isNum := parseID(key)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxIDFile)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) <= idField {
			continue
		}
		if (!isNum && f[0] == key) || (isNum && f[idField] == key) {
			return f, true
		}
	}
	return nil, false
}

// entryID returns the number in field i of a passwd or group entry.
func entryID(f []string, i int) (int, string) {
	if i >= len(f) {
		return 0, "short entry " + strings.Join(f, ":")
	}
	n, isNum := parseID(f[i])
	switch {
	case !isNum:
		return 0, fmt.Sprintf("entry %q has no number", f[0])
	case n < 0:
		return 0, fmt.Sprintf("entry %q: ID %s does not fit in 0 to 4294967294", f[0], f[i])
	}
	return n, ""
}
