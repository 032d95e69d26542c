package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/cleanup"
	"github.com/sandboxkit/sandbox/internal/execstub"
	"github.com/sandboxkit/sandbox/internal/spawn"
)

// maxRefillers bounds the sandboxes a pool prepares at once.
const maxRefillers = 8

// errHeldGone is runIn's error for a prepared sandbox whose init ended
// before the run released it.
var errHeldGone = errors.New("the prepared sandbox's init is gone")

// maxTeardownErrs bounds the background teardown errors a pool keeps for
// Close to return; Stats counts them all.
const maxTeardownErrs = 16

// poolSys is a Pool's sandboxes: those prepared, held before their exec
// (ready), the tokens that let the refill prepare more, and what the runs
// in flight and the teardowns after them are doing.
type poolSys struct {
	base       *plan         // the definition's plan, with no argv
	defTimeout time.Duration // the definition's timeout
	ready      chan *held
	// slots holds a token per sandbox the refill may prepare: ready,
	// being prepared and tokens make the pool's size.
	slots  chan struct{}
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	refill sync.WaitGroup // the refill goroutines
	work   sync.WaitGroup // runs in flight and background teardowns

	mu           sync.Mutex
	closed       bool          // guarded by mu
	inUse        int           // guarded by mu
	runs         uint64        // guarded by mu
	cold         uint64        // guarded by mu
	prepared     uint64        // guarded by mu
	refills      []time.Time   // guarded by mu; the last refills, oldest first
	preparing    int           // guarded by mu; refills under way
	prepTime     time.Duration // guarded by mu; how long a refill takes, averaged
	teardownN    uint64        // guarded by mu
	teardownErrs []error       // guarded by mu
}

// held is a prepared sandbox: everything made, and its PID 1, the init
// (all hardening done), waiting for its request (spawn.ExecOnRequest).
type held struct {
	r        *running
	h        *spawn.Held
	release  int // the release pipe's write end
	request  int // the request file (a memfd)
	input    *jobInput
	released bool
	cold     bool // prepared by the run itself: not one of the pool's size
}

// jobInput is a held sandbox's stdin: the run's reader, set before the
// copy to the program's pipe starts.
type jobInput struct {
	src  io.Reader
	used atomic.Bool // src was read from: a run cannot start again
}

func (in *jobInput) Read(b []byte) (int, error) {
	if in.src == nil {
		return 0, io.EOF
	}
	in.used.Store(true)
	return in.src.Read(b)
}

func newPoolSys(p *Pool) (*poolSys, error) {
	if err := checkHost(); err != nil {
		return nil, fmt.Errorf("sandbox: pool: %w", err)
	}
	if _, err := execstub.InitELF(runtime.GOARCH); err != nil {
		// The init is what waits for a pool's runs.
		return nil, fmt.Errorf("sandbox: pool: %w", errors.Join(errors.ErrUnsupported, err))
	}
	base := p.def.plan(nil)
	base.timeout = 0 // each run's own, timed from its release (see runIn)
	ctx, cancel := context.WithCancel(context.Background())
	ps := &poolSys{base: base, defTimeout: p.def.timeout, ready: make(chan *held, p.size), slots: make(chan struct{}, p.size), ctx: ctx, cancel: cancel}
	first, err := ps.prepare(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	ps.ready <- first
	ps.prepared++
	for range p.size - 1 {
		ps.slots <- struct{}{}
	}
	// Up to maxRefillers prepare at once: each spends most of its time in
	// Go and in the kernel outside the clone, which the cloner threads
	// serialise, and two of them left those threads idle: sustained runs
	// then found no sandbox ready and started cold (BENCHMARKS.md).
	for range min(p.size, maxRefillers) {
		ps.refill.Add(1)
		go ps.refiller()
	}
	return ps, nil
}

// refiller prepares a sandbox for every token it takes, until Close.
func (ps *poolSys) refiller() {
	defer ps.refill.Done()
	const minBackoff = 10 * time.Millisecond
	backoff := minBackoff
	for {
		select {
		case <-ps.slots:
		case <-ps.ctx.Done():
			return
		}
		ps.mu.Lock()
		ps.preparing++
		ps.mu.Unlock()
		start := time.Now()
		hd, err := ps.prepare(ps.ctx)
		ps.mu.Lock()
		ps.preparing--
		if err == nil {
			d := time.Since(start)
			if ps.prepTime == 0 {
				ps.prepTime = d
			}
			ps.prepTime = (7*ps.prepTime + d) / 8
		}
		ps.mu.Unlock()
		if err != nil {
			// The host may lack something for a while (a full disk, a
			// cgroup limit): runs start cold meanwhile and report it.
			ps.slots <- struct{}{}
			select {
			case <-time.After(backoff):
			case <-ps.ctx.Done():
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = minBackoff
		ps.mu.Lock()
		ps.prepared++
		ps.refills = append(ps.refills, time.Now())
		if len(ps.refills) > 32 {
			ps.refills = ps.refills[1:]
		}
		ps.mu.Unlock()
		ps.ready <- hd // never blocks: ready, preparing and tokens make the size
	}
}

// prepare makes a sandbox of the pool's plan up to the last step before
// its exec, where PID 1 waits for a request. On error it has released
// everything.
func (ps *poolSys) prepare(ctx context.Context) (_ *held, err error) {
	pl := *ps.base
	hd := &held{release: -1, request: -1, input: &jobInput{}}
	pl.stdin = hd.input // a pipe, fed from the run's reader
	hd.r = &running{pl: &pl, status: -1, exited: make(chan struct{})}
	defer func() {
		if err != nil {
			err = errors.Join(err, hd.discard())
		}
	}()
	var spent cleanup.Stack
	defer spent.Unwind(context.WithoutCancel(ctx))

	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("sandbox: pool: release pipe: %w", err)
	}
	rd, err := highFD(fds[0])
	if err != nil {
		unix.Close(fds[1])
		return nil, fmt.Errorf("sandbox: pool: release pipe: %w", err)
	}
	spent.PushErr(func() error { return closeFD(&rd) })
	if hd.release, err = highFD(fds[1]); err != nil {
		return nil, fmt.Errorf("sandbox: pool: release pipe: %w", err)
	}
	mfd, err := unix.MemfdCreate("sandboxkit-request", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("sandbox: pool: request file: %w", err)
	}
	if hd.request, err = highFD(mfd); err != nil {
		return nil, fmt.Errorf("sandbox: pool: request file: %w", err)
	}
	pl.hold = &heldExec{release: rd, request: hd.request}

	r := hd.r
	c, err := r.acquire(ctx, &spent)
	if err != nil {
		return nil, err
	}
	var netns *os.File
	if pl.net.bornIn {
		netns = r.bridge.netns
	}
	err = clone(netns, c.pidns, func() (err error) {
		hd.h, err = spawn.StartHeld(c.program, c.attr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sandbox: pool: prepare: %w", pl.startError(err))
	}
	r.proc = &hd.h.Process
	r.bridge.closeNetns()
	r.io.closeChildEnds()
	return hd, nil
}

// closeChildEnds closes the child's ends of the pipes, which a held child
// has duplicated: a program's output ends when it, and not this process,
// closes them.
func (st *stdio) closeChildEnds() {
	for i, f := range st.child {
		if f != nil {
			f.Close()
			st.child[i] = nil
		}
	}
}

// alive reports whether the held PID 1 still waits (a pidfd is readable
// once its process ended).
func (hd *held) alive() bool {
	fds := []unix.PollFd{{Fd: int32(hd.r.proc.PIDFD), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == 0
}

// discard releases everything hd holds, killing its PID 1 first.
func (hd *held) discard() error {
	if hd.h != nil && !hd.released {
		hd.h.Abandon()
	}
	err := hd.r.close(context.Background())
	return errors.Join(err, closeFD(&hd.release), closeFD(&hd.request))
}

// take returns a prepared sandbox. When none is ready but a refill is
// under way, it waits for one as long as a refill takes; then, or when
// none is under way, it prepares its own (cold).
func (ps *poolSys) take(ctx context.Context, name string) (*held, error) {
	waited := false
	for {
		select {
		case hd := <-ps.ready:
			if !hd.alive() {
				ps.retire(hd) // killed while it waited: never used
				continue
			}
			return hd, nil
		default:
		}
		ps.mu.Lock()
		wait := ps.prepTime
		if ps.preparing == 0 || waited {
			wait = 0
		}
		ps.mu.Unlock()
		if wait > 0 {
			// A sandbox under way is nearer than a new one, and a run
			// that waits for it adds no work to the CPUs it shares.
			waited = true
			t := time.NewTimer(wait)
			select {
			case hd := <-ps.ready:
				t.Stop()
				if !hd.alive() {
					ps.retire(hd)
					continue
				}
				return hd, nil
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("sandbox: run %s: %w", name, ctx.Err())
			case <-ps.ctx.Done():
				t.Stop()
				return nil, poolClosed(name)
			}
		}
		ps.mu.Lock()
		ps.cold++
		ps.mu.Unlock()
		hd, err := ps.prepare(ctx)
		if err == nil {
			hd.cold = true
		}
		return hd, err
	}
}

// retire releases hd, one of the pool's size, in the background, and
// then lets the refill replace it; Close waits for it. Until then it
// counts in the size: ready, being prepared, being released and tokens
// make it, whatever the runs in flight.
func (ps *poolSys) retire(hd *held) {
	ps.work.Add(1)
	go func() {
		defer ps.work.Done()
		err := hd.discard()
		ps.slots <- struct{}{}
		if err != nil {
			ps.mu.Lock()
			ps.teardownN++
			if len(ps.teardownErrs) < maxTeardownErrs {
				ps.teardownErrs = append(ps.teardownErrs, err)
			}
			ps.mu.Unlock()
		}
	}()
}

func (ps *poolSys) run(ctx context.Context, j *Job) (*Result, error) {
	ps.mu.Lock()
	if ps.closed {
		ps.mu.Unlock()
		return nil, poolClosed(j.argv[0])
	}
	ps.inUse++
	ps.runs++
	ps.work.Add(1)
	ps.mu.Unlock()
	defer func() {
		ps.mu.Lock()
		ps.inUse--
		ps.mu.Unlock()
		ps.work.Done()
	}()
	for attempt := 1; ; attempt++ {
		hd, err := ps.take(ctx, j.argv[0])
		if err != nil {
			return nil, err
		}
		res, err := ps.runIn(ctx, hd, j)
		if errors.Is(err, errHeldGone) && attempt < 3 && !hd.input.used.Load() {
			ps.release(hd, nil, nil) // it died as it was taken: take another
			continue
		}
		if errors.Is(err, errHeldGone) {
			err = fmt.Errorf("sandbox: run %s: %w", j.argv[0], err)
		}
		return ps.release(hd, res, err)
	}
}

// release releases hd after its run. Fresh sandboxes only: hd is never
// used again. A cold one is released before Run returns, as Sandbox.Run's
// is, so that the pool holds no more than its size beyond the runs in
// flight; one of the size is released in the background, and then
// replaced, off the CPUs the run used.
func (ps *poolSys) release(hd *held, res *Result, err error) (*Result, error) {
	if !hd.cold {
		ps.retire(hd)
		return res, err
	}
	terr := hd.discard()
	if res != nil {
		res.TeardownErr = errors.Join(res.TeardownErr, terr)
	} else {
		err = errors.Join(err, terr)
	}
	return res, err
}

func (ps *poolSys) stats() PoolStats {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	s := PoolStats{Ready: len(ps.ready), InUse: ps.inUse, Runs: ps.runs, StartedCold: ps.cold, Prepared: ps.prepared, TeardownErrors: ps.teardownN}
	if n := len(ps.refills); n > 1 {
		if d := ps.refills[n-1].Sub(ps.refills[0]); d > 0 {
			s.RefillRate = float64(n-1) / d.Seconds()
		}
	}
	return s
}

// close stops the refill, ends the runs in flight, releases every
// sandbox, and waits for the teardowns.
func (ps *poolSys) close() error {
	ps.mu.Lock()
	ps.closed = true
	ps.mu.Unlock()
	ps.cancel()
	ps.refill.Wait()
	var errs []error
	for done := false; !done; {
		select {
		case hd := <-ps.ready:
			errs = append(errs, hd.discard())
		default:
			done = true
		}
	}
	ps.work.Wait()
	ps.mu.Lock()
	errs = append(errs, ps.teardownErrs...)
	ps.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sandbox: pool: close: %w", err)
	}
	return nil
}
