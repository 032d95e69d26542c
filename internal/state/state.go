// Package state owns what sandboxkit keeps on the host outside any sandbox:
// the state directory, and the identity of the process that owns each
// thing it records there or names after itself. A process is named by its
// PID and its start time, so that a PID the kernel reuses never passes for
// the process that died: Collect removes what an owner that is no longer
// alive left, of every kind (cgroups named after it, IP leases and the
// kernel NAT entries they record), and never what a live owner holds.
package state

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Dir is the package's state directory on the host. Its scratch directory
// is only ever a mount point: each sandbox mounts its own tmpfs there, in
// its own mount namespace, so the host sees an empty directory.
const (
	Dir        = "/run/sandboxkit"
	ScratchDir = Dir + "/scratch"
	NetDir     = Dir + "/net" // bridges, their lock and their leases
)

// Owner identifies a process: its PID and its start time in clock ticks
// since boot (field 22 of /proc/PID/stat).
type Owner struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// Self returns the identity of this process, read once.
var Self = sync.OnceValues(func() (Owner, error) { return Read(os.Getpid()) })

// Read returns the identity of the running process pid.
func Read(pid int) (Owner, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	b, err := os.ReadFile(path)
	if err != nil {
		return Owner{}, err
	}
	// The command name (field 2) may hold spaces and ')': the fields
	// resume after the last ')'. The start time is the 20th after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Owner{}, &fs.PathError{Op: "parse", Path: path, Err: errors.New("no ')' in stat")}
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return Owner{}, &fs.PathError{Op: "parse", Path: path, Err: errors.New("short stat")}
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return Owner{}, &fs.PathError{Op: "parse", Path: path, Err: err}
	}
	return Owner{PID: pid, Start: start}, nil
}

// Alive reports whether the process o names still runs (a zombie counts).
func (o Owner) Alive() bool {
	if o.PID <= 0 {
		return false
	}
	cur, err := Read(o.PID)
	return err == nil && cur.Start == o.Start
}

// String returns "PID-START", the form names carry it in.
func (o Owner) String() string { return fmt.Sprintf("%d-%d", o.PID, o.Start) }

// ParseOwner reads an Owner from its String form, with sep between the
// two numbers ('-' in names, '_' in lease file names).
func ParseOwner(s string, sep byte) (Owner, bool) {
	pid, start, ok := strings.Cut(s, string(sep))
	if !ok {
		return Owner{}, false
	}
	p, err1 := strconv.Atoi(pid)
	st, err2 := strconv.ParseUint(start, 10, 64)
	if err1 != nil || err2 != nil || p <= 0 {
		return Owner{}, false
	}
	return Owner{PID: p, Start: st}, true
}

// RandomID returns 2n random hex digits, for the names of things a run
// makes on the host (its cgroup, its veth) that must not collide.
func RandomID(n int) string {
	b := make([]byte, n)
	rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
