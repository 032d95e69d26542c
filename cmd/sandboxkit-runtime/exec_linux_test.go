package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sandboxkit/sandbox/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// running creates and starts a container of argv and returns its ID.
func (r *rt) running(argv ...string) string {
	r.t.Helper()
	cid := id()
	r.create(cid, bundle(r.t, nil, argv...))
	r.must("start", cid)
	r.waitStatus(cid, "running")
	r.t.Cleanup(func() { r.run("delete", "--force", cid) })
	return cid
}

// execDetached runs exec --detach with args, its stdio (which the process
// keeps) on /dev/null, and returns its stderr and exit code.
func (r *rt) execDetached(args ...string) (stderr string, code int) {
	r.t.Helper()
	e := filepath.Join(r.t.TempDir(), "stderr")
	f, err := os.Create(e)
	require.NoError(r.t, err)
	defer f.Close()
	cmd := exec.Command(r.bin, append([]string{"--root", r.root, "exec", "--detach"}, args...)...)
	cmd.Stderr = f
	err = cmd.Run()
	b, _ := os.ReadFile(e)
	if ee, ok := err.(*exec.ExitError); ok {
		return string(b), ee.ExitCode()
	}
	require.NoError(r.t, err)
	return string(b), 0
}

// execRun runs exec with args and returns its stdout, stderr and exit code.
func (r *rt) execRun(args ...string) (stdout, stderr string, code int) {
	r.t.Helper()
	cmd := exec.Command(r.bin, append([]string{"--root", r.root, "exec"}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	}
	require.NoError(r.t, err)
	return o.String(), e.String(), 0
}

func TestExecRunsInTheContainer(t *testing.T) {
	r := newRT(t)
	cid := r.running("/bin/sh", "-c", "echo pid1 > /tmp/marker; exec sleep 60")

	out, stderr, code := r.execRun("--env", "EXTRA=yes", cid, "/bin/sh", "-c", `cat /tmp/marker; hostname; echo "$EXTRA"; set -- /proc/[0-9]*; echo $#; exit 3`)
	assert.Equal(t, 3, code, "exec returns the process's exit status: %s", stderr)
	assert.Equal(t, "pid1\noci-test\nyes\n2\n", out, "the process sees the container's files, hostname and PID namespace (sleep and itself)")

	// A process file, as containerd gives it: its own user, directory and
	// environment, nothing of the container's process.
	p := specs.Process{Args: []string{"/bin/sh", "-c", `id -u; id -g; pwd; echo "$ONLY"; env | grep -c EXTRA`}, Cwd: "/tmp", Env: []string{"ONLY=this", "PATH=/bin"},
		User: specs.User{UID: 1000, GID: 1000}}
	b, err := json.Marshal(p)
	require.NoError(t, err)
	pf := filepath.Join(t.TempDir(), "process.json")
	require.NoError(t, os.WriteFile(pf, b, 0o644))
	out, stderr, code = r.execRun("--process", pf, cid)
	assert.Equal(t, 1, code, "grep -c found nothing: %s", stderr)
	assert.Equal(t, "1000\n1000\n/tmp\nthis\n0\n", out)

	// Detached: the process outlives exec, its PID in the pid file.
	pidFile := filepath.Join(t.TempDir(), "pid")
	stderr, code = r.execDetached("--pid-file", pidFile, cid, "/bin/sleep", "60")
	require.Equal(t, 0, code, "%s", stderr)
	pb, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pid, err := strconv.Atoi(string(pb))
	require.NoError(t, err)
	pidfd, err := unix.PidfdOpen(pid, 0)
	require.NoError(t, err, "the detached process runs after exec returned")
	defer unix.Close(pidfd)
	// The pid file names the process's init, whose status is the
	// program's; the program is its child, and runs on after exec ended.
	var kids []byte
	require.Eventually(t, func() bool {
		kids, _ = os.ReadFile("/proc/" + string(pb) + "/task/" + string(pb) + "/children")
		return len(strings.Fields(string(kids))) == 1
	}, 5*time.Second, 5*time.Millisecond, "the init has its program")
	comm, _ := os.ReadFile("/proc/" + strings.TrimSpace(string(kids)) + "/comm")
	assert.Equal(t, "sleep\n", string(comm), "the detached program runs after exec returned")
	ps := r.must("ps", "--format", "json", cid)
	assert.Contains(t, ps, string(pb), "ps lists the exec'd process with the container's")
	require.NoError(t, unix.Kill(pid, unix.SIGKILL))
	n, err := unix.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, 5000)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "a SIGKILL of the PID in the pid file ends it")
	assert.Eventually(t, func() bool {
		out := r.must("ps", "--format", "json", cid)
		var pids []int
		return json.Unmarshal([]byte(out), &pids) == nil && len(pids) == 1
	}, 5*time.Second, 20*time.Millisecond, "the program went with its init: only the container's own process is left")
}

func TestExecRefusals(t *testing.T) {
	r := newRT(t)
	_, stderr, code := r.execRun("no-such-container", "/bin/true")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "does not exist", "containerd matches runc's text")

	cid := r.running("/bin/sleep", "60")
	_, stderr, code = r.execRun("--tty", cid, "/bin/true")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, stderr, "needs --console-socket")
	_, stderr, code = r.execRun(cid, "/no/such/program")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, stderr, "/no/such/program")

	r.must("pause", cid)
	_, stderr, code = r.execRun(cid, "/bin/true")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, stderr, "paused")
	stderr, code = r.execDetached("--ignore-paused", cid, "/bin/true")
	assert.NotEqual(t, 0, code, "a process in a frozen cgroup would never report that it runs")
	assert.Contains(t, stderr, "resume it first")
	r.must("resume", cid)

	r.must("kill", cid, "KILL")
	r.waitStatus(cid, "stopped")
	_, stderr, code = r.execRun(cid, "/bin/true")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "container not running", "containerd matches runc's text")
}

func TestExecOnATerminal(t *testing.T) {
	r := newRT(t)
	cid := r.running("/bin/sleep", "60")
	sock, got := testutil.ConsoleSocket(t)
	stderr, code := r.execDetached("--tty", "--console-socket", sock, cid, "/bin/sh", "-c", "tty; read x; echo got $x")
	require.Equal(t, 0, code, "%s", stderr)
	master := <-got
	require.NotNil(t, master, "exec sends the pty master over the console socket")
	defer master.Close()
	_, err := master.Write([]byte("hello\n"))
	require.NoError(t, err)
	var all []byte
	buf := make([]byte, 512)
	master.SetReadDeadline(time.Now().Add(5 * time.Second))
	for !bytes.Contains(all, []byte("got hello")) {
		n, err := master.Read(buf)
		all = append(all, buf[:n]...)
		if err != nil {
			break
		}
	}
	s := string(all)
	assert.Contains(t, s, "got hello", "the program reads and writes the terminal")
	assert.True(t, strings.Contains(s, "/dev/pts/"), "the terminal is of the container's own devpts, with a name inside: %q", s)
}

// TestStartContainerHooksRunInTheContainer: a startContainer hook runs at
// start, before the program, in the container: its path found in the
// container's root, in its namespaces, with its own env and the state on
// stdin. One that fails fails start and ends the container.
func TestStartContainerHooksRunInTheContainer(t *testing.T) {
	r := newRT(t)
	cid := id()
	hook := specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", `echo "$(hostname) $X $(id -u) $(cat)" > /tmp/hooked`}, Env: []string{"X=hook-env", "PATH=/bin"}}
	dir := bundle(t, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{hook}}
		s.Process.User = specs.User{UID: 1000, GID: 1000}
	}, "/bin/cat", "/tmp/hooked")
	out := r.create(cid, dir)
	r.must("start", cid)
	r.waitStatus(cid, "stopped")
	fields := strings.SplitN(strings.TrimSpace(output(t, out)), " ", 4)
	require.Len(t, fields, 4, "the program read what the hook wrote in the container: %q", output(t, out))
	host, env, uid, rest := fields[0], fields[1], fields[2], fields[3]
	assert.Equal(t, "oci-test", host, "the hook ran in the container's UTS namespace")
	assert.Equal(t, "hook-env", env, "with its own environment")
	assert.Equal(t, "0", uid, "as root, whatever the program's user")
	var st specs.State
	require.NoError(t, json.Unmarshal([]byte(rest), &st), "the state on its stdin: %s", rest)
	assert.Equal(t, cid, st.ID)
	r.must("delete", cid)

	cid = id()
	dir = bundle(t, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo no >&2; exit 3"}}}}
	}, "/bin/sleep", "60")
	r.create(cid, dir)
	_, stderr, err := r.run("start", cid)
	assert.Error(t, err, "a failed startContainer hook fails start")
	assert.Contains(t, stderr, "exit 3")
	_, stderr, _ = r.run("state", cid)
	assert.Contains(t, stderr, "does not exist", "and the container is gone")
}

// TestExecNeverEntersARecycledPID: exec enters the process the state
// names only while its start time is the recorded one. A state whose PID
// now names another process (as after the container ended and the PID was
// reused) is "container not running", and that process gets nothing.
func TestExecNeverEntersARecycledPID(t *testing.T) {
	r := newRT(t)
	cid := r.running("/bin/sleep", "60")
	other := exec.Command("/bin/sleep", "60")
	require.NoError(t, other.Start())
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })

	path := filepath.Join(r.root, cid, "state.json")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	// Registered after running's cleanup, so run before it: the delete
	// must find the container's own PID again.
	t.Cleanup(func() { os.WriteFile(path, b, 0o600) })
	var st map[string]any
	require.NoError(t, json.Unmarshal(b, &st))
	st["pid"] = other.Process.Pid // the start time stays the container's
	forged, err := json.Marshal(st)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, forged, 0o600))

	out, stderr, code := r.execRun(cid, "/bin/sh", "-c", "echo entered")
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	assert.Contains(t, stderr, "container not running")
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", other.Process.Pid, other.Process.Pid))
	assert.Empty(t, strings.TrimSpace(string(kids)), "the other process was not entered")
	ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", other.Process.Pid))
	mine, _ := os.Readlink("/proc/self/ns/mnt")
	assert.Equal(t, mine, ns)
}

// TestExecInAUserNamespace: exec joins the container's user namespace
// with the rest, so its root is the container's mapped root.
func TestExecInAUserNamespace(t *testing.T) {
	r := newRT(t)
	cid := id()
	r.create(cid, bundle(t, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
	}, "/bin/sleep", "60"))
	r.must("start", cid)
	r.waitStatus(cid, "running")
	out, stderr, code := r.execRun(cid, "/bin/sh", "-c", "id -u; cat /proc/self/uid_map")
	require.Equal(t, 0, code, "%s", stderr)
	fields := strings.Fields(out)
	assert.Equal(t, []string{"0", "0", "200000", "65536"}, fields, "root in the container's user namespace, mapped to 200000")
	r.must("delete", "--force", cid)
}

// TestCreateContainerHooksRunBeforeThePivot: at create, after the
// createRuntime hooks, a createContainer hook runs in the container's
// namespaces while its root is not yet pivoted: its path is one of the
// host (only there), and it writes where the host sees it.
func TestCreateContainerHooksRunBeforeThePivot(t *testing.T) {
	r := newRT(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	script := filepath.Join(dir, "hook.sh") // on the host only
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\n"+
		`echo "container $(readlink /proc/self/ns/mnt) $(cat)" >> `+log+"\n"), 0o755))
	cid := id()
	r.create(cid, bundle(t, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{
			CreateRuntime:   []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo runtime >> " + log}}},
			CreateContainer: []specs.Hook{{Path: script}},
		}
	}, "/bin/true"))
	st := r.state(cid)
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, lines, 2, "%s", b)
	assert.Equal(t, "runtime", lines[0], "createRuntime first")
	f := strings.SplitN(lines[1], " ", 3)
	require.Len(t, f, 3, "%s", lines[1])
	assert.Equal(t, "container", f[0])
	theirs, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", st.Pid))
	mine, _ := os.Readlink("/proc/self/ns/mnt")
	assert.Equal(t, theirs, f[1], "the hook ran in the container's mount namespace")
	assert.NotEqual(t, mine, f[1])
	var hs specs.State
	require.NoError(t, json.Unmarshal([]byte(f[2]), &hs), "the state on its stdin: %s", f[2])
	assert.Equal(t, cid, hs.ID)
	assert.Equal(t, specs.StateCreating, hs.Status)
	assert.Equal(t, st.Pid, hs.Pid)
	r.must("start", cid)
	r.waitStatus(cid, "stopped")
	r.must("delete", cid)

	cid = id()
	dir2 := bundle(t, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo no >&2; exit 4"}}}}
	}, "/bin/true")
	_, stderr, err := r.run("create", "--bundle", dir2, cid)
	assert.Error(t, err, "a failed createContainer hook fails create")
	assert.Contains(t, stderr, "exit 4")
	_, stderr, _ = r.run("state", cid)
	assert.Contains(t, stderr, "does not exist", "and leaves no container")
}
