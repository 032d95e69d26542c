package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// stdio connects a run's standard descriptors: files the caller gave are
// handed over directly (as duplicates), anything else goes through a pipe
// copied by a goroutine that ends before Run returns.
type stdio struct {
	child  [3]*os.File // the child's ends, closed once it started
	feed   func()      // copies a reader to the program's stdin; not waited for
	copies []func()    // copy the program's output; started once it runs
	wg     sync.WaitGroup
	pipes  []*os.File // the parent's ends, closed by finish or abort
	out    [2]*capture
	watch  *outputWatch // an instance's, for ForOutput; nil for a run
}

// capture keeps the first limit bytes written to it and counts the rest.
type capture struct {
	buf       bytes.Buffer
	limit     int64
	truncated bool
	full      func() // when not nil, called once output passes the limit
}

// Write keeps what fits under the limit and reports all of p written, so
// the program is never blocked by a full capture.
func (c *capture) Write(p []byte) (int, error) {
	room := c.limit - int64(c.buf.Len())
	if int64(len(p)) > room {
		if !c.truncated && c.full != nil {
			c.full()
		}
		c.truncated = true
		c.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (pl *plan) newStdio() (_ *stdio, err error) {
	st := &stdio{}
	if pl.watchOutput {
		st.watch = newOutputWatch()
	}
	defer func() {
		if err != nil {
			st.abort()
		}
	}()
	switch r := pl.stdin.(type) {
	case nil:
		f, err := os.Open(os.DevNull)
		if err != nil {
			return nil, err
		}
		st.child[0] = f
	case *os.File:
		if st.child[0], err = dupFile(r); err != nil {
			return nil, err
		}
	default:
		pr, pw, err := pipe(false)
		if err != nil {
			return nil, err
		}
		st.child[0] = pr
		st.pipes = append(st.pipes, pw)
		st.feed = func() {
			// EPIPE once the program exits without reading all, or
			// os.ErrClosed once finish closed pw: not errors of the run.
			io.Copy(pw, r)
			pw.Close()
		}
	}
	for i, w := range []io.Writer{pl.stdout, pl.stderr} {
		switch w := w.(type) {
		case *os.File:
			if st.child[i+1], err = dupFile(w); err != nil {
				return nil, err
			}
			continue
		case nil:
			st.out[i] = &capture{limit: pl.outputLimit}
		}
		pr, pw, err := pipe(true)
		if err != nil {
			return nil, err
		}
		st.child[i+1] = pw
		st.pipes = append(st.pipes, pr)
		dst := w
		if st.out[i] != nil {
			dst = st.out[i]
		}
		if st.watch != nil {
			dst = io.MultiWriter(dst, st.watch.stream(i))
		}
		st.copies = append(st.copies, func() { io.Copy(dst, pr) })
	}
	return st, nil
}

// onFull has fn called once either captured output passes its limit.
func (st *stdio) onFull(fn func()) {
	for _, c := range st.out {
		if c != nil {
			c.full = fn
		}
	}
}

// pipe makes a pipe whose end for the child blocks, as programs expect of
// their standard descriptors, and whose end for the parent (the read end
// when parentReads) is non-blocking, so that the Go runtime's poller serves
// it. os.Pipe makes both ends non-blocking, and only a side effect of
// File.Fd puts one back; a program whose stdout is non-blocking gets
// EAGAIN when it writes more than the pipe holds.
func pipe(parentReads bool) (r, w *os.File, err error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, &os.SyscallError{Syscall: "pipe2", Err: err}
	}
	parent := fds[1]
	if parentReads {
		parent = fds[0]
	}
	if err := unix.SetNonblock(parent, true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, &os.SyscallError{Syscall: "fcntl", Err: err}
	}
	return os.NewFile(uintptr(fds[0]), "|0"), os.NewFile(uintptr(fds[1]), "|1"), nil
}

// dupFile duplicates f's descriptor, close-on-exec, so the run owns its copy.
func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if errors.Is(err, unix.EBADF) {
		return nil, &os.PathError{Op: "dup", Path: f.Name(), Err: fmt.Errorf("the *os.File was closed before Run used it (close it only once Run has returned): %w", err)}
	}
	if err != nil {
		return nil, &os.PathError{Op: "dup", Path: f.Name(), Err: err}
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

func (st *stdio) childFDs() [3]int {
	var fds [3]int
	for i, f := range st.child {
		fds[i] = int(f.Fd())
	}
	return fds
}

// started closes the child's ends, which the child has duplicated, and
// starts copying.
func (st *stdio) started() {
	for i, f := range st.child {
		f.Close()
		st.child[i] = nil
	}
	for _, c := range st.copies {
		st.wg.Go(c)
	}
	if st.feed != nil {
		go st.feed()
	}
}

// finish waits for the copies to reach the end of the output, which they
// do once every process of the sandbox has exited, and stores what was
// captured in res. It does not wait for the stdin feed, whose reader may
// never end: closing the pipe ends the feed at its next write.
func (st *stdio) finish(res *Result) {
	st.wg.Wait()
	for _, f := range st.pipes {
		f.Close()
	}
	if c := st.out[0]; c != nil {
		res.Stdout, res.StdoutTruncated = c.buf.Bytes(), c.truncated
	}
	if c := st.out[1]; c != nil {
		res.Stderr, res.StderrTruncated = c.buf.Bytes(), c.truncated
	}
}

// finishWithin is finish for a program whose descendants may keep its
// output open after it ended (an Exec's background processes): what they
// write within grace is kept, and then the copies stop.
func (st *stdio) finishWithin(res *Result, grace time.Duration) {
	for _, f := range st.pipes { // a deadline to read changes nothing of stdin's
		f.SetReadDeadline(time.Now().Add(grace))
	}
	st.finish(res)
}

// abort releases everything when the child never started.
func (st *stdio) abort() error {
	var errs []error
	for _, f := range st.child {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	for _, f := range st.pipes {
		f.Close()
	}
	st.child = [3]*os.File{}
	st.pipes = nil
	return errors.Join(errs...)
}

// closeFiles closes every file of fs.
func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
