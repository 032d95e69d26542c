package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultRoot is where the runtime keeps its containers' state unless
// --root says otherwise.
const DefaultRoot = "/run/sandboxkit-runtime"

// Container is what the runtime records of a container under its root,
// so that the next invocation finds it.
type Container struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	PID         int               `json:"pid"`
	Start       uint64            `json:"start"` // the process's start time, which a reused PID does not share
	Created     time.Time         `json:"created"`
	CgroupPath  string            `json:"cgroupPath"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Hooks       *specs.Hooks      `json:"hooks,omitempty"`
	Version     string            `json:"ociVersion"`          // the spec's
	NoProcess   bool              `json:"noProcess,omitempty"` // the spec set no process: start must fail

	dir string
}

// ErrNotExist is the error of a container ID that the root does not hold.
// Its text holds "does not exist", which containerd matches.
var ErrNotExist = errors.New("does not exist")

// CheckID returns why id cannot name a container, or "": it must be
// ASCII letters, digits, '_', '+', '-' and '.', and neither "." nor "..".
// (A loop, not a regexp: a package-level regexp is compiled at every
// start of the runtime's binary, whatever the command.)
func CheckID(id string) string {
	ok := id != "" && id != "." && id != ".."
	for i := 0; ok && i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '+', c == '-', c == '.':
		default:
			ok = false
		}
	}
	if !ok {
		return "must be letters, digits, '_', '+', '-' and '.'"
	}
	return ""
}

// GateName is the FIFO in a container's state directory that its process
// waits on until start.
const GateName = "exec.fifo"

// New makes the state directory of a new container id under root, with
// its gate, and returns the container to fill in and Save.
func New(root, id string) (*Container, error) {
	if reason := CheckID(id); reason != "" {
		return nil, fmt.Errorf("container id %q: %s", id, reason)
	}
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, err
	}
	dir := filepath.Join(root, id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("container with id %s exists already", id)
		}
		return nil, err
	}
	return &Container{ID: id, dir: dir}, nil
}

// Load returns the container id recorded under root; an unknown id is an
// error matching ErrNotExist.
func Load(root, id string) (*Container, error) {
	if CheckID(id) != "" {
		return nil, fmt.Errorf("container %s %w", id, ErrNotExist)
	}
	dir := filepath.Join(root, id)
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("container %s %w", id, ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	c := &Container{dir: dir}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, &fs.PathError{Op: "parse", Path: filepath.Join(dir, "state.json"), Err: err}
	}
	return c, nil
}

// List returns the IDs of the containers recorded under root.
func List(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var ids []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(root, e.Name(), "state.json")); err == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, err
}

// Dir is the container's state directory.
func (c *Container) Dir() string { return c.dir }

// Gate is the path of the container's gate FIFO.
func (c *Container) Gate() string { return filepath.Join(c.dir, GateName) }

// Save writes the record, replacing it whole.
func (c *Container) Save() error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(c.dir, "state.json"))
}

// Remove removes the state directory: the files that Save and the gate
// leave in it one by one, as RemoveAll would only after failing to
// remove the directory, reading it and opening it; RemoveAll still takes
// whatever else is there.
func (c *Container) Remove() error {
	for _, name := range []string{"state.json", GateName, "state.json.tmp"} {
		os.Remove(filepath.Join(c.dir, name)) // one that is not there is no error
	}
	if err := os.Remove(c.dir); err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return os.RemoveAll(c.dir)
}

// The statuses of the runtime-spec.
const (
	Creating = "creating"
	Created  = "created"
	Running  = "running"
	Stopped  = "stopped"
	Paused   = "paused"
)

// Status returns the container's status now: stopped once its process
// ended (a zombie not yet reaped counts as ended), created while it waits
// on its gate, running after.
func (c *Container) Status() string {
	if c.NoProcess {
		return Created
	}
	if c.PID <= 0 || !ProcessAlive(c.PID, c.Start) {
		return Stopped
	}
	if frozen(c.CgroupPath) {
		return Paused
	}
	if _, err := os.Stat(c.Gate()); err == nil {
		return Created
	}
	return Running
}

// State returns the runtime-spec state of the container.
func (c *Container) State() specs.State {
	// The PID stays once the process ended: hooks, and those who read the
	// state after a short-lived program, still see which one it was.
	return specs.State{Version: specs.Version, ID: c.ID, Status: specs.ContainerState(c.Status()), Pid: c.PID, Bundle: c.Bundle, Annotations: c.Annotations}
}

// ProcessAlive reports whether pid runs and started at start (in clock
// ticks since boot); a zombie does not run.
func ProcessAlive(pid int, start uint64) bool {
	st, s, err := procStat(pid)
	return err == nil && s == start && st != "Z" && st != "X"
}

// ProcessStart returns the start time of the running process pid.
func ProcessStart(pid int) (uint64, error) {
	_, s, err := procStat(pid)
	return s, err
}

// procStat returns the state and start time of pid (fields 3 and 22 of
// /proc/PID/stat).
func procStat(pid int) (state string, start uint64, err error) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", 0, &fs.PathError{Op: "parse", Path: path, Err: errors.New("no ')'")}
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", 0, &fs.PathError{Op: "parse", Path: path, Err: errors.New("short")}
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0], start, err
}

// frozen reports whether the container's freezer cgroup (v1) holds it
// frozen.
func frozen(cgroupPath string) bool {
	if cgroupPath == "" {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/freezer", cgroupPath, "freezer.state"))
	if err == nil {
		return strings.TrimSpace(string(b)) == "FROZEN"
	}
	b, err = os.ReadFile(filepath.Join("/sys/fs/cgroup", cgroupPath, "cgroup.freeze"))
	return err == nil && strings.TrimSpace(string(b)) == "1"
}
