package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/state"
)

// Subdirectories of a store (see [Store]).
const (
	storeLayers = "layers"
	storeImages = "images"
	storeRefs   = "refs"
	storeLocks  = "locks"
	storeTmp    = "tmp"
)

// OpenStore opens the image store in dir, making it if needed (mode 0700);
// an empty dir means [DefaultStoreDir]. It removes what processes that
// died while unpacking left in the store's tmp directory.
func OpenStore(dir string) (*Store, error) {
	if dir == "" {
		dir = DefaultStoreDir
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("sandbox: open store: %w", err)
	}
	for _, sub := range []string{"", storeLayers, storeImages, storeRefs, storeLocks, storeTmp} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("sandbox: open store: %w", err)
		}
	}
	st := &Store{dir: dir}
	if err := st.cleanTmp(); err != nil {
		return nil, fmt.Errorf("sandbox: open store: %w", err)
	}
	return st, nil
}

func (st *Store) path(parts ...string) string {
	return filepath.Join(append([]string{st.dir}, parts...)...)
}

// tempName returns a new name in tmp that carries this process's identity,
// so that cleanTmp knows when its owner is gone.
func (st *Store) tempName(what string) (string, error) {
	self, err := state.Self()
	if err != nil {
		return "", err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return st.path(storeTmp, self.String()+"."+what+"."+hex.EncodeToString(b[:])), nil
}

// cleanTmp removes the temporaries of processes that are no longer alive.
func (st *Store) cleanTmp() error {
	entries, err := os.ReadDir(st.path(storeTmp))
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		owner, _, _ := strings.Cut(e.Name(), ".")
		if o, ok := state.ParseOwner(owner, '-'); ok && o.Alive() {
			continue
		}
		errs = append(errs, os.RemoveAll(st.path(storeTmp, e.Name())))
	}
	return errors.Join(errs...)
}

// lock takes the flock how (LOCK_SH or LOCK_EX) on the file path, made if
// missing, waiting until ctx ends. Closing the file releases it.
func lock(ctx context.Context, path string, how int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := flock(ctx, int(f.Fd()), how); err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "flock", Path: path, Err: err}
	}
	return f, nil
}

// flock takes the lock how on fd, polling while ctx lasts: a blocking
// flock could not be cancelled.
func flock(ctx context.Context, fd, how int) error {
	return backoff(ctx, time.Millisecond, 50*time.Millisecond, func() (bool, error) {
		err := unix.Flock(fd, how|unix.LOCK_NB)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return false, nil
		}
		return true, err
	})
}

// lockStore takes the store's own lock: shared while an image is added,
// exclusive to remove images and layers.
func (st *Store) lockStore(ctx context.Context, how int) (*os.File, error) {
	return lock(ctx, st.path(storeLocks, "store"), how)
}

// imageRecord is what images/<hex>.json holds.
type imageRecord struct {
	ID         string   `json:"id"`
	DiffIDs    []string `json:"diff_ids"`
	Env        []string `json:"env,omitempty"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	User       string   `json:"user,omitempty"`
	UID        int      `json:"uid"`
	GID        int      `json:"gid"`
	UserErr    string   `json:"user_error,omitempty"`
}

func (st *Store) imageOf(rec *imageRecord, ref string) *Image {
	return &Image{
		store: st, id: rec.ID, ref: ref, diffIDs: rec.DiffIDs, env: rec.Env,
		entrypoint: rec.Entrypoint, cmd: rec.Cmd, workdir: rec.WorkingDir,
		user: rec.User, uid: rec.UID, gid: rec.GID, userErr: rec.UserErr,
	}
}

// hexOf returns the hex of a "sha256:<hex>" digest, checked to be one
// (it names files in the store).
func hexOf(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if _, err := hex.DecodeString(h); !ok || len(h) != 64 || err != nil || strings.ToLower(h) != h {
		return "", fmt.Errorf("digest %q: must be sha256:<64 lower-case hex digits>", digest)
	}
	return h, nil
}

// refFile returns the file in refs that names ref.
func (st *Store) refFile(ref string) string {
	return st.path(storeRefs, "r-"+url.PathEscape(ref))
}

// writeAtomic writes data to path through a temporary and a rename, so
// that a reader sees the old file or the new one, whole.
func (st *Store) writeAtomic(path string, data []byte) error {
	tmp, err := st.tempName("file")
	if err != nil {
		return err
	}
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func (st *Store) readRecord(id string) (*imageRecord, error) {
	h, err := hexOf(id)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(st.path(storeImages, h+".json"))
	if err != nil {
		return nil, err
	}
	var rec imageRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("image record %s: %w", id, err)
	}
	return &rec, nil
}

// commit records the image and points ref at it.
func (st *Store) commit(rec *imageRecord, ref string) error {
	h, err := hexOf(rec.ID)
	if err != nil {
		return err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := st.writeAtomic(st.path(storeImages, h+".json"), b); err != nil {
		return err
	}
	return st.writeAtomic(st.refFile(ref), []byte(rec.ID))
}

// refs returns every reference in the store and the image ID it names.
func (st *Store) refs() (map[string]string, error) {
	entries, err := os.ReadDir(st.path(storeRefs))
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		ref, err := url.PathUnescape(strings.TrimPrefix(e.Name(), "r-"))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(st.path(storeRefs, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out[ref] = string(b)
	}
	return out, nil
}

// List returns the images in the store, one for each reference, sorted by
// reference.
func (st *Store) List() ([]*Image, error) {
	refs, err := st.refs()
	if err != nil {
		return nil, fmt.Errorf("sandbox: list images: %w", err)
	}
	var out []*Image
	for _, ref := range slices.Sorted(mapKeys(refs)) {
		rec, err := st.readRecord(refs[ref])
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sandbox: list images: %w", err)
		}
		out = append(out, st.imageOf(rec, ref))
	}
	return out, nil
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Image returns the image that ref names in the store (a reference given to
// Load or Pull, or an image ID). The error matches fs.ErrNotExist when there
// is none.
func (st *Store) Image(ref string) (*Image, error) {
	refs, err := st.refs()
	if err != nil {
		return nil, fmt.Errorf("sandbox: image %s: %w", ref, err)
	}
	id, ok := refs[ref]
	if !ok {
		for r, i := range refs {
			if i == ref {
				id, ok, ref = i, true, r
				break
			}
		}
	}
	if !ok {
		return nil, fmt.Errorf("sandbox: image %s: %w", ref, fs.ErrNotExist)
	}
	rec, err := st.readRecord(id)
	if err != nil {
		return nil, fmt.Errorf("sandbox: image %s: %w", ref, err)
	}
	return st.imageOf(rec, ref), nil
}

// Remove removes the reference ref (or every reference to the image ID
// ref) from the store, and the image once no reference names it. Its
// layers stay until [Store.Prune]. The error matches fs.ErrNotExist when
// ref names nothing.
func (st *Store) Remove(ctx context.Context, ref string) error {
	l, err := st.lockStore(ctx, unix.LOCK_EX)
	if err != nil {
		return fmt.Errorf("sandbox: remove %s: %w", ref, err)
	}
	defer l.Close()
	refs, err := st.refs()
	if err != nil {
		return fmt.Errorf("sandbox: remove %s: %w", ref, err)
	}
	var drop []string
	if _, ok := refs[ref]; ok {
		drop = []string{ref}
	} else {
		for r, id := range refs {
			if id == ref {
				drop = append(drop, r)
			}
		}
	}
	if len(drop) == 0 {
		return fmt.Errorf("sandbox: remove %s: %w", ref, fs.ErrNotExist)
	}
	for _, r := range drop {
		if err := os.Remove(st.refFile(r)); err != nil {
			return fmt.Errorf("sandbox: remove %s: %w", ref, err)
		}
	}
	return nil
}

// Prune removes from the store every image that no reference names, every
// layer that no image has, and what dead processes left in tmp. A layer
// that a running sandbox stacks is kept (its lock is held), even when no
// image has it any more; a later Prune removes it. When it removed a
// layer, Prune also releases what [Store.Close] does, which would pin the
// space of removed layers. Prune returns the DiffIDs of the layers it
// removed.
func (st *Store) Prune(ctx context.Context) ([]string, error) {
	l, err := st.lockStore(ctx, unix.LOCK_EX)
	if err != nil {
		return nil, fmt.Errorf("sandbox: prune: %w", err)
	}
	defer l.Close()
	removed, err := st.prune()
	if len(removed) > 0 {
		// The overlays kept for later runs would pin the removed layers'
		// space until Close: drop them (later runs mount again).
		st.Close()
	}
	if err != nil {
		return removed, fmt.Errorf("sandbox: prune: %w", err)
	}
	return removed, nil
}

// prune does Prune's work. Preconditions: the store lock is held
// exclusively, so that no image is being added.
func (st *Store) prune() ([]string, error) {
	refs, err := st.refs()
	if err != nil {
		return nil, err
	}
	named := make(map[string]bool, len(refs))
	for _, id := range refs {
		named[id] = true
	}
	used := map[string]bool{}
	images, err := os.ReadDir(st.path(storeImages))
	if err != nil {
		return nil, err
	}
	for _, e := range images {
		id := "sha256:" + strings.TrimSuffix(e.Name(), ".json")
		if !named[id] {
			if err := os.Remove(st.path(storeImages, e.Name())); err != nil {
				return nil, err
			}
			continue
		}
		rec, err := st.readRecord(id)
		if err != nil {
			return nil, err
		}
		for _, d := range rec.DiffIDs {
			used[d] = true
		}
	}
	layers, err := os.ReadDir(st.path(storeLayers))
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range layers {
		diffID := "sha256:" + e.Name()
		if used[diffID] {
			continue
		}
		gone, err := st.removeLayer(e.Name())
		if err != nil {
			errs = append(errs, err)
		}
		if gone {
			removed = append(removed, diffID)
		}
	}
	errs = append(errs, st.cleanTmp())
	return removed, errors.Join(errs...)
}

// removeLayer removes the layer h unless a sandbox holds it: under its
// exclusive lock it is renamed into tmp, then removed from there (a crash
// leaves a temporary, never a half-removed layer).
func (st *Store) removeLayer(h string) (bool, error) {
	dir := st.path(storeLayers, h)
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil // a running sandbox stacks it
	} else if err != nil {
		return false, &fs.PathError{Op: "flock", Path: dir, Err: err}
	}
	tmp, err := st.tempName("prune")
	if err != nil {
		return false, err
	}
	if err := os.Rename(dir, tmp); err != nil {
		return false, err
	}
	os.Remove(st.path(storeLocks, h))
	return true, os.RemoveAll(tmp)
}

// DiskUsage returns the bytes the store's files take on disk (blocks
// allocated; a file with several hard links counts once).
func (st *Store) DiskUsage(ctx context.Context) (int64, error) {
	seen := map[[2]uint64]bool{}
	var total int64
	err := filepath.WalkDir(st.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var s unix.Stat_t
		if err := unix.Lstat(p, &s); err != nil {
			return nil
		}
		k := [2]uint64{s.Dev, s.Ino}
		if !seen[k] {
			seen[k] = true
			total += s.Blocks * 512
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sandbox: disk usage of %s: %w", st.dir, err)
	}
	return total, nil
}
