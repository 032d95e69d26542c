package sandbox_test

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
)

// randomSandbox builds a definition from a random choice of the settings
// that have an OCI form.
func randomSandbox(rng *rand.Rand) *sandbox.Sandbox {
	root := sandbox.Dir(fmt.Sprintf("/srv/root%d", rng.IntN(5)))
	if rng.IntN(4) == 0 {
		root = sandbox.HostRoot()
	}
	sb := sandbox.New(root)
	pick := func() bool { return rng.IntN(2) == 0 }
	if pick() {
		sb = sb.WithMemory(int64(8+rng.IntN(1000)) << 20)
	}
	if pick() {
		sb = sb.WithCPU(sandbox.Cores(float64(1+rng.IntN(40)) / 10))
	}
	if pick() {
		sb = sb.WithPids(1 + rng.IntN(500))
	}
	if pick() {
		sb = sb.WithEnv(fmt.Sprintf("A%d=%d", rng.IntN(9), rng.IntN(99)), "PATH=/bin")
	}
	if pick() {
		sb = sb.WithWorkdir(fmt.Sprintf("/w/%d", rng.IntN(9)))
	}
	if pick() {
		sb = sb.WithHostname(fmt.Sprintf("h%d", rng.IntN(99)))
	}
	if pick() {
		sb = sb.WithUser(rng.IntN(2000), rng.IntN(2000))
	}
	if pick() {
		sb = sb.WithNetwork(sandbox.HostNetwork())
	}
	for range rng.IntN(3) {
		var opts []sandbox.MountOption
		if pick() {
			opts = append(opts, sandbox.ReadOnly)
		}
		sb = sb.WithBind(fmt.Sprintf("/host/%d", rng.IntN(99)), fmt.Sprintf("/mnt/b%d", rng.IntN(99)), opts...)
	}
	if pick() {
		sb = sb.WithTmpfs(fmt.Sprintf("/t%d", rng.IntN(9)), int64(1+rng.IntN(64))<<20)
	}
	if pick() {
		sb = sb.WithScratchSize(int64(1+rng.IntN(64)) << 20)
	}
	if pick() {
		sb = sb.WithReadOnlyRoot()
	}
	if pick() {
		sb = sb.WithWritableProc()
	}
	if pick() {
		sb = sb.WithInit(false)
	}
	if pick() {
		sb = sb.WithCapabilities(sandbox.DefaultCapabilities()[:rng.IntN(len(sandbox.DefaultCapabilities()))]...)
	}
	if pick() {
		sb = sb.WithRlimit(sandbox.Rlimit(rng.IntN(16)), 10, 20)
	}
	switch rng.IntN(3) {
	case 0:
		sb = sb.WithSeccomp(nil)
	case 1:
		sb = sb.WithSeccomp(sandbox.DefaultSeccompProfile().Deny("mkdir").Allow("perf_event_open"))
	}
	if pick() {
		sb = sb.WithUserNamespace()
	}
	if pick() {
		sb = sb.WithCgroupPath(fmt.Sprintf("/k8s/pod%d/c%d", rng.IntN(9), rng.IntN(9)))
	}
	return sb
}

// randomSpecChange changes a spec in ways only a spec can say: the five
// capability sets, no_new_privs off, a message queue mount.
func randomSpecChange(rng *rand.Rand, s *specs.Spec) {
	all := sandbox.DefaultCapabilities()
	some := func() []string {
		var out []string
		for _, c := range all {
			if rng.IntN(2) == 0 {
				out = append(out, c)
			}
		}
		slices.Sort(out)
		return out
	}
	if rng.IntN(2) == 0 {
		c := s.Process.Capabilities
		c.Effective, c.Permitted, c.Inheritable, c.Ambient = some(), some(), some(), some()
	}
	if rng.IntN(2) == 0 {
		s.Process.NoNewPrivileges = false
	}
	if rng.IntN(2) == 0 {
		s.Process.User.AdditionalGids = []uint32{uint32(rng.IntN(100)), 1000}
		adj := rng.IntN(2001) - 1000
		s.Process.OOMScoreAdj = &adj
	}
	if rng.IntN(2) == 0 {
		s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": fmt.Sprint(rng.IntN(1 << 20))}
		s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, fmt.Sprintf("/secret%d", rng.IntN(9)))
		s.Linux.ReadonlyPaths = append(s.Linux.ReadonlyPaths, "/etc")
	}
	if rng.IntN(2) == 0 {
		mode := fs.FileMode(0o600)
		var uid, gid uint32 = 0, 5
		s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/net/tun", Type: "c", Major: 10, Minor: 200, FileMode: &mode, UID: &uid, GID: &gid}}
	}
	if rng.IntN(2) == 0 {
		shares, major, minor := uint64(2+rng.IntN(1000)), int64(10), int64(229)
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		s.Linux.Resources.CPU = &specs.LinuxCPU{Shares: &shares, Cpus: "0"}
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Access: "rwm"}, {Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rwm"}}
	}
	if len(s.Linux.UIDMappings) == 0 && rng.IntN(2) == 0 {
		for i, ns := range s.Linux.Namespaces {
			if ns.Type == specs.IPCNamespace || ns.Type == specs.UTSNamespace || ns.Type == specs.PIDNamespace || ns.Type == specs.MountNamespace {
				s.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/%s", 100+rng.IntN(900), ns.Type)
			}
		}
	}
	if len(s.Linux.GIDMappings) == 1 && rng.IntN(2) == 0 {
		s.Linux.GIDMappings[0].Size = uint32(2000 + rng.IntN(3000)) // uids and gids of different sizes
	}
	if rng.IntN(2) == 0 {
		s.Linux.RootfsPropagation = []string{"shared", "rshared", "slave", "rslave", "unbindable", "runbindable"}[rng.IntN(6)]
	}
	for i := range rng.IntN(3) {
		// What only a spec's binds and tmpfs mounts say, in the order
		// Spec writes their options.
		pick := func(of ...string) []string {
			if v := of[rng.IntN(len(of))]; v != "" {
				return []string{v}
			}
			return nil
		}
		var opts []string
		opts = append(opts, pick("", "ro")...)
		opts = append(opts, pick("", "noexec")...)
		opts = append(opts, pick("", "strictatime", "noatime", "relatime")...)
		opts = append(opts, pick("", "nodiratime")...)
		prop := pick("", "private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable")
		if rng.IntN(2) == 0 {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: fmt.Sprintf("/opt/b%d", i), Type: "bind", Source: "/srv/data",
				Options: slices.Concat([]string{"rbind", "nosuid", "nodev"}, opts, prop)})
			continue
		}
		opts = append(opts, pick("", "mode=755", "mode=1777", "mode=700")...)
		s.Mounts = append(s.Mounts, specs.Mount{Destination: fmt.Sprintf("/opt/t%d", i), Type: "tmpfs", Source: pick("tmpfs", "shm", "none")[0],
			Options: slices.Concat([]string{"nosuid", "nodev"}, opts, []string{fmt.Sprint("size=", 1+rng.IntN(1<<20))}, prop)})
	}
	if rng.IntN(2) == 0 {
		s.Mounts = slices.DeleteFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/tmp" })
	}
	if rng.IntN(2) == 0 {
		// After /dev/shm, where a sandbox mounts it.
		i := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/dev/shm" })
		s.Mounts = slices.Insert(s.Mounts, i+1, specs.Mount{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "nodev", "noexec"}})
	}
}

func TestSpecFromSpecRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 2))
	for i := range 300 {
		sb := randomSandbox(rng)
		if sb.Validate() != nil {
			continue
		}
		want, err := sb.Spec("/bin/true")
		require.NoError(t, err)
		randomSpecChange(rng, want)
		back, err := sandbox.FromSpec(want, "/bundle")
		require.NoError(t, err, "case %d: FromSpec", i)
		got, err := back.Spec("/bin/true")
		require.NoError(t, err)
		for _, c := range []*specs.LinuxCapabilities{want.Process.Capabilities, got.Process.Capabilities} {
			for _, set := range []*[]string{&c.Bounding, &c.Effective, &c.Permitted, &c.Inheritable, &c.Ambient} {
				slices.Sort(*set) // a set: its order does not count
			}
		}
		require.Equal(t, want, got, "case %d: a spec → FromSpec → Spec must be lossless for what FromSpec honours", i)
	}
}

func TestSpecRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 1))
	for i := range 300 {
		sb := randomSandbox(rng)
		if sb.Validate() != nil {
			continue // e.g. a user outside a user namespace's map
		}
		argv := []string{"/bin/sh", "-c", fmt.Sprint("exit ", i)}
		want, err := sb.Spec(argv...)
		require.NoError(t, err, "case %d: Spec", i)
		back, err := sandbox.FromSpec(want, "/bundle")
		require.NoError(t, err, "case %d: FromSpec of Spec's output", i)
		got, err := back.Spec(argv...)
		require.NoError(t, err, "case %d: Spec of FromSpec's definition", i)
		require.Equal(t, want, got, "case %d: Spec → FromSpec → Spec must be lossless", i)
	}
}

func TestFromSpecRefusesWhatItDoesNotHonour(t *testing.T) {
	base := func() *specs.Spec {
		s, err := sandbox.New(sandbox.Dir("/srv/root")).Spec("true")
		require.NoError(t, err)
		return s
	}
	adj := 5000
	tests := []struct {
		name   string
		change func(*specs.Spec)
		field  string
	}{
		{"host sysctl", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"kernel.panic": "1"} }, "linux.sysctl.kernel.panic"},
		{"relative pid namespace path", func(s *specs.Spec) { s.Linux.Namespaces[0].Path = "proc/1/ns/pid" }, "linux.namespaces[0].path"},
		{"relative mount namespace path", func(s *specs.Spec) { s.Linux.Namespaces[1].Path = "proc/1/ns/mnt" }, "linux.namespaces[1].path"},
		{"user namespace joining", func(s *specs.Spec) {
			s.Linux.Namespaces[2].Path = "/proc/1/ns/uts"
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}}
		}, "linux.namespaces"},
		{"time namespace", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
		}, "linux.namespaces[6].type"},
		{"hooks", func(s *specs.Spec) { s.Hooks = &specs.Hooks{Poststop: []specs.Hook{{Path: "/bin/true"}}} }, "hooks.poststop[0].path"},
		{"oom score", func(s *specs.Spec) { s.Process.OOMScoreAdj = &adj }, "process.oomScoreAdj"},
		{"apparmor", func(s *specs.Spec) { s.Process.ApparmorProfile = "x" }, "process.apparmorProfile"},
		{"terminal", func(s *specs.Spec) { s.Process.Terminal = true }, "process.terminal"},
		{"suid bind", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind", "suid"}})
		}, "mounts[6].options"},
		{"propagation with a value", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind", "shared=1"}})
		}, "mounts[6].options"},
		{"tmpfs mode", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "tmpfs", Source: "tmpfs", Options: []string{"mode=u+rwx"}})
		}, "mounts[6].options"},
		{"cgroup mount", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup"})
		}, "mounts[6].type"},
		{"device outside /dev", func(s *specs.Spec) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/etc/fuse", Type: "c", Major: 10, Minor: 229}}
		}, "linux.devices[0].path"},
		{"personality", func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32} }, "linux.personality.domain"},
		{"systemd cgroup", func(s *specs.Spec) { s.Linux.CgroupsPath = "system.slice:sandboxkit:abc" }, "linux.cgroupsPath"},
		{"unknown capability", func(s *specs.Spec) { s.Process.Capabilities.Ambient = []string{"CAP_NO_SUCH"} }, "process.capabilities.ambient"},
		{"version", func(s *specs.Spec) { s.Version = "2.0.0" }, "ociVersion"},
		{"seccomp op", func(s *specs.Spec) {
			s.Linux.Seccomp.Syscalls[0].Args = []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpGreaterThan}}
		}, "linux.seccomp.syscalls[0].args[0].op"},
		{"cgroup v2 files", func(s *specs.Spec) {
			s.Linux.Resources = &specs.LinuxResources{Unified: map[string]string{"memory.high": "1M"}}
		}, "linux.resources.unified.memory.high"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base()
			tt.change(s)
			_, err := sandbox.FromSpec(s, "/bundle")
			require.ErrorIs(t, err, sandbox.ErrInvalidConfig, "FromSpec with %s: want a ConfigError", tt.name)
			var ce *sandbox.ConfigError
			require.True(t, errors.As(err, &ce))
			var fields []string
			for _, p := range ce.Problems {
				fields = append(fields, p.Field)
			}
			assert.Contains(t, fields, tt.field, "FromSpec with %s: the error must name the field (got %v)", tt.name, err)
		})
	}
}

func TestFromSpecAcceptsVersionsAndRelativeRoot(t *testing.T) {
	for _, v := range []string{"1.0.0", "1.0.2-dev", "1.1.0", "1.2.1", "1.3.0"} {
		s, err := sandbox.New(sandbox.Dir("/srv/root")).Spec("true")
		require.NoError(t, err)
		s.Version = v
		s.Root.Path = "rootfs"
		sb, err := sandbox.FromSpec(s, "/bundle")
		require.NoError(t, err, "FromSpec with ociVersion %s", v)
		back, err := sb.Spec("true")
		require.NoError(t, err)
		assert.Equal(t, "/bundle/rootfs", back.Root.Path, "a relative root is the bundle's")
	}
}

func TestWriteBundle(t *testing.T) {
	dir := t.TempDir()
	sb := sandbox.New(sandbox.Dir("/srv/root")).WithMemory(64 << 20)
	require.NoError(t, sb.WriteBundle(dir, "echo", "hi"))
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	require.NoError(t, err)
	assert.True(t, strings.Contains(string(b), `"limit": 67108864`), "config.json holds the memory limit")
	_, err = sandbox.New(sandbox.Dir("/srv/root")).WithNetwork(sandbox.Bridge()).Spec("true")
	assert.ErrorIs(t, err, sandbox.ErrInvalidConfig, "a Bridge has no OCI form")
}
