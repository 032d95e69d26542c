package sandbox

import (
	"bytes"
	"context"
	"errors"
	"net"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// watchKeep bounds what outputWatch keeps of each stream: the newest half
// of it stays when it would grow past.
const watchKeep = 1 << 20

// outputWatch sees an instance's output as it is copied, for ForOutput.
type outputWatch struct {
	mu      sync.Mutex
	streams [2][]byte     // guarded by mu; stdout and stderr, the newest watchKeep bytes
	changed chan struct{} // guarded by mu; closed, and replaced, at each write
	visible int           // how many streams the watch sees (not handed over as files)
}

func newOutputWatch() *outputWatch { return &outputWatch{changed: make(chan struct{})} }

// stream returns the writer of stream i (0 stdout, 1 stderr).
func (w *outputWatch) stream(i int) *watchStream {
	w.visible++
	return &watchStream{w: w, i: i}
}

type watchStream struct {
	w *outputWatch
	i int
}

func (s *watchStream) Write(p []byte) (int, error) {
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	b := append(w.streams[s.i], p...)
	if len(b) > watchKeep {
		b = append(b[:0:0], b[len(b)-watchKeep/2:]...)
	}
	w.streams[s.i] = b
	close(w.changed)
	w.changed = make(chan struct{})
	return len(p), nil
}

// seen reports whether text appeared in a stream, and returns the channel
// closed at the next write.
func (w *outputWatch) seen(text []byte) (bool, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Contains(w.streams[0], text) || bytes.Contains(w.streams[1], text), w.changed
}

// errOutputUnseen: ForOutput of a sandbox whose output goes to files.
var errOutputUnseen = errors.New("the program's stdout and stderr are *os.File, handed to it directly: the host never sees them")

// waitOutput returns once text appeared in the program's output.
func (x instanceSys) waitOutput(ctx context.Context, text string) error {
	w := x.r.io.watch
	if w == nil || w.visible == 0 {
		return errOutputUnseen
	}
	for {
		ok, changed := w.seen([]byte(text))
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-x.r.exited:
			if ok, _ := w.seen([]byte(text)); ok {
				return nil
			}
			return ErrClosed
		}
	}
}

// dial connects from inside the sandbox's network namespace: a socket
// belongs to the namespace of the thread that made it, so a thread of
// this process enters the namespace (through PID 1's pidfd, which names
// no other process), makes and connects the socket, and goes back. A
// thread that could not go back is discarded by the runtime.
func (x instanceSys) dial(ctx context.Context, network, address string) (net.Conn, error) {
	type dialed struct {
		c   net.Conn
		err error
	}
	done := make(chan dialed, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- dialed{err: err}
			return
		}
		defer unix.Close(home)
		if err := unix.Setns(x.r.proc.PIDFD, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			if errors.Is(err, unix.ESRCH) {
				err = ErrClosed
			}
			done <- dialed{err: err}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- dialed{c, err}
	}()
	r := <-done
	return r.c, r.err
}
