package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroupName returns the name of a new run's cgroup: the prefix, the
// caller's PID and start time (so that Collect can tell a dead owner from a
// live one, even after the PID is reused), and a random part.
func cgroupName(owner string) string {
	return cgroupPrefix + owner + "-" + randomID()
}

// ownerTag returns this process's PID and start time as cgroup names
// carry them.
func ownerTag() string {
	pid := os.Getpid()
	start, _ := processStart(pid)
	return fmt.Sprintf("%d-%d", pid, start)
}

// processStart returns the start time of pid, in clock ticks since boot
// (field 22 of /proc/PID/stat).
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// ownerAlive reports whether the cgroup name's owner still runs. A name
// that does not parse is left alone.
func ownerAlive(name string) bool {
	parts := strings.SplitN(strings.TrimPrefix(name, cgroupPrefix), "-", 3)
	if len(parts) != 3 {
		return true
	}
	pid, err1 := strconv.Atoi(parts[0])
	start, err2 := strconv.ParseUint(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return true
	}
	now, err := processStart(pid)
	return err == nil && now == start
}

func collect(ctx context.Context) error {
	var errs []error
	for _, pattern := range []string{cgroupRoot + "/" + cgroupPrefix + "*", cgroupRoot + "/*/" + cgroupPrefix + "*"} {
		dirs, err := filepath.Glob(pattern)
		if err != nil {
			return err
		}
		for _, dir := range dirs {
			if err := ctx.Err(); err != nil {
				return errors.Join(append(errs, err)...)
			}
			if ownerAlive(filepath.Base(dir)) {
				continue
			}
			// rmdir fails on a cgroup that still has processes, so a
			// straggler is never cut loose.
			if err := removeCgroupDir(dir); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("sandbox: collect: %w", errors.Join(errs...))
	}
	return nil
}
