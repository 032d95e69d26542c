package sandbox_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

// holdNamespace starts `unshare OPT --fork sh -c SCRIPT` (SCRIPT ends in
// a long sleep) and returns the PID of unshare's child, which is in the
// new namespace (for a PID namespace, its PID 1). The holder and its
// child are killed when the test ends.
func holdNamespace(t *testing.T, opt, script string) int {
	t.Helper()
	cmd := exec.Command("unshare", opt, "--fork", "sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start(), "start unshare %s", opt)
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	var child int
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		_, err := fmt.Sscan(string(b), &child)
		return err == nil
	}, 5*time.Second, time.Millisecond, "unshare %s forks its child (stderr %q)", opt, &stderr)
	return child
}

// joiningSpec returns the spec of argv on root (written in place, as an
// OCI bundle's is) whose namespace of type kind is the one at path.
func joiningSpec(t *testing.T, root string, kind specs.LinuxNamespaceType, path string, argv ...string) *specs.Spec {
	t.Helper()
	spec, err := sandbox.New(sandbox.Dir(root)).Spec(argv...)
	require.NoError(t, err)
	delete(spec.Annotations, "org.sandboxkit.root") // the bundle's root itself, bound (recursively) as runc does
	found := false
	for i, ns := range spec.Linux.Namespaces {
		if ns.Type == kind {
			spec.Linux.Namespaces[i].Path, found = path, true
		}
	}
	require.True(t, found, "Spec lists the %s namespace", kind)
	return spec
}

func readNS(t *testing.T, pid int, kind string) string {
	t.Helper()
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
	require.NoError(t, err)
	return link
}

// A pod's containers share its PID namespace: a spec that names one by
// path runs its program in it, beside the pod's own processes, and the
// program is not PID 1 there.
func TestFromSpecJoinsAPIDNamespaceByPath(t *testing.T) {
	testutil.RequireRoot(t)
	root := testutil.Rootfs(t)
	holder := holdNamespace(t, "--pid", "exec sleep 300")
	spec := joiningSpec(t, root, specs.PIDNamespace, fmt.Sprintf("/proc/%d/ns/pid", holder),
		"/bin/sh", "-c", `readlink /proc/self/ns/pid; echo pid=$$; tr '\0' ' ' < /proc/1/cmdline; echo; `+
			`(sleep 30 & echo $! > /tmp/o); sleep 0.2; o=$(cat /tmp/o); echo orphan=$o parent=$(grep PPid /proc/$o/status | cut -f2) init=$PPID`)
	sb, err := sandbox.FromSpec(spec, root)
	require.NoError(t, err, "FromSpec of a spec joining a PID namespace by path")
	before := testutil.SnapshotHost(t)

	var out bytes.Buffer
	res, err := sb.WithStdout(&out).Run(testCtx(t), spec.Process.Args...)
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitCode, "output %q", out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 4, "output %q", out.String())
	assert.Equal(t, readNS(t, holder, "pid"), lines[0], "the program is in the PID namespace the spec names")
	assert.NotEqual(t, "pid=1", lines[1], "the namespace's PID 1 is the holder's, not the program")
	assert.Equal(t, "sleep 300", strings.TrimSpace(lines[2]), "the program sees the namespace's other processes (its PID 1)")

	// The program's orphan (the background sleep) went to the holder,
	// the namespace's init: the sandbox's end must still take it along.
	var orphan, parent, init int
	_, err = fmt.Sscanf(lines[3], "orphan=%d parent=%d init=%d", &orphan, &parent, &init)
	require.NoError(t, err, "output %q", lines[3])
	assert.Equal(t, init, parent, "the program's orphan is the sandbox's init's (a subreaper), not the namespace's PID 1")
	children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", holder, holder))
	for _, pid := range strings.Fields(string(children)) {
		// The holder (sleep) reaps nothing: a killed orphan stays its zombie.
		stat, _ := os.ReadFile("/proc/" + pid + "/stat")
		_, after, _ := strings.Cut(string(stat), ") ")
		assert.True(t, after == "" || strings.HasPrefix(after, "Z"), "no process of the sandbox runs on in the namespace it joined: %s", stat)
	}
	assert.Empty(t, testutil.OwnCgroups(t), "the sandbox's cgroup is removed")
	testutil.CheckFDs(t, before, "a run in a joined PID namespace")
}

// A spec that names a mount namespace by path has its root set up among
// that namespace's mounts: what a process of it mounted below the bundle's
// root (a recursive bind, as under runc) is seen by the program, which
// runs in that namespace.
func TestFromSpecJoinsAMountNamespaceByPath(t *testing.T) {
	testutil.RequireRoot(t)
	root := testutil.Rootfs(t)
	require.NoError(t, os.Mkdir(filepath.Join(root, "marker"), 0o755))
	holder := holdNamespace(t, "--mount",
		"mount -t tmpfs -o size=64k marker "+root+"/marker && echo only-in-that-namespace > "+root+"/marker/file && exec sleep 300")
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/root%s/marker/file", holder, root))
		return len(b) > 0
	}, 5*time.Second, time.Millisecond, "the holder mounts its marker")
	_, err := os.Stat(filepath.Join(root, "marker", "file"))
	require.ErrorIs(t, err, os.ErrNotExist, "the marker is not in the host's mount namespace")
	spec := joiningSpec(t, root, specs.MountNamespace, fmt.Sprintf("/proc/%d/ns/mnt", holder),
		"/bin/sh", "-c", "readlink /proc/self/ns/mnt; cat /marker/file")

	sb, err := sandbox.FromSpec(spec, root)
	require.NoError(t, err, "FromSpec of a spec joining a mount namespace by path")
	var out bytes.Buffer
	res, err := sb.WithStdout(&out).Run(testCtx(t), spec.Process.Args...)
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitCode, "output %q", out.String())
	assert.Equal(t, readNS(t, holder, "mnt")+"\nonly-in-that-namespace\n", out.String(),
		"the program is in the mount namespace the spec names, and its root among that namespace's mounts")
	assert.Empty(t, testutil.OwnCgroups(t), "the sandbox's cgroup is removed")
}

// The caller's own mount namespace (or the host's first one) is refused:
// setting the root up there would move every host process whose root is
// the namespace's into the sandbox's root (pivot_root does that).
func TestFromSpecRefusesTheHostsMountNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	root := testutil.Rootfs(t)
	peer := exec.Command("sleep", "300") // a process of the host's mount namespace
	require.NoError(t, peer.Start())
	t.Cleanup(func() { peer.Process.Kill(); peer.Wait() })
	for _, path := range []string{"/proc/self/ns/mnt", fmt.Sprintf("/proc/%d/ns/mnt", peer.Process.Pid)} {
		spec := joiningSpec(t, root, specs.MountNamespace, path, "/bin/true")
		sb, err := sandbox.FromSpec(spec, root)
		require.NoError(t, err)
		_, err = sb.Run(testCtx(t), "/bin/true")
		require.Error(t, err, "Run joining %s", path)
		var pe *os.PathError
		require.True(t, errors.As(err, &pe), "a *fs.PathError: %v", err)
		assert.Equal(t, path, pe.Path, "the error names the namespace")
		assert.Contains(t, err.Error(), "the host's", "the error says why")
	}
	assert.Empty(t, testutil.OwnCgroups(t), "nothing is left of the refused runs")
}

// A namespace path that is not a namespace of the type its entry says is
// refused before the sandbox starts, naming it.
func TestJoinChecksTheNamespaceType(t *testing.T) {
	testutil.RequireRoot(t)
	root := testutil.Rootfs(t)
	for _, tt := range []struct {
		kind specs.LinuxNamespaceType
		path string
	}{
		{specs.PIDNamespace, "/proc/self/ns/net"},
		{specs.MountNamespace, "/proc/self/ns/uts"},
		{specs.IPCNamespace, "/proc/self/ns/pid"},
		{specs.UTSNamespace, filepath.Join(root, "etc/passwd")},
	} {
		spec := joiningSpec(t, root, tt.kind, tt.path, "/bin/true")
		sb, err := sandbox.FromSpec(spec, root)
		require.NoError(t, err)
		_, err = sb.Run(testCtx(t), "/bin/true")
		require.Error(t, err, "Run with the %s namespace %s", tt.kind, tt.path)
		var pe *os.PathError
		require.True(t, errors.As(err, &pe), "a *fs.PathError: %v", err)
		assert.Equal(t, tt.path, pe.Path)
		assert.Contains(t, err.Error(), "not a namespace of that type")
	}
	assert.Empty(t, testutil.OwnCgroups(t), "nothing is left of the refused runs")
}

// A long-lived sandbox in a joined PID namespace: Exec's programs run
// there too, its init is not the namespace's PID 1 yet still forwards
// signals and reports the program's end, and Close takes every process
// of the sandbox along, the namespace's init staying.
func TestInstanceInAJoinedPIDNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	root := testutil.Rootfs(t)
	holder := holdNamespace(t, "--pid", "exec sleep 300")
	spec := joiningSpec(t, root, specs.PIDNamespace, fmt.Sprintf("/proc/%d/ns/pid", holder), "/bin/sleep", "300")
	sb, err := sandbox.FromSpec(spec, root)
	require.NoError(t, err)
	for _, init := range []bool{true, false} {
		t.Run(fmt.Sprint("init ", init), func(t *testing.T) {
			inst, err := sb.WithInit(init).Start(testCtx(t), "/bin/sleep", "300")
			require.NoError(t, err)
			t.Cleanup(func() { inst.Close() })
			var out bytes.Buffer
			res, err := inst.Command("/bin/sh", "-c", `tr '\0' ' ' < /proc/1/cmdline; sleep 300 & echo`).WithStdout(&out).Run(testCtx(t))
			require.NoError(t, err)
			assert.Equal(t, 0, res.ExitCode)
			assert.Equal(t, "sleep 300 \n", out.String(), "Exec runs in the joined namespace, whose PID 1 is the holder")
			require.NoError(t, inst.Signal(syscall.SIGTERM), "the sandbox's first process takes signals")
			res, err = inst.Wait(testCtx(t))
			require.NoError(t, err)
			assert.Equal(t, syscall.SIGTERM, res.Signal, "the program ended by the signal, as the init reports")
			require.NoError(t, inst.Close())
			assert.Empty(t, testutil.OwnCgroups(t), "Close leaves no process (so no cgroup) of the sandbox behind")
		})
	}
}
