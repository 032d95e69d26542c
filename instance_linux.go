package sandbox

import (
	"context"
	"io/fs"
	"syscall"
)

// instanceSys is an Instance's running sandbox.
type instanceSys struct{ r *running }

// start starts argv (none: idle) in a sandbox as s defines it.
func (s *Sandbox) start(ctx context.Context, argv []string) (instanceSys, error) {
	r, err := start(ctx, s.plan(argv))
	return instanceSys{r}, err
}

func (x instanceSys) exited() <-chan struct{} { return x.r.exited }
func (x instanceSys) result() *Result         { return x.r.result() }
func (x instanceSys) close() error            { return x.r.close(context.Background()) }
func (x instanceSys) network() *NetworkInfo   { return x.r.bridge.info() }

// kill ends the sandbox if it still runs, and returns once PID 1 is reaped.
func (x instanceSys) kill() {
	select {
	case <-x.r.exited:
	default:
		x.r.signal(syscall.SIGKILL)
		<-x.r.exited
	}
}

// running reports whether the sandbox's PID 1 still runs.
func (x instanceSys) running() bool {
	select {
	case <-x.r.exited:
		return false
	default:
		return true
	}
}

func (x instanceSys) signal(sig syscall.Signal) error { return x.r.signal(sig) }

// hostIDs returns the host's uid and gid of the sandbox's user.
func (x instanceSys) hostIDs() (uid, gid int) {
	pl := x.r.pl
	if pl.userns == nil {
		return pl.uid, pl.gid
	}
	return pl.userns.uid + pl.uid, pl.userns.gid + pl.gid
}

func (x instanceSys) readFileIn(name string) ([]byte, error) { return x.readFile(name) }

func (x instanceSys) writeFileIn(name string, data []byte, mode fs.FileMode) error {
	uid, gid := x.hostIDs()
	return x.writeFile(name, data, mode, uid, gid)
}

func (x instanceSys) statsIn() (*Stats, error)                       { return x.stats() }
func (x instanceSys) waitPortIn(ctx context.Context, port int) error { return x.waitPort(ctx, port) }

func (x instanceSys) execIn(ctx context.Context, argv []string) (*Result, error) {
	return x.exec(ctx, argv)
}
