package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/oci"
	"github.com/sandboxkit/sandbox/internal/spawn"
)

// Attach returns the running sandbox that StartDetached started, known by
// the PID it returned (an OCI runtime keeps it in its state), so that
// commands can run in it: Command, Exec, the files, Stats, Signal and Dial
// work as on an Instance of Start, and Pause and Resume where the sandbox
// has a freezer (cgroup v2, or v1's freezer hierarchy, which a sandbox of
// FromSpec joins; else errors.ErrUnsupported). s must define the
// sandbox as it was started (the same WithCgroupPath above all, which
// Attach requires); the commands get its user, environment, working
// directory, capabilities, rlimits and seccomp filter, so that an OCI
// runtime's exec passes its process.json through FromSpec.
//
// The Instance is a handle, not the sandbox's owner: Close releases only
// what Attach opened, and the sandbox runs on (Signal ends it). Wait
// returns once the sandbox ended, with its usage; its exit status is its
// parent's to reap (wait4 on the PID), so ExitCode is -1 and Signal 0.
// Output is never the caller's: ForOutput is never seen.
//
// A PID is reused once its process is reaped: a caller that got it from
// a file checks, after Attach, that the process is still the one it
// started (its start time in /proc/PID/stat), since the Instance holds it
// by a pidfd from then on. A PID with no process is ErrClosed.
func (s *Sandbox) Attach(pid int) (*Instance, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.cgroupPath == "" {
		return nil, &ConfigError{Problems: []*FieldError{{Field: "cgroup path", Value: "", Reason: "must be set (WithCgroupPath): it is how Attach finds the sandbox's cgroup"}}}
	}
	if pid <= 0 {
		return nil, &ConfigError{Problems: []*FieldError{{Field: "pid", Value: pid, Reason: "must be a process ID"}}}
	}
	pl := s.clone().plan(nil)
	pl.init, pl.detached = false, true
	r := &running{pl: pl, status: -1, exited: make(chan struct{}), io: &stdio{}, attached: true}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil, fmt.Errorf("sandbox: attach to %d: %w", pid, ErrClosed)
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: attach to %d: %w", pid, os.NewSyscallError("pidfd_open", err))
	}
	r.proc = &spawn.Process{PID: pid, PIDFD: pidfd}
	r.undo.PushErr(func() error { return closeFD(&r.proc.PIDFD) })
	if r.cg, err = openCgroup(pl.cgroupPath); err != nil {
		return nil, errors.Join(fmt.Errorf("sandbox: attach to %d: %w", pid, err), r.undo.Unwind(context.Background()))
	}
	r.undo.PushErr(r.cg.(attachedCgroup).release)
	go r.watchAttached()
	return &Instance{sys: instanceSys{r}}, nil
}

// watchAttached waits for an attached sandbox to end (its pidfd becomes
// readable) and closes r.exited, reaping nothing: its parent does.
func (r *running) watchAttached() {
	defer close(r.exited)
	fd, err := unix.FcntlInt(uintptr(r.proc.PIDFD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return // cannot watch: treat it as ended rather than wait forever
	}
	defer unix.Close(fd)
	for {
		_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1)
		if err != unix.EINTR {
			break
		}
	}
}

// attachedResult is an attached sandbox's Result once it ended.
func (r *running) attachedResult() *Result {
	res := &Result{ExitCode: -1} // the parent's to know
	u, err := r.cg.usage()
	res.CPU, res.MemoryPeak, res.OOMKilled = u.cpu, u.memoryPeak, u.oomKills > 0
	if err != nil {
		res.TeardownErr = fmt.Errorf("sandbox: read usage: %w", err)
	}
	return res
}

// attachedCgroup is the cgroup of a sandbox that another process started:
// read and joined like one of ours, but never removed.
type attachedCgroup struct{ cgroup }

// release closes what openCgroup opened.
func (g attachedCgroup) release() error {
	switch c := g.cgroup.(type) {
	case *cgroupV1:
		for _, fd := range c.fds {
			unix.Close(fd)
		}
		c.fds = nil
	case *cgroupV2:
		closeFD(&c.dirFD)
	}
	return nil
}

// destroy leaves the cgroup to the process that made it.
func (g attachedCgroup) destroy() error { return g.release() }

// openCgroup opens the existing cgroup path, as WithCgroupPath names it, in
// each hierarchy that has it: a directory to be born in on a pure v2 host,
// else the cgroup.procs files to write into.
func openCgroup(path string) (attachedCgroup, error) {
	dirs, err := cgroupDirs(path)
	if err != nil {
		return attachedCgroup{}, err
	}
	if len(dirs) == 0 {
		return attachedCgroup{}, &fs.PathError{Op: "open cgroup", Path: path, Err: fs.ErrNotExist}
	}
	if oci.Unified() {
		fd, err := unix.Open(dirs[0], unix.O_DIRECTORY|unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return attachedCgroup{}, &fs.PathError{Op: "open", Path: dirs[0], Err: err}
		}
		return attachedCgroup{&cgroupV2{path: dirs[0], dirFD: fd}}, nil
	}
	name := strings.TrimPrefix(filepath.Clean(path), "/")
	g := &cgroupV1{root: cgroupRoot, name: name}
	for _, d := range dirs {
		rel, _ := filepath.Rel(cgroupRoot, strings.TrimSuffix(d, "/"+name))
		g.controllers = append(g.controllers, rel)
	}
	if err := g.openProcs(); err != nil {
		attachedCgroup{g}.release()
		return attachedCgroup{}, err
	}
	return attachedCgroup{g}, nil
}
