package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/sandboxkit/sandbox"
)

// The limits of a program and of its compiler.
const (
	maxSource   = 64 << 10 // bytes of source
	maxStdin    = 64 << 10 // bytes of stdin
	maxBody     = 1 << 20  // bytes of a request
	maxOutput   = 64 << 10 // bytes of each of stdout and stderr
	runMemory   = 128 << 20
	runPids     = 32
	runTimeout  = 5 * time.Second
	compMemory  = 512 << 20
	compPids    = 64
	compTimeout = 20 * time.Second
	maxBinary   = 16 << 20 // bytes of a compiled program
	nobody      = 65534
)

// language is how to run a program of one language: where its source
// goes, and the program's argv; compile, when set, is the argv of the
// compiler, which writes the executable to its stdout.
type language struct {
	source  string
	argv    []string
	compile []string
}

var languages = map[string]language{
	"python": {source: "/tmp/main.py", argv: []string{"python3", "/tmp/main.py"}},
	"sh":     {source: "/tmp/main.sh", argv: []string{"sh", "/tmp/main.sh"}},
	"c": {
		source:  "/tmp/main.c",
		compile: []string{"sh", "-c", "gcc -O1 -o /tmp/main /tmp/main.c -lm >&2 && cat /tmp/main"},
		argv:    []string{"/tmp/main"},
	},
}

// request is what a client posts to /run.
type request struct {
	Language string `json:"language"`
	Source   string `json:"source"`
	Stdin    string `json:"stdin"`
}

// reply is what /run answers: the program's run or, when compiling
// failed, the compiler's (Stage says which).
type reply struct {
	Stage           string  `json:"stage"` // "run" or "compile"
	Stdout          string  `json:"stdout"`
	Stderr          string  `json:"stderr"`
	ExitCode        int     `json:"exit_code"`
	Signal          string  `json:"signal,omitempty"`
	WallMS          float64 `json:"wall_ms"`
	CPUMS           float64 `json:"cpu_ms"`
	MemoryPeak      int64   `json:"memory_peak_bytes"`
	KilledForTime   bool    `json:"killed_for_time"`
	KilledForMemory bool    `json:"killed_for_memory"`
	KilledForOutput bool    `json:"killed_for_output"`
	CompileMS       float64 `json:"compile_ms,omitempty"`
}

// service serves /run from two pools: one for programs, one for the
// compiler; or, cold, from two definitions.
type service struct {
	mux          *http.ServeMux
	prog, comp   *sandbox.Sandbox
	progs, comps *sandbox.Pool // nil when cold
}

func newService(size int, cold bool) (*service, error) {
	base := sandbox.New(sandbox.HostRoot()).WithUser(nobody, nobody).WithOutputLimit(maxOutput)
	s := &service{
		mux:  http.NewServeMux(),
		prog: base.WithMemory(runMemory).WithPids(runPids).WithTimeout(runTimeout),
		comp: base.WithMemory(compMemory).WithPids(compPids).WithTimeout(compTimeout).WithOutputLimit(maxBinary),
	}
	s.mux.HandleFunc("POST /run", s.handleRun)
	if cold {
		return s, nil
	}
	var err error
	if s.progs, err = sandbox.NewPool(s.prog, size); err != nil {
		return nil, err
	}
	if s.comps, err = sandbox.NewPool(s.comp, max(1, size/2)); err != nil {
		s.progs.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the pools.
func (s *service) Close() error {
	return errors.Join(s.progs.Close(), s.comps.Close())
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *service) handleRun(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	var req request
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request larger than %d bytes", maxBody))
			return
		}
		fail(w, http.StatusBadRequest, "bad JSON: "+err.Error())
		return
	}
	lang, ok := languages[req.Language]
	switch {
	case !ok:
		fail(w, http.StatusBadRequest, fmt.Sprintf("unknown language %q: want one of %s", req.Language, known()))
		return
	case strings.TrimSpace(req.Source) == "":
		fail(w, http.StatusBadRequest, "empty source")
		return
	case len(req.Source) > maxSource:
		fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("source of %d bytes: the limit is %d", len(req.Source), maxSource))
		return
	case len(req.Stdin) > maxStdin:
		fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("stdin of %d bytes: the limit is %d", len(req.Stdin), maxStdin))
		return
	}
	rep, err := s.execute(r.Context(), lang, req)
	if r.Context().Err() != nil {
		return // the client left: nobody to answer
	}
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(rep)
}

// execute compiles the source if the language needs it, and runs it.
func (s *service) execute(ctx context.Context, lang language, req request) (*reply, error) {
	argv := lang.argv
	file := func(j *sandbox.Job) *sandbox.Job { return j.WithFile(lang.source, []byte(req.Source), 0o644) }
	var compileMS float64
	if lang.compile != nil {
		res, err := s.run(ctx, s.comps, s.comp, file(sandbox.NewJob(lang.compile...)))
		if err != nil {
			return nil, fmt.Errorf("compile: %w", err)
		}
		if res.ExitCode != 0 || res.StdoutTruncated {
			rep := newReply("compile", res)
			if res.StdoutTruncated {
				rep.Stderr += fmt.Sprintf("\nthe executable is larger than %d bytes", maxBinary)
			}
			return rep, nil
		}
		compileMS = ms(res.Wall)
		exe := res.Stdout
		file = func(j *sandbox.Job) *sandbox.Job { return j.WithFile(argv[0], exe, 0o755) }
	}
	job := file(sandbox.NewJob(argv...)).WithStdin(strings.NewReader(req.Stdin)).WithKillOnOutputLimit(true)
	res, err := s.run(ctx, s.progs, s.prog, job)
	if err != nil {
		return nil, err
	}
	rep := newReply("run", res)
	rep.CompileMS = compileMS
	return rep, nil
}

// run runs j from pool, or cold in a sandbox of def when pool is nil.
func (s *service) run(ctx context.Context, pool *sandbox.Pool, def *sandbox.Sandbox, j *sandbox.Job) (*sandbox.Result, error) {
	if pool != nil {
		return pool.RunJob(ctx, j)
	}
	return def.RunJob(ctx, j)
}

func newReply(stage string, res *sandbox.Result) *reply {
	rep := &reply{
		Stage:           stage,
		Stdout:          string(res.Stdout),
		Stderr:          string(res.Stderr),
		ExitCode:        res.ExitCode,
		WallMS:          ms(res.Wall),
		CPUMS:           ms(res.CPU),
		MemoryPeak:      res.MemoryPeak,
		KilledForTime:   res.TimedOut,
		KilledForMemory: res.OOMKilled,
		KilledForOutput: (res.StdoutTruncated || res.StderrTruncated) && res.Signal != 0 && !res.TimedOut && !res.OOMKilled,
	}
	if res.Signal != 0 {
		rep.Signal = res.Signal.String()
	}
	return rep
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func known() string {
	var names []string
	for n := range languages {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// fail answers with status and a JSON error message.
func fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
