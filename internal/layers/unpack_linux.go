// Package layers unpacks the layers of OCI images into directories that
// overlayfs stacks: it decompresses a blob in-process (gzip, zstd or none),
// checks both its digest and its DiffID after the whole stream is read,
// and applies its tar entries inside the layer's directory only, with the
// whiteouts turned into what overlayfs reads.
package layers

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// DefaultMaxBytes is the most a layer may unpack to unless Options says
// otherwise: 16 GiB.
const DefaultMaxBytes = 16 << 30

// ErrTooLarge is returned for a layer that unpacks to more than its cap.
var ErrTooLarge = errors.New("layer unpacks to more than the size cap")

// ErrDigest is returned for a blob whose digest or DiffID is not the one
// the image names.
var ErrDigest = errors.New("digest mismatch")

// Options control an unpack.
type Options struct {
	// MaxBytes caps what the layer unpacks to: file contents plus 512
	// bytes an entry. 0 means DefaultMaxBytes.
	MaxBytes int64
	// AllowDevices lets the layer make character and block devices;
	// otherwise one is an error.
	AllowDevices bool
}

// Want is what a blob must hash to, each "sha256:<hex>". An empty Digest
// skips that check (a blob that is its own uncompressed tar, whose DiffID
// is its digest).
type Want struct {
	Digest string
	DiffID string
}

// Stats is what an unpack read and wrote.
type Stats struct {
	Compressed int64 // bytes of the blob
	Size       int64 // bytes of the uncompressed tar
}

// hashReader hashes and counts what is read through it.
type hashReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

func (h *hashReader) digest() string { return "sha256:" + hex.EncodeToString(h.h.Sum(nil)) }

// Unpack reads the blob from r, decompresses it, applies it in dir (an
// empty directory that nobody else writes) and checks the blob's digest
// and DiffID once the whole stream has been read. On error dir holds a
// partial layer that the caller removes.
func Unpack(ctx context.Context, r io.Reader, dir string, want Want, opts Options) (Stats, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	raw := &hashReader{r: r, h: sha256.New()}
	br := bufio.NewReaderSize(raw, 1<<20)
	tarStream, closeFn, err := decompress(br)
	if err != nil {
		return Stats{}, err
	}
	defer closeFn()
	// An uncompressed blob is its own tar: its digest is its DiffID, and
	// it is hashed once.
	plain := raw
	var stream io.Reader = br
	if tarStream != io.Reader(br) {
		pipe := newPipeline(tarStream)
		defer pipe.stop()
		plain = &hashReader{r: pipe, h: sha256.New()}
		stream = plain
	}
	// What the tar may hold beyond its cap fails apply; a stream that is
	// not a tar, say zeros, is capped here too.
	limited := &capReader{r: stream, left: opts.MaxBytes + 1<<20}
	if err := apply(ctx, limited, dir, opts); err != nil {
		return Stats{}, err
	}
	// The tar's end need not be the stream's: read both streams to their
	// end, so that every byte counts in the digests.
	if _, err := io.Copy(io.Discard, limited); err != nil {
		return Stats{}, err
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return Stats{}, err
	}
	st := Stats{Compressed: raw.n, Size: plain.n}
	if got := plain.digest(); got != want.DiffID {
		return st, fmt.Errorf("uncompressed content has DiffID %s, want %s: %w", got, want.DiffID, ErrDigest)
	}
	if want.Digest != "" {
		if got := raw.digest(); got != want.Digest {
			return st, fmt.Errorf("blob has digest %s, want %s: %w", got, want.Digest, ErrDigest)
		}
	}
	return st, nil
}

// capReader fails once more than left bytes were read.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// decompress returns the uncompressed stream of br, told apart by its
// first bytes: gzip, zstd or a plain tar.
func decompress(br *bufio.Reader) (io.Reader, func(), error) {
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}
