package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Ready is a condition that a running sandbox meets once it is ready for
// use, waited for by [Instance.WaitReady]: made by ForPort, ForOutput,
// ForHTTP or ForExec. None needs anything inside the sandbox's image: the
// host watches, or runs what the caller names.
type Ready struct {
	kind   readyKind
	port   int
	text   string   // ForOutput; ForHTTP's path
	argv   []string // ForExec
	within time.Duration
}

type readyKind int

const (
	readyPort readyKind = iota + 1
	readyOutput
	readyHTTP
	readyExec
)

// ForPort is met once a process of the sandbox listens on TCP port (the
// port inside the sandbox), as its network namespace reports it.
func ForPort(port int) Ready { return Ready{kind: readyPort, port: port} }

// ForOutput is met once text appears in the output (stdout or stderr) of
// the sandbox's program, from its start. The output must be captured or
// go to a writer that is not an *os.File (a file is handed to the program
// directly, and the host never sees what it writes).
func ForOutput(text string) Ready { return Ready{kind: readyOutput, text: text} }

// ForHTTP is met once an HTTP GET of path on the sandbox's TCP port
// answers with a status below 400. The request is made from inside the
// sandbox's network namespace (to its loopback), so it works on every
// network, NoNetwork too.
func ForHTTP(port int, path string) Ready { return Ready{kind: readyHTTP, port: port, text: path} }

// ForExec is met once argv, run in the sandbox with [Instance.Exec],
// exits with status 0 (a client of the server, say). It is run again
// every 100 ms until then.
func ForExec(argv ...string) Ready { return Ready{kind: readyExec, argv: slices.Clone(argv)} }

// Within returns r with a deadline of its own: WaitReady fails once d has
// passed since it began and r is still unmet. d must be positive.
func (r Ready) Within(d time.Duration) Ready {
	r.within = d
	return r
}

// String describes the condition, as errors name it.
func (r Ready) String() string {
	switch r.kind {
	case readyPort:
		return fmt.Sprintf("port %d", r.port)
	case readyOutput:
		return fmt.Sprintf("output %q", r.text)
	case readyHTTP:
		return fmt.Sprintf("http port %d %s", r.port, r.text)
	case readyExec:
		return fmt.Sprintf("exec %q", r.argv)
	}
	return "unset condition"
}

// check returns the problems of r.
func (r Ready) check() []*FieldError {
	var problems []*FieldError
	bad := func(reason string) {
		problems = append(problems, &FieldError{Field: "ready", Value: r.String(), Reason: reason})
	}
	switch r.kind {
	case readyPort, readyHTTP:
		if r.port <= 0 || r.port > 65535 {
			bad("port must be 1 to 65535")
		}
		if r.kind == readyHTTP && !strings.HasPrefix(r.text, "/") {
			bad("path must begin with /")
		}
	case readyOutput:
		if r.text == "" {
			bad("text must not be empty")
		}
	case readyExec:
		if len(r.argv) == 0 || r.argv[0] == "" {
			bad("must name a command")
		}
	default:
		bad("must be made by ForPort, ForOutput, ForHTTP or ForExec")
	}
	if r.within < 0 {
		bad("Within must be positive")
	}
	return problems
}

// WaitReady returns once every condition is met, waiting for them
// together. ctx bounds the wait, and each condition's Within its own. It
// returns ErrClosed if the sandbox ends first, and otherwise an error
// naming the first condition that failed.
func (in *Instance) WaitReady(ctx context.Context, conds ...Ready) error {
	var problems []*FieldError
	if ctx == nil {
		problems = append(problems, &FieldError{Field: "ctx", Value: nil, Reason: "must not be nil"})
	}
	for _, c := range conds {
		problems = append(problems, c.check()...)
	}
	if problems != nil {
		return &ConfigError{Problems: problems}
	}
	if err := in.usable(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(conds))
	for _, c := range conds {
		go func() {
			cctx := ctx
			if c.within > 0 {
				var cancel context.CancelFunc
				cctx, cancel = context.WithTimeout(ctx, c.within)
				defer cancel()
			}
			err := in.waitFor(cctx, c)
			if err != nil && !errors.Is(err, ErrClosed) {
				err = fmt.Errorf("sandbox: wait until ready: %s: %w", c, err)
			}
			errs <- err
		}()
	}
	var first error
	for range conds {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel() // the others are moot
		}
	}
	return first
}

// waitFor returns once c is met.
func (in *Instance) waitFor(ctx context.Context, c Ready) error {
	switch c.kind {
	case readyPort:
		return in.sys.waitPort(ctx, c.port)
	case readyOutput:
		return in.sys.waitOutput(ctx, c.text)
	case readyHTTP:
		return in.poll(ctx, func() error { return in.httpGet(ctx, c.port, c.text) })
	case readyExec:
		return in.poll(ctx, func() error {
			res, err := in.Exec(ctx, c.argv...)
			if err != nil {
				return err
			}
			if res.ExitCode != 0 {
				return fmt.Errorf("exited with %v", res)
			}
			return nil
		})
	}
	return nil
}

// poll calls try every 100 ms until it succeeds, ctx ends (the error is
// then ctx's, with the last answer try had) or the sandbox ends.
func (in *Instance) poll(ctx context.Context, try func() error) error {
	var last error
	for {
		err := try()
		if err == nil || errors.Is(err, ErrClosed) {
			return err
		}
		// A try that ctx's end cut short had no answer: the one before
		// says more.
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), last)
		case <-in.sys.exited():
			return ErrClosed
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// httpGet makes one GET of path on port through a connection from the
// sandbox's network namespace.
func (in *Instance) httpGet(ctx context.Context, port int, path string) error {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return in.Dial(ctx, network, fmt.Sprintf("127.0.0.1:%d", port))
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

// Dial connects to address on network ("tcp", "tcp4", "tcp6", "udp",
// ...) from inside the sandbox's network namespace: "127.0.0.1:5432" is
// the sandbox's own loopback, so a server in a sandbox with NoNetwork is
// reachable too. It fits http.Transport's DialContext. ctx bounds the
// connect. It returns ErrClosed once the sandbox has ended.
func (in *Instance) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	if err := in.usable(); err != nil {
		return nil, err
	}
	c, err := in.sys.dial(ctx, network, address)
	if err != nil && !errors.Is(err, ErrClosed) {
		return nil, fmt.Errorf("sandbox: dial %s %s: %w", network, address, err)
	}
	return c, err
}
