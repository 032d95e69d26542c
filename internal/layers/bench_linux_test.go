package layers

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/testutil"
)

// benchBytes is how much of /usr the benchmark layer holds.
const benchBytes = 200 << 20

var benchLayer = sync.OnceValues(func() ([]byte, []byte) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	total := 0
	filepath.WalkDir("/usr", func(p string, d fs.DirEntry, err error) error {
		if err != nil || total > benchBytes {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		} else if !fi.IsDir() && !fi.Mode().IsRegular() {
			return nil
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return nil
		}
		hdr.Name = p[1:]
		if fi.IsDir() {
			hdr.Name += "/"
		}
		var data []byte
		if fi.Mode().IsRegular() {
			if data, err = os.ReadFile(p); err != nil || int64(len(data)) != fi.Size() {
				return nil
			}
		}
		tw.WriteHeader(hdr)
		tw.Write(data)
		total += len(data)
		return nil
	})
	tw.Close()
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(b.Bytes())
	zw.Close()
	return b.Bytes(), z.Bytes()
})

// tmpfs mounts a tmpfs on a new directory for the benchmark.
func tmpfs(b *testing.B) string {
	dir := b.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=2g"); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

func digestOf(data []byte) string {
	h := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(h[:])
}

// BenchmarkUnpack unpacks a layer of about 200 MB of /usr, plain and
// gzip, onto tmpfs: with Unpack (which also checks both digests), and
// with GNU tar (-xf, -xzf) for comparison. Each iteration unpacks into a
// fresh directory; removing it is not timed.
func BenchmarkUnpack(b *testing.B) {
	testutil.RequireRoot(b)
	plain, gz := benchLayer()
	b.Logf("layer: %d MB uncompressed, %d MB gzip", len(plain)>>20, len(gz)>>20)
	fsdir := tmpfs(b)
	for _, c := range []struct {
		name string
		data []byte
		want Want
		tar  string
	}{
		{"plain", plain, Want{DiffID: digestOf(plain)}, "-xf"},
		{"gzip", gz, Want{Digest: digestOf(gz), DiffID: digestOf(plain)}, "-xzf"},
	} {
		src := filepath.Join(fsdir, c.name+".tar")
		if err := os.WriteFile(src, c.data, 0o600); err != nil {
			b.Fatal(err)
		}
		run := func(b *testing.B, unpack func(dir string) error) {
			b.SetBytes(int64(len(plain)))
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				dir := filepath.Join(fsdir, "out")
				os.RemoveAll(dir)
				os.Mkdir(dir, 0o755)
				b.StartTimer()
				if err := unpack(dir); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			os.RemoveAll(filepath.Join(fsdir, "out"))
		}
		b.Run(c.name+"/ours", func(b *testing.B) {
			run(b, func(dir string) error {
				f, err := os.Open(src)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = Unpack(b.Context(), f, dir, c.want, Options{})
				return err
			})
		})
		b.Run(c.name+"/gnu-tar", func(b *testing.B) {
			run(b, func(dir string) error {
				out, err := exec.Command("tar", c.tar, src, "-C", dir).CombinedOutput()
				if err != nil {
					b.Fatalf("tar: %v: %s", err, out)
				}
				return nil
			})
		})
	}
}
