package sandbox_test

import (
	"context"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
)

func TestValidate(t *testing.T) {
	root := sandbox.Dir("/srv/root")
	tests := []struct {
		name  string
		sb    *sandbox.Sandbox
		field string // "" means valid
	}{
		{"ok", sandbox.New(root).WithMemory(64 << 20).WithCPU(0.5).WithPids(32), ""},
		{"host root", sandbox.New(sandbox.HostRoot()), ""},
		{"zero memory", sandbox.New(root).WithMemory(0), "memory"},
		{"negative memory", sandbox.New(root).WithMemory(-1), "memory"},
		{"tiny cpu", sandbox.New(root).WithCPU(0.001), "cpu"},
		{"zero pids", sandbox.New(root).WithPids(0), "pids"},
		{"zero timeout", sandbox.New(root).WithTimeout(0), "timeout"},
		{"env without =", sandbox.New(root).WithEnv("FOO"), "env"},
		{"env empty key", sandbox.New(root).WithEnv("=x"), "env"},
		{"relative workdir", sandbox.New(root).WithWorkdir("tmp"), "workdir"},
		{"empty workdir", sandbox.New(root).WithWorkdir(""), "workdir"},
		{"bad hostname", sandbox.New(root).WithHostname("a b"), "hostname"},
		{"long hostname", sandbox.New(root).WithHostname(strings.Repeat("a", 65)), "hostname"},
		{"negative uid", sandbox.New(root).WithUser(-1, 0), "uid"},
		{"negative gid", sandbox.New(root).WithUser(0, -1), "gid"},
		{"negative output limit", sandbox.New(root).WithOutputLimit(-1), "output limit"},
		{"zero network", sandbox.New(root).WithNetwork(sandbox.Network{}), "network"},
		{"publish on every address", sandbox.New(root).WithNetwork(sandbox.Bridge()).WithPublishOn(netip.IPv4Unspecified(), 80, 80), ""},
		{"publish on one port of two addresses", sandbox.New(root).WithNetwork(sandbox.Bridge()).
			WithPublish(80, 80).WithPublishOn(netip.MustParseAddr("192.0.2.1"), 80, 81), ""},
		{"publish on the zero address", sandbox.New(root).WithNetwork(sandbox.Bridge()).WithPublishOn(netip.Addr{}, 80, 80), "publish"},
		{"publish on an IPv6 address", sandbox.New(root).WithNetwork(sandbox.Bridge()).WithPublishUDPOn(netip.IPv6Loopback(), 80, 80), "publish"},
		{"publish on a multicast address", sandbox.New(root).WithNetwork(sandbox.Bridge()).
			WithPublishOn(netip.MustParseAddr("224.0.0.1"), 80, 80), "publish"},
		{"publish on every address and on loopback", sandbox.New(root).WithNetwork(sandbox.Bridge()).
			WithPublishOn(netip.IPv4Unspecified(), 80, 80).WithPublish(80, 81), "publish"},
		{"relative root", sandbox.New(sandbox.Dir("root")), "root"},
		{"root with NUL", sandbox.New(sandbox.Dir("/a\x00b")), "root"},
		{"root with comma and colon", sandbox.New(sandbox.Dir("/a,b:c")), ""},
		{"zero root", sandbox.New(nil), "root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.sb.Validate()
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			var fe *sandbox.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			assert.ErrorIs(t, err, sandbox.ErrInvalidConfig)
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := sandbox.New(sandbox.Dir("rel")).WithMemory(-1).WithPids(-2).WithEnv("X").Validate()
	var ce *sandbox.ConfigError
	require.ErrorAs(t, err, &ce)
	var fields []string
	for _, p := range ce.Problems {
		fields = append(fields, p.Field)
	}
	assert.Equal(t, []string{"root", "memory", "pids", "env"}, fields, "Validate must list every problem, in order")
	assert.EqualError(t, err, "sandbox: invalid configuration: root rel: must be an absolute path; "+
		"memory -1: must be positive; pids -2: must be positive; env X: must be \"KEY=value\"")
}

func TestWithReturnsCopiesAndNeverChangesTheReceiver(t *testing.T) {
	base := sandbox.New(sandbox.Dir("/srv/root")).WithEnv("A=1")
	// Two children appending to the same parent must not share an array.
	a := base.WithEnv("B=2").WithMemory(-1)
	b := base.WithEnv("C=3")
	assert.NoError(t, base.Validate(), "a child's bad value must not reach its parent")
	assert.NoError(t, b.Validate(), "a sibling's bad value must not reach b")
	assert.Error(t, a.Validate())
	assert.NotSame(t, base, a)
	assert.NotSame(t, a, b)
}

func TestRunRejectsInvalidInputBeforeTouchingTheHost(t *testing.T) {
	sb := sandbox.New(sandbox.Dir("relative")).WithMemory(-5)
	//lint:ignore SA1012 a nil ctx is a documented FieldError
	res, err := sb.Run(nil, []string{}...) //nolint:staticcheck
	require.ErrorIs(t, err, sandbox.ErrInvalidConfig)
	assert.Nil(t, res)
	for _, field := range []string{"root", "memory", "ctx", "argv"} {
		assert.Contains(t, err.Error(), field+" ", "Run must name every problem; missing %q", field)
	}
}

func TestRunContextAlreadyDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := sandbox.New(sandbox.HostRoot()).WithTimeout(time.Second).Run(ctx, "/bin/true")
	assert.ErrorIs(t, err, context.Canceled)
	assert.Nil(t, res, "nothing started, so there is no Result")
}

func TestErrorMessagesNameWhatIsWrong(t *testing.T) {
	root := sandbox.Dir("/srv/root")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"empty root", sandbox.New(sandbox.Dir("")).Validate(),
			`root "": must not be empty: Dir needs the absolute path of a root directory`},
		{"file mode", sandbox.New(root).WithFile("/x", nil, 0o4755).Validate(),
			"file /x: mode 04755 may hold only permission bits (0o777): no setuid, setgid or sticky bit, no file type"},
		{"memory too small", sandbox.New(root).WithMemory(4096).Validate(),
			"memory 4096: must be at least 6291456 bytes (6 MiB): less cannot start a program"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.EqualError(t, tt.err, "sandbox: invalid configuration: "+tt.want)
		})
	}
	_, err := sandbox.New(root).Run(t.Context(), "")
	assert.EqualError(t, err, `sandbox: invalid configuration: argv [""]: command must not be empty`)
}

func TestResultString(t *testing.T) {
	tests := []struct {
		res  *sandbox.Result
		want string
	}{
		{&sandbox.Result{}, "exit 0"},
		{&sandbox.Result{ExitCode: 3}, "exit 3"},
		{&sandbox.Result{ExitCode: -1, Signal: syscall.SIGABRT}, "killed by SIGABRT"},
		{&sandbox.Result{ExitCode: -1, Signal: syscall.SIGKILL, TimedOut: true}, "killed by SIGKILL (timed out)"},
		{&sandbox.Result{ExitCode: -1, Signal: syscall.SIGKILL, OOMKilled: true, StdoutTruncated: true}, "killed by SIGKILL (out of memory, output truncated)"},
		{nil, "no result"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.res.String())
	}
}
