package execstub_test

import (
	"os/exec"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/execstub"
)

// BenchmarkExec compares executing a static program directly with
// executing it through the stub: the stub's price per sandbox start.
func BenchmarkExec(b *testing.B) {
	const target = "/bin/busybox"
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			if err := (&exec.Cmd{Path: target, Args: []string{"true"}}).Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stub", func(b *testing.B) {
		fd, err := execstub.Open()
		if err != nil {
			b.Fatal(err)
		}
		defer unix.Close(fd)
		path := "/proc/self/fd/" + strconv.Itoa(fd)
		for b.Loop() {
			if err := (&exec.Cmd{Path: path, Args: []string{target, "true"}}).Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("open", func(b *testing.B) {
		for b.Loop() {
			fd, err := execstub.Open()
			if err != nil {
				b.Fatal(err)
			}
			unix.Close(fd)
		}
	})
}
