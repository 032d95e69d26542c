package sandbox_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
)

// A web server in a sandbox with no network but loopback: the host still
// waits for it, and talks to it, from inside its network namespace.
func TestWaitReadyForEveryKindTogether(t *testing.T) {
	sb, _ := busybox(t)
	n, _ := testBridge(t)
	for name, sb := range variants(sb) {
		for _, net := range []sandbox.Network{sandbox.NoNetwork(), n} {
			in := start(t, sb.WithNetwork(net), "/bin/sh", "-c", `mkdir /tmp/www; echo ok > /tmp/www/health
				sleep 0.2; echo "starting server"; httpd -f -p 8080 -h /tmp/www & sleep 0.2; touch /tmp/ready; wait`)
			require.NoError(t, in.WaitReady(testCtx(t),
				sandbox.ForOutput("starting server"),
				sandbox.ForPort(8080),
				sandbox.ForHTTP(8080, "/health").Within(20*time.Second),
				sandbox.ForExec("test", "-f", "/tmp/ready"),
			), "%s %v", name, net)
			b, err := in.ReadFile("/tmp/ready")
			require.NoError(t, err, "%s: ForExec waited for the file", name)
			assert.Empty(t, b)

			c, err := in.Dial(testCtx(t), "tcp", "127.0.0.1:8080")
			require.NoError(t, err, "%s %v", name, net)
			fmt.Fprint(c, "GET /health HTTP/1.0\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			c.Close()
			assert.Equal(t, "ok\n", string(body), "%s %v", name, net)

			err = in.WaitReady(testCtx(t), sandbox.ForOutput("never printed").Within(200*time.Millisecond), sandbox.ForPort(8080))
			assert.ErrorIs(t, err, context.DeadlineExceeded, name)
			assert.ErrorContains(t, err, `output "never printed"`, name)
			err = in.WaitReady(testCtx(t), sandbox.ForHTTP(8080, "/missing").Within(5*time.Second))
			assert.ErrorContains(t, err, "404", "%s: the last answer is in the error", name)
			require.NoError(t, in.Close())
			_, err = in.Dial(testCtx(t), "tcp", "127.0.0.1:8080")
			assert.ErrorIs(t, err, sandbox.ErrClosed)
		}
	}
}

func TestWaitReadyEndsWithTheSandbox(t *testing.T) {
	sb, _ := busybox(t)
	in := start(t, sb, "/bin/sh", "-c", "echo bye; sleep 0.1")
	err := in.WaitReady(testCtx(t), sandbox.ForOutput("hello"))
	assert.ErrorIs(t, err, sandbox.ErrClosed)
	in = start(t, sb.WithStdout(os.Stderr).WithStderr(os.Stderr), "sleep", "10")
	err = in.WaitReady(testCtx(t), sandbox.ForOutput("hello"))
	assert.ErrorContains(t, err, "*os.File", "output handed over as files cannot be watched")
	err = in.WaitReady(testCtx(t), sandbox.ForPort(0), sandbox.ForHTTP(80, "health"), sandbox.ForExec(), sandbox.Ready{})
	var ce *sandbox.ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Len(t, ce.Problems, 4)
}
