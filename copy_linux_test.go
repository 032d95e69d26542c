package sandbox_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
)

// tarOf returns a tar stream of the entries.
func tarOf(t *testing.T, entries ...*tar.Header) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		body := ""
		if h.Typeflag == tar.TypeReg {
			body = "data of " + h.Name
			h.Size = int64(len(body))
		}
		require.NoError(t, tw.WriteHeader(h))
		_, err := io.WriteString(tw, body)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return &buf
}

// untar returns the headers of a tar stream, and each regular file's data.
func untar(t *testing.T, r io.Reader) (map[string]*tar.Header, map[string]string) {
	t.Helper()
	heads, data := map[string]*tar.Header{}, map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return heads, data
		}
		require.NoError(t, err)
		heads[h.Name] = h
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		data[h.Name] = string(b)
	}
}

func TestCopyToAndFromRoundTrip(t *testing.T) {
	sb, _ := busybox(t)
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for name, sb := range variants(sb.WithUser(1000, 1000).WithWorkdir("/work")) {
		in := start(t, sb)
		stream := tarOf(t,
			&tar.Header{Name: "app/", Typeflag: tar.TypeDir, Mode: 0o750, ModTime: mtime},
			&tar.Header{Name: "app/main.py", Typeflag: tar.TypeReg, Mode: 0o4640, ModTime: mtime},
			&tar.Header{Name: "app/link", Typeflag: tar.TypeSymlink, Linkname: "main.py", ModTime: mtime},
			&tar.Header{Name: "app/hard", Typeflag: tar.TypeLink, Linkname: "app/main.py"},
			&tar.Header{Name: "app/fifo", Typeflag: tar.TypeFifo, Mode: 0o600, ModTime: mtime},
		)
		require.NoError(t, in.CopyTo(testCtx(t), "/work", stream), name)
		res, err := in.Exec(testCtx(t), "/bin/sh", "-c", `cd /work/app && stat -c '%n %a %u %g %h %Y' . main.py fifo && readlink link && cat hard`)
		require.NoError(t, err, name)
		assert.Equal(t, strings.Join([]string{
			". 750 1000 1000 2 1577934245",
			"main.py 640 1000 1000 2 1577934245", // setuid dropped; two links
			"fifo 600 1000 1000 1 1577934245",
			"main.py",
			"data of app/main.py",
		}, "\n"), string(res.Stdout), "%s: %s", name, res.Stderr)

		rc, err := in.CopyFrom(testCtx(t), "/work/app")
		require.NoError(t, err, name)
		heads, data := untar(t, rc)
		require.NoError(t, rc.Close())
		require.Contains(t, heads, "app/")
		assert.Equal(t, "data of app/main.py", data["app/main.py"]+data["app/hard"], "%s: one copy of the data, one link", name)
		assert.Equal(t, byte(tar.TypeSymlink), heads["app/link"].Typeflag)
		assert.Equal(t, "main.py", heads["app/link"].Linkname)
		assert.Equal(t, byte(tar.TypeFifo), heads["app/fifo"].Typeflag)
		assert.Equal(t, int64(0o640), heads["app/main.py"].Mode)
		assert.True(t, mtime.Equal(heads["app/main.py"].ModTime), name)

		// The sandbox's user may not write where it may not.
		err = in.CopyTo(testCtx(t), "/", tarOf(t, &tar.Header{Name: "rootfile", Typeflag: tar.TypeReg, Mode: 0o644}))
		assert.ErrorIs(t, err, fs.ErrPermission, name)
		err = in.CopyTo(testCtx(t), "/work", tarOf(t, &tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}))
		assert.ErrorIs(t, err, errors.ErrUnsupported, "%s: no device nodes", name)
		rc, err = in.CopyFrom(testCtx(t), "/proc")
		require.NoError(t, err)
		heads, _ = untar(t, rc)
		assert.Len(t, heads, 1, "%s: only /proc's own entry, none of the kernel's files", name)
		_, err = in.CopyFrom(testCtx(t), "/no/such")
		assert.ErrorIs(t, err, fs.ErrNotExist)
		require.NoError(t, in.Close())
		_, err = in.CopyFrom(testCtx(t), "/")
		assert.ErrorIs(t, err, sandbox.ErrClosed)
	}
}

// Links the sandbox plants, or a stream makes, and names with "..", all
// lead to the sandbox's files, never the host's; nor does a sandbox that
// swaps a directory for a link to the host's while copies run (the docker
// cp races).
func TestCopyStaysInsideTheRoot(t *testing.T) {
	sb, _ := busybox(t)
	host := t.TempDir() // a directory of the host's, to stay empty
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("host secret"), 0o600))
	for name, sb := range variants(sb) {
		in := start(t, sb, "/bin/sh", "-c", `ln -s `+host+` /tmp/evil; ln -s `+secret+` /tmp/secret; ln -s / /tmp/root;
			while :; do mkdir /tmp/race; rmdir /tmp/race; ln -s `+host+` /tmp/race; rm /tmp/race; done`)
		// The links are there before any copy tries them.
		require.NoError(t, in.WaitReady(testCtx(t), sandbox.ForExec("test", "-L", "/tmp/root")))
		file := func(n string) *tar.Header { return &tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644} }
		attempts := []struct {
			dir    string
			stream *bytes.Buffer
		}{
			{"/tmp", tarOf(t, file("evil/pwned"))},
			{"/tmp/evil", tarOf(t, file("pwned"))},
			{"/tmp", tarOf(t, file("../../../../../../"+host+"/pwned"))},
			{"/tmp", tarOf(t, &tar.Header{Name: "out", Typeflag: tar.TypeSymlink, Linkname: host}, file("out/pwned"))},
			{"/tmp", tarOf(t, &tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755},
				&tar.Header{Name: "d", Typeflag: tar.TypeSymlink, Linkname: host}, file("d/pwned"))},
			{"/tmp", tarOf(t, &tar.Header{Name: "hard", Typeflag: tar.TypeLink, Linkname: "../../../../" + secret})},
			{"/tmp/root" + host, tarOf(t, file("pwned"))},
		}
		for i, a := range attempts {
			in.CopyTo(testCtx(t), a.dir, a.stream) // an error or a file inside: either is safe
			entries, err := os.ReadDir(host)
			require.NoError(t, err)
			require.Empty(t, entries, "%s: attempt %d wrote to the host", name, i)
		}
		for range 300 {
			in.CopyTo(testCtx(t), "/tmp/race", tarOf(t, file("pwned")))
		}
		for _, p := range []string{"/tmp/secret", "/tmp/evil", "/tmp/root" + secret, "/tmp/hard", "/tmp"} {
			rc, err := in.CopyFrom(testCtx(t), p)
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			assert.NotContains(t, string(b), "host secret", "%s: CopyFrom(%s) read the host's file", name, p)
		}
		entries, err := os.ReadDir(host)
		require.NoError(t, err)
		assert.Empty(t, entries, "%s: the races wrote to the host", name)
		got, err := os.ReadFile(secret)
		require.NoError(t, err)
		assert.Equal(t, "host secret", string(got))
		require.NoError(t, in.Close())
	}
}
