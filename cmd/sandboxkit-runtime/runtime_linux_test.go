package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/state"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// vmBinary is where vmtest/run.sh puts the runtime in its VM, which has
// no Go to build it.
const vmBinary = "/vmtest/bin/sandboxkit-runtime"

// binary builds sandboxkit-runtime once per test binary (in the cgroup v2
// VM lane: the one run.sh built).
var binary = sync.OnceValues(func() (string, error) {
	if os.Getenv("VMTEST") == "1" {
		return vmBinary, nil
	}
	dir, err := os.MkdirTemp("", "sandboxkit-runtime-test")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sandboxkit-runtime")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &exec.ExitError{Stderr: out}
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := binary(); err == nil && bin != vmBinary {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

// rt is the runtime under one --root, as a test drives it.
type rt struct {
	t    *testing.T
	bin  string
	root string
}

func newRT(t *testing.T) *rt {
	t.Helper()
	testutil.RequireRoot(t)
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("no gated exec stub for " + runtime.GOARCH)
	}
	bin, err := binary()
	require.NoError(t, err, "go build ./cmd/sandboxkit-runtime")
	r := &rt{t: t, bin: bin, root: t.TempDir()}
	t.Cleanup(func() {
		// Whatever a test left, and then the check that nothing is.
		ids, _ := os.ReadDir(r.root)
		for _, id := range ids {
			r.run("delete", "--force", id.Name())
		}
		ids, _ = os.ReadDir(r.root)
		assert.Empty(t, ids, "the runtime's root must be empty after delete")
	})
	return r
}

// run runs the runtime with args and returns its stdout, stderr and error.
func (r *rt) run(args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(r.bin, append([]string{"--root", r.root}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// must runs the runtime and fails the test if it fails.
func (r *rt) must(args ...string) string {
	r.t.Helper()
	out, stderr, err := r.run(args...)
	require.NoError(r.t, err, "sandboxkit-runtime %q: %s", args, stderr)
	return out
}

func (r *rt) state(id string) specs.State {
	r.t.Helper()
	var st specs.State
	require.NoError(r.t, json.Unmarshal([]byte(r.must("state", id)), &st))
	return st
}

// waitStatus waits up to 10s for the container to reach status.
func (r *rt) waitStatus(id, status string) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.state(id).Status != specs.ContainerState(status) {
		require.True(r.t, time.Now().Before(deadline), "container %s never became %s", id, status)
		time.Sleep(5 * time.Millisecond)
	}
}

// bundle writes a bundle running argv under the default runtime-tools
// settings that matter (all five capability sets, no_new_privs off) and
// returns its directory; change edits its spec first.
func bundle(t *testing.T, change func(*specs.Spec), argv ...string) string {
	t.Helper()
	dir := t.TempDir()
	root := testutil.Rootfs(t)
	spec, err := sandbox.New(sandbox.Dir(root)).WithHostname("oci-test").Spec(argv...)
	require.NoError(t, err)
	c := spec.Process.Capabilities
	c.Inheritable, c.Ambient = c.Bounding, c.Bounding
	spec.Process.NoNewPrivileges = false
	if change != nil {
		change(spec)
	}
	b, err := json.Marshal(spec)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644))
	return dir
}

// memoryDir is the cgroup path's directory in the hierarchy of the memory
// controller: the one hierarchy of a v2 host, or v1's memory one.
func memoryDir(path string) string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return "/sys/fs/cgroup" + path
	}
	return "/sys/fs/cgroup/memory" + path
}

// id returns a fresh container ID.
func id() string { return "test-" + state.RandomID(6) }

// output returns the container's stdout so far, which create connected
// to the file out.
func output(t *testing.T, out string) string {
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	return string(b)
}

// create runs create with the container's stdout going to a file, and
// returns that file's path.
func (r *rt) create(id, bundle string, extra ...string) string {
	r.t.Helper()
	out := filepath.Join(r.t.TempDir(), "stdout")
	f, err := os.Create(out)
	require.NoError(r.t, err)
	defer f.Close()
	// A file for stderr too: the container keeps create's stdio, and a
	// pipe would hold the wait for create until the container ends.
	e, err := os.Create(out + ".err")
	require.NoError(r.t, err)
	defer e.Close()
	cmd := exec.Command(r.bin, append(append([]string{"--root", r.root, "create", "--bundle", bundle}, extra...), id)...)
	cmd.Stdout, cmd.Stderr = f, e
	err = cmd.Run()
	msg, _ := os.ReadFile(out + ".err")
	require.NoError(r.t, err, "create: %s", msg)
	return out
}

func TestLifecycleCreateStartStateKillDelete(t *testing.T) {
	r := newRT(t)
	cid := id()
	dir := bundle(t, nil, "/bin/sh", "-c", "echo started; exec sleep 60")
	pidFile := filepath.Join(t.TempDir(), "pid")
	out := r.create(cid, dir, "--pid-file", pidFile)

	// create has exited: the container outlives it, blocked before its
	// program.
	st := r.state(cid)
	assert.Equal(t, specs.StateCreated, st.Status, "state after create")
	assert.Equal(t, dir, st.Bundle)
	pid, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(st.Pid), string(pid), "the pid file holds the container's PID")
	assert.Empty(t, output(t, out), "nothing runs before start")
	cg, err := os.ReadFile("/proc/" + string(pid) + "/cgroup")
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		assert.True(t, strings.HasSuffix(line, ":/oci.sandboxkit/"+cid), "in its cgroup path on every hierarchy: %s", line)
	}

	r.must("start", cid)
	r.waitStatus(cid, "running")
	deadline := time.Now().Add(5 * time.Second)
	for output(t, out) == "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	assert.Equal(t, "started\n", output(t, out), "the program ran after start, its stdout the one create had")
	_, stderr, err := r.run("start", cid)
	assert.Error(t, err, "a second start fails")
	assert.Contains(t, stderr, "running")

	_, stderr, err = r.run("delete", cid)
	assert.Error(t, err, "delete of a running container without --force fails")
	assert.Contains(t, stderr, "not stopped")

	r.must("kill", cid, "TERM") // sleep, PID 1, has no handler: ignored
	r.must("kill", cid, "9")
	r.waitStatus(cid, "stopped")
	_, stderr, err = r.run("kill", cid, "SIGKILL")
	assert.Error(t, err)
	assert.Contains(t, stderr, "container not running", "kill of a stopped container: containerd matches runc's text")

	r.must("delete", cid)
	_, stderr, err = r.run("state", cid)
	assert.Error(t, err)
	assert.Contains(t, stderr, "does not exist", "state after delete: containerd matches runc's text")
	_, err = os.Stat(memoryDir("/oci.sandboxkit/" + cid))
	assert.ErrorIs(t, err, os.ErrNotExist, "delete removed the cgroup")
	_, err = os.Stat(memoryDir("/oci.sandboxkit"))
	assert.ErrorIs(t, err, os.ErrNotExist, "and the runtime's parent cgroup, empty")
}

func TestDeleteForceKillsARunningContainer(t *testing.T) {
	r := newRT(t)
	cid := id()
	r.create(cid, bundle(t, nil, "/bin/sleep", "60"))
	r.must("start", cid)
	r.must("delete", "--force", cid)
	_, stderr, err := r.run("delete", cid)
	assert.Error(t, err)
	assert.Contains(t, stderr, "does not exist")
}

func TestDeleteOfACreatedContainer(t *testing.T) {
	r := newRT(t)
	cid := id()
	r.create(cid, bundle(t, nil, "/bin/true"))
	pid := r.state(cid).Pid
	_, stderr, err := r.run("delete", cid)
	assert.Error(t, err, "delete of a created container: the runtime-spec wants an error")
	assert.Contains(t, stderr, "not stopped")
	r.must("delete", "--force", cid)
	_, err = os.Stat("/proc/" + strconv.Itoa(pid) + "/cmdline")
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	assert.True(t, err != nil || strings.Contains(string(b), ") Z "), "the created container's process is gone")
}

func TestRunReturnsTheExitStatus(t *testing.T) {
	r := newRT(t)
	cmd := exec.Command(r.bin, "--root", r.root, "run", "--bundle", bundle(t, nil, "/bin/sh", "-c", "echo out; exit 3"), id())
	out, err := cmd.Output()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 3, ee.ExitCode(), "run exits with the container's status")
	assert.Equal(t, "out\n", string(out), "run passes stdio through")
}

func TestKillAllAndSignalNames(t *testing.T) {
	r := newRT(t)
	cid := id()
	r.create(cid, bundle(t, nil, "/bin/sh", "-c", "trap 'exit 7' USR1; sleep 60 & wait"))
	r.must("start", cid)
	r.waitStatus(cid, "running")
	time.Sleep(100 * time.Millisecond) // for the trap to be set
	_, stderr, err := r.run("kill", cid, "NOSUCH")
	assert.Error(t, err)
	assert.Contains(t, stderr, "unknown")
	r.must("kill", cid, "SIGUSR1")
	r.waitStatus(cid, "stopped")
	r.must("delete", cid)

	cid = id()
	r.create(cid, bundle(t, nil, "/bin/sh", "-c", "sleep 60 & sleep 60; true"))
	r.must("start", cid)
	r.waitStatus(cid, "running")
	var pids []int
	deadline := time.Now().Add(5 * time.Second)
	for len(pids) < 3 && time.Now().Before(deadline) {
		pids = nil
		require.NoError(t, json.Unmarshal([]byte(r.must("ps", "--format", "json", cid)), &pids))
	}
	assert.Len(t, pids, 3, "ps lists sh and its two sleeps")
	r.must("kill", "--all", cid, "KILL")
	r.waitStatus(cid, "stopped")
}

func TestCreateRefusesWhatItCannotHonour(t *testing.T) {
	r := newRT(t)
	tests := []struct {
		name   string
		change func(*specs.Spec)
		want   string
	}{
		{"unknown capability (process_capabilities_fail)", func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_TEST")
		}, "CAP_TEST"},
		{"unknown rlimit (process_rlimits_fail)", func(s *specs.Spec) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_TEST", Soft: 1, Hard: 1})
		}, "RLIMIT_TEST"},
		{"soft above hard", func(s *specs.Spec) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_NPROC", Soft: 20, Hard: 10})
		}, "soft limit must not exceed hard limit"},
		{"the host's mount namespace", func(s *specs.Spec) {
			s.Linux.Namespaces[1].Path = "/proc/self/ns/mnt" // the runtime's own: pivot_root would re-root the host
		}, "/proc/self/ns/mnt: it is the host's"},
		{"systemd cgroup", func(s *specs.Spec) { s.Linux.CgroupsPath = "machine.slice:libpod:abc" }, "needs systemd"},
		{"sysctl", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"kernel.domainname": "x"} }, "linux.sysctl"},
		{"version", func(s *specs.Spec) { s.Version = "0.9.0" }, "ociVersion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cid := id()
			_, stderr, err := r.run("create", "--bundle", bundle(t, tt.change, "/bin/true"), cid)
			require.Error(t, err, "create with %s must fail", tt.name)
			assert.Contains(t, stderr, tt.want)
			_, stderr, _ = r.run("state", cid)
			assert.Contains(t, stderr, "does not exist", "a failed create leaves nothing")
		})
	}
}

func TestContainerSeesItsSpec(t *testing.T) {
	r := newRT(t)
	script := strings.Join([]string{
		"hostname",
		"grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status",
		"echo masked=$(cat /etc/hostname)",
		"echo x > /proc/sys/kernel/domainname 2>/dev/null || echo sys-ro",
		"touch /etc/x 2>/dev/null || echo etc-ro",
		"mkdir /tmp/d 2>/dev/null || echo mkdir-denied",
		"ulimit -n",
		"grep -c mqueue /proc/self/mountinfo",
		"grep NoNewPrivs /proc/self/status",
	}, "; ")
	dir := bundle(t, func(s *specs.Spec) {
		s.Linux.Seccomp.Syscalls = append([]specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}}, s.Linux.Seccomp.Syscalls...)
		s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 99, Hard: 99}}
		s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, "/etc/hostname")
		s.Linux.ReadonlyPaths = append(s.Linux.ReadonlyPaths, "/etc")
		s.Mounts = append(s.Mounts[:4], append([]specs.Mount{{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue"}}, s.Mounts[4:]...)...)
	}, "/bin/sh", "-c", script)
	cmd := exec.Command(r.bin, "--root", r.root, "run", "--bundle", dir, id())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "run: %s", out)
	got := string(out)
	assert.Contains(t, got, "oci-test\n", "hostname")
	for _, set := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		assert.Regexp(t, set+`:\s+00000000a80425fb`, got, "the default capabilities in the %s set", set)
	}
	assert.Contains(t, got, "masked=\n", "the spec's masked path is empty (linux_masked_paths)")
	assert.Contains(t, got, "sys-ro", "the sandbox's read-only kernel files")
	assert.Contains(t, got, "etc-ro", "the spec's read-only path (linux_readonly_paths)")
	assert.Contains(t, got, "mkdir-denied", "the spec's seccomp profile (linux_seccomp)")
	assert.Contains(t, got, "\n99\n", "rlimit")
	assert.Contains(t, got, "\n1\n", "the mqueue mount")
	assert.Regexp(t, `NoNewPrivs:\s+0`, got, "noNewPrivileges false")
}

func TestContainerMountsAsTheSpecSays(t *testing.T) {
	r := newRT(t)
	// A shared mount of the host as the binds' source, so that a slave
	// has a master to show.
	src := t.TempDir()
	require.NoError(t, unix.Mount("tmpfs", src, "tmpfs", 0, "size=1m"))
	t.Cleanup(func() { unix.Unmount(src, unix.MNT_DETACH) })
	require.NoError(t, unix.Mount("", src, "", unix.MS_SHARED, ""))
	mi, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	group := regexp.MustCompile(`(?m)^\S+ \S+ \S+ \S+ ` + regexp.QuoteMeta(src) + ` \S+ shared:(\d+) - `).FindStringSubmatch(string(mi))
	require.NotNil(t, group, "the host's tmpfs at %s is shared", src)

	// As the runtime-tools mounts file has them.
	opts := []string{"nosuid", "strictatime", "mode=755", "size=1k"}
	mounts := []specs.Mount{
		{Destination: "/p/t-shared", Type: "tmpfs", Source: "tmpfs", Options: append(slices.Clone(opts), "shared")},
		{Destination: "/p/t-slave", Type: "tmpfs", Source: "tmpfs", Options: append(slices.Clone(opts), "slave")},
		{Destination: "/p/t-private", Type: "tmpfs", Source: "shm", Options: append(slices.Clone(opts), "private")},
		{Destination: "/p/b-slave", Source: src, Options: append(slices.Clone(opts), "bind", "slave")},
		{Destination: "/p/b-rshared", Source: src, Options: append(slices.Clone(opts), "rbind", "rshared")},
		{Destination: "/p/b-unbindable", Source: src, Options: append(slices.Clone(opts), "bind", "unbindable")},
	}
	// Each mount under /p in mountinfo's order: its point, its source and
	// its propagation fields.
	script := `awk -F' - ' '{n = split($1, a, " "); split($2, b, " "); o = ""; for (i = 7; i <= n; i++) o = o " " a[i]; if (a[5] ~ /^\/p\//) print a[5], b[2] o}' /proc/self/mountinfo`
	dir := bundle(t, func(s *specs.Spec) { s.Mounts = append(s.Mounts, mounts...) }, "/bin/sh", "-c", script)
	out, err := exec.Command(r.bin, "--root", r.root, "run", "--bundle", dir, id()).CombinedOutput()
	require.NoError(t, err, "run: %s", out)
	g := group[1]
	want := "^/p/t-shared tmpfs shared:[0-9]+\n/p/t-slave tmpfs\n/p/t-private shm\n" +
		"/p/b-slave tmpfs master:" + g + "\n/p/b-rshared tmpfs shared:[0-9]+ master:" + g + "\n/p/b-unbindable tmpfs unbindable\n$"
	assert.Regexp(t, want, string(out), "the spec's mounts in its order, with their sources and propagation (host peer group %s)", g)
	assert.NotContains(t, string(out), "shared:"+g+"\n", "no mount of the sandbox is a peer of the host's")
}

func TestContainerJoinsNamespacesByPath(t *testing.T) {
	r := newRT(t)
	holder := exec.Command("unshare", "--net", "--ipc", "--uts", "--fork", "sleep", "60")
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // unshare's child too, at the end
	require.NoError(t, holder.Start())
	t.Cleanup(func() { syscall.Kill(-holder.Process.Pid, syscall.SIGKILL); holder.Wait() })
	// unshare forks: the namespaces are its child's, which appears soon.
	var child string
	deadline := time.Now().Add(5 * time.Second)
	for child == "" && time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", holder.Process.Pid, holder.Process.Pid))
		child = strings.TrimSpace(string(b))
		time.Sleep(5 * time.Millisecond)
	}
	require.NotEmpty(t, child, "unshare's child")
	cid := id()
	kinds := map[specs.LinuxNamespaceType]string{specs.NetworkNamespace: "net", specs.IPCNamespace: "ipc", specs.UTSNamespace: "uts"}
	r.create(cid, bundle(t, func(s *specs.Spec) {
		for i, ns := range s.Linux.Namespaces {
			if k, ok := kinds[ns.Type]; ok {
				s.Linux.Namespaces[i].Path = "/proc/" + child + "/ns/" + k
			}
		}
		if !slices.ContainsFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.NetworkNamespace }) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/" + child + "/ns/net"})
		}
	}, "/bin/sleep", "60"))
	pid := r.state(cid).Pid
	for _, k := range []string{"net", "ipc", "uts"} {
		want, err := os.Readlink("/proc/" + child + "/ns/" + k)
		require.NoError(t, err)
		got, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, k))
		require.NoError(t, err)
		assert.Equal(t, want, got, "the container is in the %s namespace its spec names", k)
	}
	mine, _ := os.Readlink("/proc/self/ns/pid")
	theirs, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	assert.NotEqual(t, mine, theirs, "its PID namespace is its own")
	r.must("delete", "--force", cid)
}

// A pod's containers share its PID namespace (and may be given a mount
// namespace): create joins both by path. The program sees the pod's init
// as PID 1 and is not it, and its root is set up among the joined mount
// namespace's mounts (a tmpfs the holder mounted below the bundle's root
// shows inside, through the recursive bind of the root).
func TestContainerJoinsPIDAndMountNamespacesByPath(t *testing.T) {
	r := newRT(t)
	cid := id()
	var holder *exec.Cmd
	var child string
	dir := bundle(t, func(s *specs.Spec) {
		root := s.Root.Path
		require.NoError(t, os.Mkdir(filepath.Join(root, "marker"), 0o755))
		holder = exec.Command("unshare", "--pid", "--mount", "--fork", "sh", "-c",
			"mount -t tmpfs -o size=64k marker "+root+"/marker && echo pod-mount > "+root+"/marker/file && exec sleep 60")
		holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // unshare's child too, at the end
		require.NoError(t, holder.Start())
		t.Cleanup(func() { syscall.Kill(-holder.Process.Pid, syscall.SIGKILL); holder.Wait() })
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", holder.Process.Pid, holder.Process.Pid))
			if child = strings.TrimSpace(string(b)); child != "" {
				if m, _ := os.ReadFile("/proc/" + child + "/root" + root + "/marker/file"); len(m) > 0 {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		require.NotEmpty(t, child, "unshare's child")
		delete(s.Annotations, "org.sandboxkit.root") // the bundle's root, bound in place as runc does
		for i, ns := range s.Linux.Namespaces {
			switch ns.Type {
			case specs.PIDNamespace:
				s.Linux.Namespaces[i].Path = "/proc/" + child + "/ns/pid"
			case specs.MountNamespace:
				s.Linux.Namespaces[i].Path = "/proc/" + child + "/ns/mnt"
			}
		}
	}, "/bin/sh", "-c", `echo pid=$$; tr '\0' ' ' < /proc/1/cmdline; echo; cat /marker/file`)
	out := r.create(cid, dir)
	pid := r.state(cid).Pid
	for _, k := range []string{"pid", "mnt"} {
		want, err := os.Readlink("/proc/" + child + "/ns/" + k)
		require.NoError(t, err)
		got, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, k))
		require.NoError(t, err)
		assert.Equal(t, want, got, "the container is in the %s namespace its spec names", k)
	}
	r.must("start", cid)
	r.waitStatus(cid, "stopped")
	lines := strings.Split(strings.TrimSpace(output(t, out)), "\n")
	require.Len(t, lines, 3, "the program's output: %q", output(t, out))
	assert.NotEqual(t, "pid=1", lines[0], "the program is not PID 1 of the pod's namespace")
	assert.Equal(t, "sleep 60", strings.TrimSpace(lines[1]), "it sees the pod's init as PID 1")
	assert.Equal(t, "pod-mount", lines[2], "its root is among the joined mount namespace's mounts")
	r.must("delete", cid)
}

// In a pod's PID namespace the container's process is not the
// namespace's init: what its program leaves there runs on after it ends,
// and delete kills it with the cgroup, as runc does.
func TestDeleteKillsWhatAContainerLeftInAJoinedPIDNamespace(t *testing.T) {
	r := newRT(t)
	holder := exec.Command("unshare", "--pid", "--fork", "sleep", "60")
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, holder.Start())
	t.Cleanup(func() { syscall.Kill(-holder.Process.Pid, syscall.SIGKILL); holder.Wait() })
	var child string
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", holder.Process.Pid, holder.Process.Pid))
		child = strings.TrimSpace(string(b))
		return child != ""
	}, 5*time.Second, time.Millisecond, "unshare's child")
	cid := id()
	r.create(cid, bundle(t, func(s *specs.Spec) {
		s.Linux.Namespaces[0].Path = "/proc/" + child + "/ns/pid"
		require.Equal(t, specs.PIDNamespace, s.Linux.Namespaces[0].Type)
	}, "/bin/sh", "-c", "sleep 300 & echo $! > /tmp/left"))
	cg := r.state(cid)
	r.must("start", cid)
	r.waitStatus(cid, "stopped")
	procs := memoryDir("/oci.sandboxkit/"+cid) + "/cgroup.procs"
	b, err := os.ReadFile(procs)
	require.NoError(t, err)
	require.NotEmpty(t, strings.TrimSpace(string(b)), "the program's sleep outlives it in the pod's namespace")
	r.must("delete", cid)
	_, err = os.Stat(filepath.Dir(procs))
	assert.ErrorIs(t, err, os.ErrNotExist, "delete killed it and removed the cgroup (%d)", cg.Pid)
}

func TestHooksGetTheStateOnStdin(t *testing.T) {
	// run is create, start, wait and delete in one process, which skips
	// what only separate commands need: the hooks run all the same.
	for _, how := range []string{"create-start-delete", "run"} {
		t.Run(how, func(t *testing.T) {
			r := newRT(t)
			log := filepath.Join(t.TempDir(), "hooks")
			hook := func(name string) specs.Hook {
				return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "echo " + name + " $(cat) >> " + log}}
			}
			cid := id()
			dir := bundle(t, func(s *specs.Spec) {
				s.Hooks = &specs.Hooks{
					CreateRuntime: []specs.Hook{hook("createRuntime")},
					Poststart:     []specs.Hook{hook("poststart")},
					Poststop:      []specs.Hook{hook("poststop")},
				}
			}, "/bin/true")
			if how == "run" {
				r.must("run", "--bundle", dir, cid)
			} else {
				r.create(cid, dir)
				r.must("start", cid)
				r.waitStatus(cid, "stopped")
				r.must("delete", cid)
			}
			b, err := os.ReadFile(log)
			require.NoError(t, err)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			require.Len(t, lines, 3, "three hooks ran: %s", b)
			for i, name := range []string{"createRuntime", "poststart", "poststop"} {
				kind, st, _ := strings.Cut(lines[i], " ")
				assert.Equal(t, name, kind, "hook order")
				var s specs.State
				require.NoError(t, json.Unmarshal([]byte(st), &s), "hook %s got the state as JSON: %s", name, st)
				assert.Equal(t, cid, s.ID)
			}
		})
	}
}

func TestRunIsSeenByOtherCommandsWhileItRuns(t *testing.T) {
	r := newRT(t)
	cid := id()
	cmd := exec.Command(r.bin, "--root", r.root, "run", "--bundle", bundle(t, nil, "/bin/sleep", "60"), cid)
	require.NoError(t, cmd.Start())
	waited := false
	t.Cleanup(func() { // before newRT's, which deletes what is left
		if !waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	// run records the container under --root before it starts it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, err := r.run("state", cid); err == nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "state %s never succeeded while run runs", cid)
		time.Sleep(5 * time.Millisecond)
	}
	r.waitStatus(cid, "running")
	var list []specs.State
	require.NoError(t, json.Unmarshal([]byte(r.must("list", "--format", "json")), &list))
	require.Len(t, list, 1, "list during the run")
	assert.Equal(t, cid, list[0].ID)
	assert.Equal(t, specs.StateRunning, list[0].Status)

	r.must("kill", cid, "KILL")
	err := cmd.Wait()
	waited = true
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 128+9, ee.ExitCode(), "run exits with 128+SIGKILL once another command killed the container")
	ids, err := os.ReadDir(r.root)
	require.NoError(t, err)
	assert.Empty(t, ids, "run deleted the container it ran")
}

func TestLogFormatJSONAndFeatures(t *testing.T) {
	r := newRT(t)
	log := filepath.Join(t.TempDir(), "log.json")
	_, _, err := r.run("--log", log, "--log-format", "json", "state", "nosuch")
	require.Error(t, err)
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	var line map[string]string
	require.NoError(t, json.Unmarshal(bytes.TrimSpace(b), &line), "a JSON line: %s", b)
	assert.Equal(t, "error", line["level"])
	assert.Contains(t, line["msg"], "does not exist")
	assert.NotEmpty(t, line["time"])

	var f map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.must("features")), &f))
	assert.Equal(t, "1.0.0", f["ociVersionMin"])
	out, stderr, err := r.run("checkpoint", "x")
	assert.Error(t, err, out)
	assert.Contains(t, stderr, "not supported")

	var list []any
	require.NoError(t, json.Unmarshal([]byte(r.must("list", "--format", "json")), &list))
	assert.Empty(t, list)
}

func TestPauseResumeEventsUpdate(t *testing.T) {
	r := newRT(t)
	cid := id()
	out := r.create(cid, bundle(t, nil, "/bin/sh", "-c", "while :; do echo x; sleep 0.01; done"))
	r.must("start", cid)
	r.waitStatus(cid, "running")

	r.must("pause", cid)
	assert.Equal(t, specs.ContainerState("paused"), r.state(cid).Status, "state after pause")
	_, stderr, err := r.run("pause", cid)
	assert.Error(t, err, "a second pause fails")
	assert.Contains(t, stderr, "paused already")
	before := output(t, out)
	time.Sleep(100 * time.Millisecond)
	assert.Equal(t, before, output(t, out), "a paused container writes nothing")
	r.must("resume", cid)
	r.waitStatus(cid, "running")
	deadline := time.Now().Add(5 * time.Second)
	for output(t, out) == before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	assert.NotEqual(t, before, output(t, out), "a resumed container runs again")

	var ev struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Data struct {
			Memory struct {
				Usage struct {
					Usage uint64 `json:"usage"`
					Limit uint64 `json:"limit"`
				} `json:"usage"`
			} `json:"memory"`
			Pids struct {
				Current uint64 `json:"current"`
			} `json:"pids"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.must("events", "--stats", cid)), &ev))
	assert.Equal(t, "stats", ev.Type)
	assert.Equal(t, cid, ev.ID)
	assert.Positive(t, ev.Data.Memory.Usage.Usage, "the container's memory use")

	cmd := exec.Command(r.bin, "--root", r.root, "update", "--resources", "-", cid)
	cmd.Stdin = strings.NewReader(`{"memory": {"limit": 33554432}, "pids": {"limit": 50}}`)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "update --resources -: %s", b)
	limit, err := os.ReadFile("/sys/fs/cgroup/memory/oci.sandboxkit/" + cid + "/memory.limit_in_bytes")
	if err != nil { // a v2 host
		limit, err = os.ReadFile("/sys/fs/cgroup/oci.sandboxkit/" + cid + "/memory.max")
	}
	require.NoError(t, err)
	assert.Equal(t, "33554432", strings.TrimSpace(string(limit)), "update set the memory limit")

	cmd = exec.Command(r.bin, "--root", r.root, "update", "--resources", "-", cid)
	cmd.Stdin = strings.NewReader(`{"cpu": {"shares": 512}}`)
	b, err = cmd.CombinedOutput()
	assert.Error(t, err, "update of a field it does not apply")
	assert.Contains(t, string(b), "cpu.shares")
	r.must("delete", "--force", cid)
}

func TestConsoleSocketGetsThePTYMaster(t *testing.T) {
	r := newRT(t)
	sock, got := testutil.ConsoleSocket(t)
	cid := id()
	dir := bundle(t, func(s *specs.Spec) {
		s.Process.Terminal = true
		s.Process.ConsoleSize = &specs.Box{Height: 40, Width: 120}
		s.Process.User = specs.User{UID: 1000, GID: 1000}
	}, "/bin/sh", "-c", "test -t 0 && test -t 1 && echo on-the-terminal; tty; ls -l /dev/console; stty size; read line; echo got=$line")
	r.create(cid, dir, "--console-socket", sock)
	master := <-got
	require.NotNil(t, master, "create sends the pty master over the console socket")
	defer master.Close()
	r.must("start", cid)
	var all []byte
	buf := make([]byte, 512)
	master.SetReadDeadline(time.Now().Add(5 * time.Second))
	read := func(want string) {
		for !bytes.Contains(all, []byte(want)) {
			n, err := master.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				break
			}
		}
	}
	read("40 120\r\n")
	_, err := master.WriteString("typed\n")
	require.NoError(t, err)
	read("got=typed\r\n")
	// The terminal's line discipline turned each newline into CRLF.
	lines := strings.Split(string(all), "\r\n")
	require.GreaterOrEqual(t, len(lines), 5, "the program's output: %q", all)
	assert.Equal(t, "on-the-terminal", lines[0], "the program's stdin and stdout are the terminal")
	assert.Equal(t, "/dev/pts/0", lines[1], "ttyname finds it: a pty of the container's own devpts")
	assert.Regexp(t, `^crw--w---- +1 user +user +136, +0 .*/dev/console$`, lines[2], "/dev/console is the terminal, the process's user's (1000, user in the root)")
	assert.Equal(t, "40 120", lines[3], "process.consoleSize")
	assert.Contains(t, string(all), "got=typed\r\n", "the program reads what is written to the master")
	r.waitStatus(cid, "stopped")
	r.must("delete", cid)
}
