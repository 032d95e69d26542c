package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/testutil"
)

func TestMemoryLimitOOMKill(t *testing.T) {
	sb, _ := busybox(t)
	// The shell keeps the command's output in memory: 100 MB against a
	// 32 MiB limit.
	res := sh(t, sb.WithMemory(32<<20), "x=$(yes | head -c 100000000); echo survived")
	assert.True(t, res.OOMKilled, "a run over its memory limit must be reported as OOM-killed")
	assert.Equal(t, syscall.SIGKILL, res.Signal)
	assert.NotContains(t, string(res.Stdout), "survived")
	assert.LessOrEqual(t, res.MemoryPeak, int64(32<<20), "usage can never pass the limit")
}

func TestMemoryPeakIsMeasured(t *testing.T) {
	sb, _ := busybox(t)
	res := sh(t, sb, "x=$(yes | head -c 40000000); echo ${#x}")
	assert.Equal(t, "39999999\n", string(res.Stdout))
	assert.False(t, res.OOMKilled)
	assert.Greater(t, res.MemoryPeak, int64(40<<20), "the shell held 40 MB at once")
}

func TestCPUQuotaLimitsCPUTime(t *testing.T) {
	sb, _ := busybox(t)
	res := sh(t, sb.WithCPU(0.2).WithTimeout(time.Second), "while :; do :; done")
	require.True(t, res.TimedOut)
	// A 20% quota over about a second allows about 0.2 s of CPU; without
	// the quota the loop would use the whole second.
	assert.Less(t, res.CPU, 450*time.Millisecond, "CPU time under a 0.2-core quota")
	assert.Greater(t, res.CPU, 50*time.Millisecond, "the loop ran, so it used some CPU")
}

func TestCPUTimeCountsEveryProcess(t *testing.T) {
	sb, _ := busybox(t)
	// Two children do a fixed amount of work while PID 1 only waits, so
	// counting only PID 1 would report next to nothing. CPU time, unlike
	// wall time, does not depend on how loaded the machine is.
	count := "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"
	res := sh(t, sb, "("+count+") & ("+count+") & wait; echo done")
	require.Equal(t, "done\n", string(res.Stdout))
	assert.Greater(t, res.CPU, 100*time.Millisecond, "CPU time must include every process of the sandbox")
}

func TestPidsLimitStopsForkBomb(t *testing.T) {
	sb, _ := busybox(t)
	sb = sb.WithPids(8)
	res := sh(t, sb, "for i in 1 2 3 4 5; do sleep 10 & done; echo /proc/[0-9]*")
	assert.Equal(t, "/proc/1 /proc/2 /proc/3 /proc/4 /proc/5 /proc/6 /proc/7\n", string(res.Stdout),
		"the init, the shell and five children fit under a limit of 8: stderr %s", res.Stderr)

	start := time.Now()
	res = sh(t, sb, "while :; do sleep 10 & done")
	assert.Contains(t, string(res.Stderr), "can't fork", "forks past the pids limit must fail")
	assert.Equal(t, 2, res.ExitCode, "ash exits with 2 when it cannot fork")
	assert.Less(t, time.Since(start), 20*time.Second, "the bomb must end, and its children with it")
	assert.Empty(t, testutil.SandboxCgroups(t))
}

func TestNoLeaksAfterManyRuns(t *testing.T) {
	sb, _ := busybox(t)
	sb = sb.WithMemory(64 << 20).WithPids(64).WithCPU(1)
	// Warm up lazily created runtime threads and files before measuring.
	sh(t, sb, "true")
	before := testutil.SnapshotHost(t)

	const runs = 300
	var ok, failed, timedOut, cancelled, notFound int
	for i := range runs {
		switch i % 6 {
		case 0, 1:
			res := sh(t, sb, "echo hi; sleep 0.001 & true")
			assert.Equal(t, 0, res.ExitCode)
			ok++
		case 2:
			res := sh(t, sb, "exit 3")
			assert.Equal(t, 3, res.ExitCode)
			failed++
		case 3:
			res := sh(t, sb.WithTimeout(20*time.Millisecond), "sleep 10 & sleep 10")
			assert.True(t, res.TimedOut)
			timedOut++
		case 4:
			ctx, cancel := context.WithTimeout(testCtx(t), 20*time.Millisecond)
			_, err := sb.Run(ctx, "/bin/sleep", "10")
			cancel()
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			cancelled++
		case 5:
			_, err := sb.Run(testCtx(t), "/no/such/program")
			assert.True(t, errors.Is(err, fs.ErrNotExist), "got %v", err)
			notFound++
		}
	}
	after := testutil.SnapshotHost(t)
	assert.Equal(t, before.Mounts, after.Mounts, "host mounts after %d runs", runs)
	testutil.CheckFDs(t, before, fmt.Sprintf("after %d runs", runs))
	assert.Empty(t, after.Cgroups, "cgroups after %d runs", runs)
	assert.LessOrEqual(t, after.Threads, before.Threads+4, "threads after %d runs: a goroutine per run must not linger", runs)
	t.Logf("runs: %d ok, %d failed, %d timed out, %d cancelled, %d not found", ok, failed, timedOut, cancelled, notFound)
	assert.Equal(t, runs, ok+failed+timedOut+cancelled+notFound)
}

func TestTeardownFailureKeepsTheResult(t *testing.T) {
	sb, _ := busybox(t)
	share := t.TempDir()
	// A host process the test moves into the sandbox's cgroup while the
	// program runs: the cgroup cannot be removed after it, a teardown
	// failure that must not hide the program's result.
	squatter := exec.Command("sleep", "60")
	require.NoError(t, squatter.Start())
	t.Cleanup(func() { squatter.Process.Kill(); squatter.Wait() })
	type done struct {
		res *sandbox.Result
		err error
	}
	finished := make(chan done, 1)
	go func() {
		res, err := sb.WithBind(share, "/share").Run(testCtx(t), "/bin/sh", "-c",
			"touch /share/running; while [ ! -e /share/go ]; do sleep 0.02; done; echo result; exit 3")
		finished <- done{res, err}
	}()
	require.Eventually(t, func() bool { _, err := os.Stat(filepath.Join(share, "running")); return err == nil },
		10*time.Second, 10*time.Millisecond)
	var cgroups []string // this run's, in every hierarchy: a dead program's may be there too
	for _, own := range testutil.OwnCgroups(t) {
		m, err := filepath.Glob(filepath.Join(filepath.Dir(filepath.Dir(own)), "*", filepath.Base(own)))
		require.NoError(t, err)
		if filepath.Base(filepath.Dir(own)) != "memory" { // v2: one hierarchy
			m = []string{own}
		}
		cgroups = append(cgroups, m...)
	}
	require.NotEmpty(t, cgroups)
	for _, cg := range cgroups {
		require.NoError(t, os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(squatter.Process.Pid)), 0o644))
	}
	t.Cleanup(func() {
		// Out of the cgroups, which then go.
		for _, cg := range cgroups {
			os.WriteFile(filepath.Join(filepath.Dir(cg), "cgroup.procs"), []byte(strconv.Itoa(squatter.Process.Pid)), 0o644)
			os.Remove(cg)
		}
		assert.Empty(t, testutil.SandboxCgroups(t))
	})
	require.NoError(t, os.WriteFile(filepath.Join(share, "go"), nil, 0o644))
	d := <-finished
	require.NoError(t, d.err, "a teardown failure is not an error of the run")
	require.NotNil(t, d.res)
	assert.Equal(t, 3, d.res.ExitCode, "the program's own outcome stays valid")
	assert.Equal(t, "result\n", string(d.res.Stdout))
	require.Error(t, d.res.TeardownErr, "the cgroup could not be removed: Result.TeardownErr says so")
	assert.ErrorContains(t, d.res.TeardownErr, "remove cgroup")
}
