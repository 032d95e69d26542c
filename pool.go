package sandbox

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"
	"time"
)

// Pool runs programs of one definition, each in a fresh sandbox that no
// earlier run touched, taken from a set of sandboxes prepared ahead and
// refilled in the background: namespaces, cgroup, mounts, network and
// hardening are made before the run asks, and the run only sends its argv
// and waits (see ARCHITECTURE.md). A sandbox is never reused.
//
// When no prepared sandbox is ready, a run waits for one being prepared,
// for as long as preparing one takes, or else prepares its own (it starts
// cold, as Sandbox.Run would): runs never fail for a lack of sandboxes.
// The pool holds at most its size in sandboxes (ready, being prepared, or
// being released after a run), plus one per run in flight.
//
// A Pool is safe for concurrent use. The caller must Close it.
type Pool struct {
	def  *Sandbox
	size int
	sys  *poolSys

	closeOnce sync.Once
	closeErr  error
}

// PoolStats is what a pool holds and has done, to size it.
type PoolStats struct {
	// Ready is how many prepared sandboxes wait for a run.
	Ready int
	// InUse is how many runs are in flight.
	InUse int
	// Runs is how many runs started, in all.
	Runs uint64
	// StartedCold is how many of them found no prepared sandbox and
	// prepared their own: a pool too small for its load.
	StartedCold uint64
	// Prepared is how many sandboxes the pool prepared, in all.
	Prepared uint64
	// RefillRate is how many sandboxes per second the background refill
	// prepared, over its last few.
	RefillRate float64
	// TeardownErrors counts used sandboxes whose release, done in the
	// background, failed (Close returns the errors; Collect removes what
	// was left).
	TeardownErrors uint64
}

// NewPool returns a pool of size sandboxes as def defines them, one of
// them prepared before it returns (so that a definition the host cannot
// run fails here) and the rest in the background.
//
// def must have the init (the default) and no stdin, stdout or stderr of
// its own: a pool's runs take their input from a [Job] and return their
// output in the Result. size must be at least 1. The init waits for a
// run under the definition's seccomp filter, which must let it read,
// pread64, mmap and close, as the default does.
//
// The error matches [ErrInvalidConfig] for a bad definition or size, and
// otherwise is what Sandbox.Run would return for def. The caller must
// Close the pool.
func NewPool(def *Sandbox, size int) (*Pool, error) {
	if err := def.validatePool(size); err != nil {
		return nil, err
	}
	p := &Pool{def: def, size: size}
	sys, err := newPoolSys(p)
	if err != nil {
		return nil, err
	}
	p.sys = sys
	return p, nil
}

// validatePool reports what makes def unfit for a pool of size.
func (s *Sandbox) validatePool(size int) error {
	var problems []*FieldError
	if err := s.Validate(); err != nil {
		problems = err.(*ConfigError).Problems
	}
	if size < 1 {
		problems = append(problems, &FieldError{Field: "size", Value: size, Reason: "must be at least 1"})
	}
	if !s.init {
		problems = append(problems, &FieldError{Field: "init", Value: false, Reason: "a pool needs the init (WithInit(true))"})
	}
	for _, io := range []struct {
		field string
		set   bool
	}{{"stdin", s.stdin != nil}, {"stdout", s.stdout != nil}, {"stderr", s.stderr != nil}, {"console", s.console != nil}} {
		if io.set {
			problems = append(problems, &FieldError{Field: io.field, Value: "set", Reason: "a pool's runs take their input from a Job and return their output in the Result"})
		}
	}
	if s.createHook != nil {
		problems = append(problems, &FieldError{Field: "create hook", Value: "set", Reason: "a pool makes its sandboxes ahead of its runs, with nobody to call it for"})
	}
	if len(problems) > 0 {
		return &ConfigError{Problems: problems}
	}
	return nil
}

// Run runs argv in a fresh sandbox of the pool, as def.Run would: the
// same Result, limits, timeout and output rules. ctx bounds the run; when
// it ends first, the sandbox is killed and the error matches ctx.Err().
// After Close, Run returns an error matching [ErrClosed].
func (p *Pool) Run(ctx context.Context, argv ...string) (*Result, error) {
	return p.RunJob(ctx, NewJob(argv...))
}

// RunJob is Run of j's argv with j's input and limits.
func (p *Pool) RunJob(ctx context.Context, j *Job) (*Result, error) {
	if p == nil || p.sys == nil {
		return nil, poolClosed("in a nil pool")
	}
	if err := j.validate(ctx, p.def); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sandbox: run: %w", err)
	}
	return p.sys.run(ctx, j)
}

// RunJob runs j in a new sandbox as s defines it, with j's files, input
// and limits, as Run does (the sandbox is made for the run: no pool). j's
// limits may only tighten s's, as in a Pool; its stdin replaces s's.
func (s *Sandbox) RunJob(ctx context.Context, j *Job) (*Result, error) {
	if err := j.validate(ctx, s); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sandbox: run: %w", err)
	}
	return s.runJob(ctx, j)
}

// withJob returns s with j's files, stdin, environment and limits.
func (s *Sandbox) withJob(j *Job) *Sandbox {
	c := s.WithEnv(j.env...)
	for _, f := range j.files {
		c = c.WithFile(f.path, f.data, f.mode)
	}
	c = c.WithStdin(j.stdin)
	if j.memory > 0 {
		c = c.WithMemory(j.memory)
	}
	if j.pids > 0 {
		c = c.WithPids(j.pids)
	}
	if j.cpu > 0 {
		c = c.WithCPU(j.cpu)
	}
	if j.timeout > 0 {
		c = c.WithTimeout(j.timeout)
	}
	if j.outputLimit > 0 {
		c = c.WithOutputLimit(j.outputLimit)
	}
	return c
}

// Stats reports what the pool holds and has done.
func (p *Pool) Stats() PoolStats {
	if p == nil || p.sys == nil {
		return PoolStats{}
	}
	return p.sys.stats()
}

// Close stops the refill, kills the runs in flight (their Run returns an
// error matching [ErrClosed]), and releases every sandbox the pool holds;
// when it returns, none remains. It is idempotent and safe for concurrent
// use, and returns the first call's joined errors, those of background
// teardowns included. Close on a nil *Pool does nothing.
func (p *Pool) Close() error {
	if p == nil || p.sys == nil {
		return nil
	}
	p.closeOnce.Do(func() { p.closeErr = p.sys.close() })
	return p.closeErr
}

// Job is one run of a pool: its argv, and what it adds to or tightens of
// the pool's definition. Like a Sandbox it is immutable: every With method
// returns a changed copy, recording bad values for RunJob to report as one
// [*ConfigError].
type Job struct {
	argv        []string
	stdin       io.Reader
	files       []jobFile
	env         []string
	memory      int64
	cpu         Cores
	pids        int
	timeout     time.Duration
	outputLimit int64
	outputKill  bool
	problems    []*FieldError
}

type jobFile struct {
	path string
	data []byte
	mode fs.FileMode
}

// NewJob returns a run of argv (argv[0] looked up in the sandbox's PATH
// unless it contains a slash) with the pool's definition unchanged.
func NewJob(argv ...string) *Job {
	return &Job{argv: slices.Clone(argv)}
}

func (j *Job) clone() *Job {
	c := *j
	c.files = slices.Clone(j.files)
	c.env = slices.Clone(j.env)
	c.problems = slices.Clone(j.problems)
	return &c
}

func (j *Job) invalid(field string, value any, reason string) {
	j.problems = append(j.problems, &FieldError{Field: field, Value: value, Reason: reason})
}

// WithStdin returns a copy of j whose program reads r as its standard
// input; by default it reads nothing (end of file at once). The last call
// wins.
func (j *Job) WithStdin(r io.Reader) *Job {
	c := j.clone()
	c.stdin = r
	return c
}

// WithFile returns a copy of j that writes data, with mode, to the
// absolute path in the sandbox before the program starts, as the
// sandbox's user (its directory must exist and be writable by that user,
// as /tmp is). Files accumulate.
func (j *Job) WithFile(path string, data []byte, mode fs.FileMode) *Job {
	c := j.clone()
	if reason := checkSandboxPath(path); reason != "" {
		c.invalid("file", path, reason)
		return c
	}
	c.files = append(c.files, jobFile{path: path, data: slices.Clone(data), mode: mode})
	return c
}

// WithEnv returns a copy of j with the environment variables kv, each
// "KEY=value", added to the pool's; a value for a key the pool sets
// replaces it. They accumulate.
func (j *Job) WithEnv(kv ...string) *Job {
	c := j.clone()
	for _, e := range kv {
		if reason := checkEnvEntry(e); reason != "" {
			c.invalid("env", e, reason)
			continue
		}
		c.env = append(c.env, e)
	}
	return c
}

// WithMemory returns a copy of j whose sandbox may use at most bytes of
// memory: at least [MinMemory], and no more than the pool's limit, which
// the pool must have. The last call wins.
func (j *Job) WithMemory(bytes int64) *Job {
	c := j.clone()
	if bytes < MinMemory {
		c.invalid("memory", bytes, fmt.Sprintf("must be at least %d (MinMemory)", MinMemory))
		return c
	}
	c.memory = bytes
	return c
}

// WithCPU returns a copy of j whose sandbox may use at most cores of CPU
// time: between 0.01 and the pool's limit, which the pool must have. The
// last call wins.
func (j *Job) WithCPU(cores Cores) *Job {
	c := j.clone()
	if !(cores >= 0.01) {
		c.invalid("cpu", cores, "must be at least 0.01 cores")
		return c
	}
	c.cpu = cores
	return c
}

// WithPids returns a copy of j whose sandbox may hold at most n
// processes: positive, and no more than the pool's limit, which the pool
// must have. The last call wins.
func (j *Job) WithPids(n int) *Job {
	c := j.clone()
	if n <= 0 {
		c.invalid("pids", n, "must be positive")
		return c
	}
	c.pids = n
	return c
}

// WithTimeout returns a copy of j killed after d of wall-clock time
// (Result.TimedOut): positive, and no longer than the pool's timeout if
// it has one. The last call wins.
func (j *Job) WithTimeout(d time.Duration) *Job {
	c := j.clone()
	if d <= 0 {
		c.invalid("timeout", d, "must be positive")
		return c
	}
	c.timeout = d
	return c
}

// WithOutputLimit returns a copy of j whose Result keeps at most bytes of
// each of stdout and stderr: positive, and no more than the pool's. The
// last call wins.
func (j *Job) WithOutputLimit(bytes int64) *Job {
	c := j.clone()
	if bytes <= 0 {
		c.invalid("output limit", bytes, "must be positive")
		return c
	}
	c.outputLimit = bytes
	return c
}

// WithKillOnOutputLimit returns a copy of j whose sandbox is killed as
// soon as the program's stdout or stderr passes the output limit (the
// Result then says StdoutTruncated or StderrTruncated, and SIGKILL),
// instead of running on with its output dropped. The last call wins.
func (j *Job) WithKillOnOutputLimit(on bool) *Job {
	c := j.clone()
	c.outputKill = on
	return c
}

// validate reports j's problems, and limits that would loosen def's.
func (j *Job) validate(ctx context.Context, def *Sandbox) error {
	if j == nil {
		return &ConfigError{Problems: []*FieldError{{Field: "job", Value: nil, Reason: "must not be nil"}}}
	}
	problems := slices.Clone(j.problems)
	problems = append(problems, checkCall(ctx, j.argv, false)...)
	tighter := func(field string, v, pool int64, none string) {
		switch {
		case v == 0:
		case pool == 0 && none != "":
			problems = append(problems, &FieldError{Field: field, Value: v, Reason: none})
		case pool > 0 && v > pool:
			problems = append(problems, &FieldError{Field: field, Value: v, Reason: fmt.Sprintf("may only tighten the pool's %d", pool)})
		}
	}
	tighter("memory", j.memory, def.memory, "the pool has no memory limit to tighten (WithMemory)")
	tighter("pids", int64(j.pids), int64(def.pids), "the pool has no pids limit to tighten (WithPids)")
	switch {
	case j.cpu == 0:
	case def.cpu == 0:
		problems = append(problems, &FieldError{Field: "cpu", Value: j.cpu, Reason: "the pool has no CPU limit to tighten (WithCPU)"})
	case j.cpu > def.cpu:
		problems = append(problems, &FieldError{Field: "cpu", Value: j.cpu, Reason: fmt.Sprintf("may only tighten the pool's %v", def.cpu)})
	}
	tighter("timeout", int64(j.timeout), int64(def.timeout), "")
	tighter("output limit", j.outputLimit, def.outputLimit, "")
	if len(problems) == 0 {
		return nil
	}
	return &ConfigError{Problems: problems}
}

// poolClosed is the error of a run of name that the pool's Close ended or
// refused.
func poolClosed(name string) error {
	return fmt.Errorf("sandbox: run %s: the pool was closed (%w)", name, ErrClosed)
}
