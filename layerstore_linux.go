package sandbox

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/sandboxkit/sandbox/internal/layers"
	"golang.org/x/sys/unix"
)

// unpackAll unpacks the layers the store lacks, up to three at a time;
// the first error cancels the others.
func (st *Store) unpackAll(ctx context.Context, want []layerSource, o *imageOptions) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, 3)
	var wg sync.WaitGroup
	for _, l := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if err := st.ensureLayer(ctx, l, o); err != nil {
				name := l.digest
				if name == "" {
					name = l.diffID
				}
				cancel(fmt.Errorf("layer %s: %w", name, err))
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
		return err
	}
	return nil
}

// ensureLayer unpacks l into the store unless it is there: into a
// temporary, renamed into place once its digests are checked. A lock per
// layer makes others that want it wait for this unpack rather than repeat
// it.
func (st *Store) ensureLayer(ctx context.Context, l layerSource, o *imageOptions) error {
	h, _ := hexOf(l.diffID)
	final := st.path(storeLayers, h)
	report := func(p Progress) {
		if o.progress != nil {
			p.Layer = l.digest
			if p.Layer == "" {
				p.Layer = l.diffID
			}
			o.progress(p)
		}
	}
	if _, err := os.Lstat(final); err == nil {
		report(Progress{Cached: true, Done: l.size, Total: l.size})
		return nil
	}
	lk, err := lock(ctx, st.path(storeLocks, h), unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer lk.Close()
	if _, err := os.Lstat(final); err == nil {
		report(Progress{Cached: true, Done: l.size, Total: l.size})
		return nil
	}
	tmp, err := st.tempName("layer")
	if err != nil {
		return err
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(tmp)
		}
	}()
	rc, err := l.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	r := &progressReader{r: rc, total: l.size, report: report}
	if _, err := layers.Unpack(ctx, r, tmp, layers.Want{Digest: l.digest, DiffID: l.diffID},
		layers.Options{MaxBytes: o.maxLayer, AllowDevices: o.devices}); err != nil {
		return err
	}
	r.report(Progress{Done: r.done, Total: max(l.size, r.done)})
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	keep = true
	return nil
}

// progressReader reports every MiB read through it.
type progressReader struct {
	r           io.Reader
	done, total int64
	last        int64
	report      func(Progress)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	// The end is reported once, by ensureLayer, after the checks.
	if p.done-p.last >= 1<<20 && (p.total == 0 || p.done < p.total) {
		p.last = p.done
		p.report(Progress{Done: p.done, Total: p.total})
	}
	return n, err
}
