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
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/execstub"
	"github.com/sandboxkit/sandbox/internal/spawn"
)

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
	if j.memory > 0 || j.pids > 0 || j.cpu > 0 {
		if err := tightenCgroup(r.cg, limits{memory: j.memory, pids: j.pids, cpu: j.cpu}); err != nil {
			return nil, fmt.Errorf("sandbox: run %s: tighten limits: %w", pl.name(), err)
		}
	}
	path, err := hd.resolve(pl.argv[0], pl.env)
	if errors.Is(err, ErrClosed) {
		return nil, errHeldGone
	}
	if err != nil {
		return nil, err
	}
	x := instanceSys{r}
	for _, f := range j.files {
		if err := x.writeFile(f.path, f.data, f.mode); errors.Is(err, ErrClosed) {
			return nil, errHeldGone
		} else if err != nil {
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
		if err == unix.EPIPE {
			return nil, errHeldGone
		}
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
	switch err := hd.h.Outcome(); {
	case errors.Is(err, spawn.ErrNotStarted) && ctxErr == nil && !fired.Load():
		return nil, errHeldGone // killed before it read the request: not run
	case errors.Is(err, spawn.ErrNotStarted):
	case err != nil && ctxErr == nil:
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
		if lim.cpu > 0 {
			q, _ := cpuQuota(lim.cpu) // the period is the pool's, the same
			ws = append(ws, write{g.path("cpu", "cpu.cfs_quota_us"), strconv.FormatInt(q, 10)})
		}
	case *cgroupV2:
		if lim.memory > 0 {
			ws = append(ws, write{g.path + "/memory.max", strconv.FormatInt(lim.memory, 10)})
		}
		if lim.pids > 0 {
			ws = append(ws, write{g.path + "/pids.max", strconv.Itoa(lim.pids)})
		}
		if lim.cpu > 0 {
			q, period := cpuQuota(lim.cpu)
			ws = append(ws, write{g.path + "/cpu.max", fmt.Sprintf("%d %d", q, period)})
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
