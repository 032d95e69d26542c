// Command codeexec is a code-execution service: POST a program's source
// and its language (python, c or sh) to /run, and it runs in a fresh
// sandbox with memory, pids, time and output limits, no network and an
// unprivileged user; the JSON reply says what it printed, how it ended,
// and what it used. C is compiled first by gcc, in a sandbox of its own
// with its own limits. The sandboxes come from warm pools (sandbox.Pool);
// -cold runs each in a sandbox made for it, for comparison.
//
// It needs root, and runs on the host's own root file system (read only to
// the programs), from which python3 and gcc come.
//
//	sudo go run ./examples/codeexec -addr 127.0.0.1:8080
//	curl -s 127.0.0.1:8080/run -d '{"language":"python","source":"print(6*7)"}'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	if stop(); err != nil {
		fmt.Fprintln(os.Stderr, "codeexec:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends.
func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("codeexec", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	size := fs.Int("pool", 8, "prepared sandboxes for programs (and half as many for compilers)")
	cold := fs.Bool("cold", false, "make a sandbox per run instead of taking one from a pool")
	if err := fs.Parse(args); err != nil {
		return err
	}
	svc, err := newService(*size, *cold)
	if err != nil {
		return err
	}
	defer svc.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: svc, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "codeexec: serving on http://%s (cold: %v)\n", ln.Addr(), *cold)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
