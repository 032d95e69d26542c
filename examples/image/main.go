// Command image runs an OCI image in a sandbox: it loads the image from a
// path (an OCI layout directory, an OCI archive or a docker save tarball)
// or pulls it from a registry, showing a progress bar while the layers
// arrive, then runs the image's default command, or the command given
// after the image. It needs root (namespaces, cgroups, mounts) and keeps
// the layers in the store directory (-store, by default
// /var/lib/sandboxkit/images), so a second run starts at once.
//
//	sudo go run ./examples/image alpine:3.20
//	sudo go run ./examples/image ./busybox-layout echo hello
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/sandboxkit/sandbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if stop(); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	storeDir := fs.String("store", sandbox.DefaultStoreDir, "the image store's directory")
	platform := fs.String("platform", "", `the platform to pull, "os/arch[/variant]" (default: the host's)`)
	memory := fs.Int64("memory", 512<<20, "the sandbox's memory limit in bytes")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	if fs.NArg() < 1 {
		return 2, errors.New("usage: image [-store dir] [-platform os/arch] IMAGE [COMMAND [ARG...]]")
	}
	st, err := sandbox.OpenStore(*storeDir)
	if err != nil {
		return 1, err
	}
	defer st.Close()
	bar := newBar(stderr)
	opts := []sandbox.ImageOption{sandbox.WithProgress(bar.update)}
	if *platform != "" {
		opts = append(opts, sandbox.WithPlatform(*platform))
	}
	name := fs.Arg(0)
	var img *sandbox.Image
	if _, statErr := os.Stat(name); statErr == nil {
		img, err = st.Load(ctx, name, opts...)
	} else {
		img, err = st.Pull(ctx, name, opts...)
	}
	bar.finish()
	if err != nil {
		return 1, err
	}
	fmt.Fprintf(stderr, "%s (%s, %d layers)\n", img.Ref(), img.ID()[:19], len(img.Layers()))

	res, err := sandbox.New(img).
		WithMemory(*memory).
		WithStdout(stdout).
		WithStderr(stderr).
		WithStdin(os.Stdin).
		Run(ctx, fs.Args()[1:]...)
	if err != nil {
		return 1, err
	}
	fmt.Fprintf(stderr, "-> %s in %v\n", res, res.Wall.Round(time.Millisecond))
	return res.ExitCode, nil
}

// bar is one progress bar for all of a pull's layers: the bytes read of
// every layer so far against the sum of their sizes.
type bar struct {
	mu     sync.Mutex
	bar    *progressbar.ProgressBar
	layers map[string]sandbox.Progress
}

func newBar(w io.Writer) *bar {
	return &bar{
		layers: map[string]sandbox.Progress{},
		bar: progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("layers"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish()),
	}
}

func (b *bar) update(p sandbox.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.layers[p.Layer] = p
	var done, total int64
	cached := 0
	for _, l := range b.layers {
		done, total = done+l.Done, total+l.Total
		if l.Cached {
			cached++
		}
	}
	b.bar.Describe(fmt.Sprintf("%d layers (%d cached)", len(b.layers), cached))
	if total > 0 {
		b.bar.ChangeMax64(total)
	}
	b.bar.Set64(done)
}

func (b *bar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bar.Finish()
}
