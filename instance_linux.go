package sandbox

import (
	"context"
	"syscall"
)

// instanceSys is an Instance's running sandbox.
type instanceSys struct{ r *running }

// start starts argv (none: idle) in a sandbox as s defines it.
func (s *Sandbox) start(ctx context.Context, argv []string) (instanceSys, error) {
	pl := s.plan(argv)
	pl.watchOutput = true
	pl.limits.freezer = true
	r, err := start(ctx, pl)
	return instanceSys{r}, err
}

func (x instanceSys) exited() <-chan struct{} { return x.r.exited }
func (x instanceSys) result() *Result         { return x.r.result() }
func (x instanceSys) close() error            { return x.r.close(context.Background()) }
func (x instanceSys) network() *NetworkInfo   { return x.r.bridge.info() }

func (x instanceSys) kill()          { x.r.stop() }
func (x instanceSys) attached() bool { return x.r.attached }
func (x instanceSys) running() bool  { return x.r.alive() }

func (x instanceSys) signal(sig syscall.Signal) error { return x.r.signal(sig) }

// hostIDs returns the host's uid and gid of the plan's user.
func (pl *plan) hostIDs() (uid, gid int) {
	if pl.userns == nil {
		return pl.uid, pl.gid
	}
	return pl.userns.uid + pl.uid, pl.userns.gid + pl.gid
}
