package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
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

// held is a prepared sandbox: everything made, and its PID 1 (a copy of
// this process, all hardening done) blocked before its exec, waiting for
// its request (spawn.ExecOnRequest).
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
type jobInput struct{ src io.Reader }

func (in *jobInput) Read(b []byte) (int, error) {
	if in.src == nil {
		return 0, io.EOF
	}
	return in.src.Read(b)
}

func newPoolSys(p *Pool) (*poolSys, error) {
	if err := checkHost(); err != nil {
		return nil, fmt.Errorf("sandbox: pool: %w", err)
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
	err = clone(netns, func() (err error) {
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

// highFD moves fd to a number of 10 or above (close-on-exec), clear of
// the descriptors the child sets up; fd is closed either way.
func highFD(fd int) (int, error) {
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 10)
	unix.Close(fd)
	if err != nil {
		return -1, err
	}
	return high, nil
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
	hd, err := ps.take(ctx, j.argv[0])
	if err != nil {
		return nil, err
	}
	res, err := ps.runIn(ctx, hd, j)
	// Fresh sandboxes only: hd is never used again. A cold one is
	// released before Run returns, as Sandbox.Run's is, so that the pool
	// holds no more than its size beyond the runs in flight; one of the
	// size is released in the background, and then replaced, off the
	// CPUs the run used.
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

// runIn runs j in the held sandbox hd: it tightens the limits, writes the
// files, chooses the path, sends the request and waits for the init's
// report of the program's end, not for the sandbox's teardown (retire's).
func (ps *poolSys) runIn(ctx context.Context, hd *held, j *Job) (*Result, error) {
	r := hd.r
	pl := r.pl
	pl.argv, pl.env = j.argv, mergeEnv(pl.env, j.env)
	if ps.ctx.Err() != nil {
		return nil, poolClosed(pl.name())
	}
	if j.memory > 0 || j.pids > 0 {
		if err := tightenCgroup(r.cg, limits{memory: j.memory, pids: j.pids}); err != nil {
			return nil, fmt.Errorf("sandbox: run %s: tighten limits: %w", pl.name(), err)
		}
	}
	path, err := hd.resolve(pl.argv[0], pl.env)
	if err != nil {
		return nil, err
	}
	x := instanceSys{r}
	for _, f := range j.files {
		if err := x.writeFile(f.path, f.data, f.mode); err != nil {
			return nil, fmt.Errorf("sandbox: run %s: write %s: %w", pl.name(), f.path, err)
		}
	}
	req, err := execstub.Request(path, pl.argv, pl.env)
	if errors.Is(err, execstub.ErrRequestTooLarge) {
		return nil, &ConfigError{Problems: []*FieldError{{Field: "argv", Value: pl.name(),
			Reason: fmt.Sprintf("with the environment, takes more than %d bytes", execstub.RequestCapacity)}}}
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: run %s: %w", pl.name(), err)
	}
	if _, err := unix.Pwrite(hd.request, req, 0); err != nil {
		return nil, fmt.Errorf("sandbox: run %s: write request: %w", pl.name(), err)
	}
	if _, err := unix.Write(hd.release, []byte{0}); err != nil {
		return nil, fmt.Errorf("sandbox: run %s: release: %w", pl.name(), err)
	}
	hd.released = true
	r.start = time.Now()
	go r.watch()
	r.undo.Push(r.kill)

	hd.input.src = j.stdin
	for _, c := range r.io.out {
		if c != nil && j.outputLimit > 0 {
			c.limit = j.outputLimit
		}
	}
	if j.outputKill {
		r.io.onFull(func() { r.signal(unix.SIGKILL) })
	}
	status, err := statusReader(r.status)
	if err != nil {
		return nil, fmt.Errorf("sandbox: run %s: status pipe: %w", pl.name(), err)
	}
	r.io.started()

	timeout := ps.jobTimeout(j)
	var fired atomic.Bool
	if timeout > 0 {
		killed := make(chan struct{})
		t := time.AfterFunc(timeout, func() {
			defer close(killed)
			fired.Store(true)
			r.signal(unix.SIGKILL)
		})
		defer func() {
			// A kill under way must end before the teardown closes
			// the pidfd it goes through.
			if !t.Stop() {
				<-killed
			}
		}()
	}
	var st programReport
	var ctxErr error
	select {
	case st = <-status:
	case <-ctx.Done():
		r.signal(unix.SIGKILL)
		st = <-status
		ctxErr = fmt.Errorf("sandbox: run %s: %w", pl.name(), ctx.Err())
	case <-ps.ctx.Done():
		r.signal(unix.SIGKILL)
		st = <-status
		ctxErr = poolClosed(pl.name())
	}
	res := &Result{Wall: time.Since(r.start), TimedOut: fired.Load() && !st.ok, Network: r.bridge.info()}
	r.io.finish(res)
	// Whether the program could be executed, now that it ended: not
	// waited for on the run's road.
	if err := hd.h.Outcome(); err != nil && ctxErr == nil {
		return nil, fmt.Errorf("sandbox: start %s: %w", pl.name(), pl.startError(fixExecStep(err, path)))
	}
	ws := st.ws
	if !st.ok {
		<-r.exited // killed: PID 1's own status
		ws = r.ws
	}
	res.setExit(ws)
	u, err := r.cg.usage()
	res.CPU, res.MemoryPeak, res.OOMKilled = u.cpu, u.memoryPeak, u.oomKills > 0
	if err != nil {
		res.TeardownErr = fmt.Errorf("sandbox: read usage: %w", err)
	}
	return res, ctxErr
}

// jobTimeout is j's timeout, or else the pool's.
func (ps *poolSys) jobTimeout(j *Job) time.Duration {
	if j.timeout > 0 {
		return j.timeout
	}
	return ps.defTimeout
}

// programReport is what the init reported of the program's end: ok is
// false when it reported nothing (it was killed).
type programReport struct {
	ws unix.WaitStatus
	ok bool
}

// statusReader reads the init's report from its status pipe through the
// runtime's poller, holding no thread while the program runs, and
// delivers it once, as soon as the program ended: before the init has
// exited and the kernel has torn its namespaces down.
func statusReader(fd int) (<-chan programReport, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, err
	}
	f := os.NewFile(uintptr(dup), "status")
	out := make(chan programReport, 1)
	go func() {
		defer f.Close()
		var b [4]byte
		if _, err := io.ReadFull(f, b[:]); err != nil {
			out <- programReport{}
			return
		}
		out <- programReport{ws: unix.WaitStatus(binary.NativeEndian.Uint32(b[:])), ok: true}
	}()
	return out, nil
}

// fixExecStep names the path a held child failed to execute, which its
// program, built before the path was known, could not.
func fixExecStep(err error, path string) error {
	var se *spawn.Error
	if errors.As(err, &se) && se.Step.Op == "exec" {
		c := *se
		c.Step.Path = path
		return &c
	}
	return err
}

// resolve returns where in the sandbox name is: name itself when it holds
// a slash, otherwise the first file of that name in env's PATH that the
// sandbox's user may execute, looked for through PID 1's root as the
// kernel would resolve it there.
func (hd *held) resolve(name string, env []string) (string, error) {
	paths := commandPaths(name, env)
	if len(paths) == 1 {
		return paths[0], nil
	}
	x := instanceSys{hd.r}
	root, err := x.openRoot()
	if err != nil {
		return "", fmt.Errorf("sandbox: run %s: %w", name, err)
	}
	defer unix.Close(root)
	uid, gid := hd.r.pl.hostIDs()
	for _, p := range paths {
		fd, err := inRoot(root, p, unix.O_PATH)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		unix.Close(fd)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && mayExecute(&st, uid, gid, hd.r.pl.uid == 0) {
			return p, nil
		}
	}
	last := paths[len(paths)-1]
	return "", fmt.Errorf("sandbox: start %s: %w (%q is in no directory of PATH=%s)", name,
		&fs.PathError{Op: "exec", Path: last, Err: unix.ENOENT}, name, pathOf(env))
}

// mayExecute reports whether the file st describes has the execute bit
// that applies to uid and gid (host IDs); the sandbox's root needs any.
func mayExecute(st *unix.Stat_t, uid, gid int, root bool) bool {
	switch {
	case root:
		return st.Mode&0o111 != 0
	case int(st.Uid) == uid:
		return st.Mode&0o100 != 0
	case int(st.Gid) == gid:
		return st.Mode&0o010 != 0
	}
	return st.Mode&0o001 != 0
}

// tightenCgroup lowers the limits of cg to those lim sets.
func tightenCgroup(cg cgroup, lim limits) error {
	type write struct{ path, value string }
	var ws []write
	switch g := cg.(type) {
	case *cgroupV1:
		if lim.memory > 0 {
			v := strconv.FormatInt(lim.memory, 10)
			ws = append(ws, write{g.path("memory", "memory.limit_in_bytes"), v})
			if p := g.path("memory", "memory.memsw.limit_in_bytes"); exists(p) {
				ws = append(ws, write{p, v})
			}
		}
		if lim.pids > 0 {
			ws = append(ws, write{g.path("pids", "pids.max"), strconv.Itoa(lim.pids)})
		}
	case *cgroupV2:
		if lim.memory > 0 {
			ws = append(ws, write{g.path + "/memory.max", strconv.FormatInt(lim.memory, 10)})
		}
		if lim.pids > 0 {
			ws = append(ws, write{g.path + "/pids.max", strconv.Itoa(lim.pids)})
		}
	}
	for _, w := range ws {
		if err := os.WriteFile(w.path, []byte(w.value), 0); err != nil {
			return err
		}
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
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

// runJob runs j cold in a sandbox of s: s with j's files, input and
// limits.
func (s *Sandbox) runJob(ctx context.Context, j *Job) (*Result, error) {
	pl := s.withJob(j).plan(j.argv)
	pl.outputKill = j.outputKill
	r, err := start(ctx, pl)
	if err != nil {
		return nil, err
	}
	res, err := r.wait(ctx)
	res.TeardownErr = errors.Join(res.TeardownErr, r.close(ctx))
	return res, err
}
