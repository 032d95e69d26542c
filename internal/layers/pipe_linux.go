package layers

import (
	"io"
	"sync"
)

// pipeChunk is the size of the buffers a pipeline hands over.
const pipeChunk = 256 << 10

// pipeline reads r on its own goroutine, a few buffers ahead of its
// reader, so that decompressing a layer overlaps writing its files (as
// tar -xz does with two processes). stop ends the goroutine and waits for
// it; call it once the reader is done, on every path.
type pipeline struct {
	full chan []byte
	free chan []byte
	done chan struct{}
	wg   sync.WaitGroup
	err  error // set before full is closed
	cur  []byte
	off  int
}

func newPipeline(r io.Reader) *pipeline {
	p := &pipeline{full: make(chan []byte, 4), free: make(chan []byte, 4), done: make(chan struct{})}
	for range 4 {
		p.free <- make([]byte, pipeChunk)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(p.full)
		for {
			var buf []byte
			select {
			case buf = <-p.free:
			case <-p.done:
				return
			}
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				select {
				case p.full <- buf[:n]:
				case <-p.done:
					return
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				p.err = io.EOF
				return
			}
			if err != nil {
				p.err = err
				return
			}
		}
	}()
	return p
}

func (p *pipeline) Read(b []byte) (int, error) {
	for p.off >= len(p.cur) {
		if p.cur != nil {
			p.free <- p.cur[:cap(p.cur)]
			p.cur = nil
		}
		buf, ok := <-p.full
		if !ok {
			return 0, p.err
		}
		p.cur, p.off = buf, 0
	}
	n := copy(b, p.cur[p.off:])
	p.off += n
	return n, nil
}

func (p *pipeline) stop() {
	close(p.done)
	p.wg.Wait()
}
