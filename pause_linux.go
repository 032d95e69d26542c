package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// freezeTimeout bounds a thaw made on the way to a kill, which must not
// wait for a caller's ctx.
const freezeTimeout = 5 * time.Second

// pause freezes every process of the sandbox.
func (x instanceSys) pause(ctx context.Context) error { return x.r.setFrozen(ctx, true) }

// resume thaws what pause froze.
func (x instanceSys) resume(ctx context.Context) error { return x.r.setFrozen(ctx, false) }

// setFrozen freezes or thaws the sandbox's cgroup, unless it is being
// killed: a kill thaws it first (see killAll), and nothing may freeze it
// again after.
func (r *running) setFrozen(ctx context.Context, frozen bool) error {
	r.freezeMu.Lock()
	defer r.freezeMu.Unlock()
	if r.killing || !r.alive() {
		return ErrClosed
	}
	if err := r.cg.freeze(ctx, frozen); err != nil {
		return err
	}
	r.frozen = frozen
	return nil
}

// killAll kills PID 1, and with it the sandbox, thawing it first: a v1
// freezer holds even SIGKILL until its processes are thawed.
func (r *running) killAll() {
	r.freezeMu.Lock()
	r.killing = true
	if r.frozen {
		ctx, cancel := context.WithTimeout(context.Background(), freezeTimeout)
		if r.cg.freeze(ctx, false) == nil {
			r.frozen = false
		}
		cancel()
	}
	r.freezeMu.Unlock()
	r.signal(unix.SIGKILL)
}

// freeze sets cgroup.freeze and waits until cgroup.events says it took.
func (g *cgroupV2) freeze(ctx context.Context, frozen bool) error {
	want := map[bool]string{true: "1", false: "0"}[frozen]
	p := filepath.Join(g.path, "cgroup.freeze")
	if err := os.WriteFile(p, []byte(want), 0); err != nil {
		return &fs.PathError{Op: "write", Path: p, Err: err}
	}
	events := filepath.Join(g.path, "cgroup.events")
	return waitFreezer(ctx, events, func() (bool, error) {
		n, err := readKey(events, "frozen")
		return (n == 1) == frozen, err
	})
}

// freeze sets freezer.state and waits until it is no longer FREEZING.
func (g *cgroupV1) freeze(ctx context.Context, frozen bool) error {
	if !slices.Contains(g.controllers, "freezer") {
		return fmt.Errorf("cgroup v1: no freezer hierarchy joined: %w", errors.ErrUnsupported)
	}
	want := map[bool]string{true: "FROZEN", false: "THAWED"}[frozen]
	p := g.path("freezer", "freezer.state")
	if err := os.WriteFile(p, []byte(want), 0); err != nil {
		return &fs.PathError{Op: "write", Path: p, Err: err}
	}
	return waitFreezer(ctx, p, func() (bool, error) {
		b, err := os.ReadFile(p)
		return strings.TrimSpace(string(b)) == want, err
	})
}

// waitFreezer polls done until it is true or ctx ends.
func waitFreezer(ctx context.Context, path string, done func() (bool, error)) error {
	return backoff(ctx, 50*time.Microsecond, 10*time.Millisecond, func() (bool, error) {
		ok, err := done()
		if err != nil {
			return false, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		return ok, nil
	})
}

// thawLeft thaws a cgroup a dead owner left, so that the processes it
// froze get the SIGKILL that their owner's death sent them (a v1 freezer
// holds it) and leave the cgroup for Collect to remove.
func thawLeft(dir string) {
	os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
	os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("0"), 0)
}
