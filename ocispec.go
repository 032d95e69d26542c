package sandbox

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ociExtras are the parts of an OCI spec that FromSpec honours and that
// have no builder method: a container's own, set only through a spec.
type ociExtras struct {
	groups      []int // additional group IDs
	oomScoreAdj *int
	sysctls     map[string]string
	masked      []string // masked paths beyond the sandbox's own
	readOnly    []string // read-only paths beyond the sandbox's own
	devices     []ociDevice
	propagation uintptr // mount(2) flags of the root's propagation; 0: private, the default
	noTmp       bool    // the spec mounts nothing on /tmp: no tmpfs there
	// resources is the spec's whole linux.resources when it sets more
	// than the memory, CPU quota and pids limits of the builder: the
	// cgroup applies all of it (through containerd/cgroups).
	resources *specs.LinuxResources
	// joins are the namespaces the spec names by path, which the
	// sandbox joins instead of making its own.
	joins []nsJoin
}

// nsJoin is a namespace to join: its spec type and the path of its file.
type nsJoin struct {
	kind specs.LinuxNamespaceType
	path string
}

// joinsNS reports whether the sandbox joins a namespace of type kind.
func (x ociExtras) joinsNS(kind specs.LinuxNamespaceType) bool {
	return slices.ContainsFunc(x.joins, func(j nsJoin) bool { return j.kind == kind })
}

// joinable are the namespaces a sandbox can join by path. Its child
// enters the network, IPC, UTS, cgroup and mount ones with setns before it
// sets anything up (the root is then built among the joined mount
// namespace's mounts); it is cloned in a joined PID namespace, from a
// thread whose children the kernel puts there. A user namespace is never
// joined: its ID maps are not the sandbox's to own.
var joinable = []specs.LinuxNamespaceType{
	specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.CgroupNamespace,
	specs.PIDNamespace, specs.MountNamespace,
}

// propagations are the rootfsPropagation values and their mount flags.
var propagations = map[string]uintptr{
	"private": 0, "rprivate": 0,
	"shared": msShared, "rshared": msShared | msRec, "slave": msSlave, "rslave": msSlave | msRec,
	"unbindable": msUnbindable, "runbindable": msUnbindable | msRec,
}

// The mount(2) flags of propagations, spelled out so that the table
// builds on every OS.
const (
	msRec        = 0x4000
	msUnbindable = 0x20000
	msSlave      = 0x80000
	msShared     = 0x100000
)

// propagationName returns the rootfsPropagation value of flags.
func propagationName(flags uintptr) string {
	for name, f := range propagations {
		if f == flags && f != 0 { // each set of flags has one name
			return name
		}
	}
	return ""
}

// ociDevice is a device node (or FIFO) the sandbox's /dev gets.
type ociDevice struct {
	path         string // absolute, below /dev
	kind         string // "c", "b", "u" (c) or "p"
	major, minor int64
	mode         uint32 // permission bits
	uid, gid     uint32
}

func (x ociExtras) clone() ociExtras {
	x.groups = slices.Clone(x.groups)
	if x.oomScoreAdj != nil {
		v := *x.oomScoreAdj
		x.oomScoreAdj = &v
	}
	x.sysctls = maps.Clone(x.sysctls)
	x.masked = slices.Clone(x.masked)
	x.readOnly = slices.Clone(x.readOnly)
	x.devices = slices.Clone(x.devices)
	x.joins = slices.Clone(x.joins)
	if x.resources != nil {
		x.resources = cloneResources(x.resources)
	}
	return x
}

// namespacedSysctl reports whether the kernel keeps the sysctl key per
// namespace, so that setting it in a sandbox does not reach the host: the
// IPC and network namespaces' and the UTS namespace's names.
func namespacedSysctl(key string) bool {
	switch {
	case key == "kernel.msgmax" || key == "kernel.msgmnb" || key == "kernel.msgmni" || key == "kernel.sem" ||
		key == "kernel.shmall" || key == "kernel.shmmax" || key == "kernel.shmmni" || key == "kernel.shm_rmid_forced":
		return true
	case strings.HasPrefix(key, "fs.mqueue."), strings.HasPrefix(key, "net."):
		return true
	}
	return false
}

// specExtras writes x into the spec's fields.
func (x ociExtras) specExtras(spec *specs.Spec) {
	for _, g := range x.groups {
		spec.Process.User.AdditionalGids = append(spec.Process.User.AdditionalGids, uint32(g))
	}
	if x.oomScoreAdj != nil {
		v := *x.oomScoreAdj
		spec.Process.OOMScoreAdj = &v
	}
	if len(x.sysctls) > 0 {
		spec.Linux.Sysctl = maps.Clone(x.sysctls)
	}
	spec.Linux.MaskedPaths = append(spec.Linux.MaskedPaths, x.masked...)
	spec.Linux.ReadonlyPaths = append(spec.Linux.ReadonlyPaths, x.readOnly...)
	spec.Linux.RootfsPropagation = propagationName(x.propagation)
	for _, d := range x.devices {
		mode := fs.FileMode(d.mode)
		uid, gid := d.uid, d.gid
		spec.Linux.Devices = append(spec.Linux.Devices, specs.LinuxDevice{Path: d.path, Type: d.kind, Major: d.major, Minor: d.minor,
			FileMode: &mode, UID: &uid, GID: &gid})
	}
}

// readExtras reads what ociExtras holds from the spec, clearing it in the
// reader's leftovers, and returns the changed definition.
func (r *specReader) readExtras(sb *Sandbox, spec *specs.Spec) *Sandbox {
	sb = sb.clone()
	x := &sb.oci
	if p := spec.Process; p != nil {
		for _, g := range p.User.AdditionalGids {
			x.groups = append(x.groups, int(g))
		}
		r.left.Process.User.AdditionalGids = nil
		if p.OOMScoreAdj != nil {
			if v := *p.OOMScoreAdj; v < -1000 || v > 1000 {
				r.problem("process.oomScoreAdj", v, "must be -1000 to 1000")
			} else {
				x.oomScoreAdj = &v
			}
			r.left.Process.OOMScoreAdj = nil
		}
	}
	l := spec.Linux
	if l == nil {
		return sb
	}
	for k, v := range l.Sysctl {
		if !namespacedSysctl(k) {
			r.problem("linux.sysctl."+k, v, "unsupported: only sysctls the kernel keeps per namespace (net.*, the IPC ones, fs.mqueue.*) can be set in a sandbox")
			continue
		}
		if strings.ContainsAny(k, "/\x00") || strings.Contains(k, "..") {
			r.problem("linux.sysctl."+k, v, "must be a sysctl name")
			continue
		}
		if x.sysctls == nil {
			x.sysctls = map[string]string{}
		}
		x.sysctls[k] = v
		delete(r.left.Linux.Sysctl, k)
	}
	if p, ok := propagations[l.RootfsPropagation]; ok {
		x.propagation = p
		r.left.Linux.RootfsPropagation = ""
	}
	if !slices.ContainsFunc(spec.Mounts, func(m specs.Mount) bool { return path.Clean(m.Destination) == "/tmp" }) {
		x.noTmp = true
	}
	for i, d := range l.Devices {
		field := fmt.Sprintf("linux.devices[%d]", i)
		dev := ociDevice{path: path.Clean(d.Path), kind: d.Type, major: d.Major, minor: d.Minor, mode: 0o666}
		if d.FileMode != nil {
			dev.mode = uint32(d.FileMode.Perm())
		}
		if d.UID != nil {
			dev.uid = *d.UID
		}
		if d.GID != nil {
			dev.gid = *d.GID
		}
		switch {
		case !strings.HasPrefix(dev.path, "/dev/") || strings.Contains(d.Path, ".."):
			r.problem(field+".path", d.Path, "must be below /dev")
		case d.Type != "c" && d.Type != "b" && d.Type != "u" && d.Type != "p":
			r.problem(field+".type", d.Type, `must be "c", "b", "u" or "p"`)
		case slices.ContainsFunc(x.devices, func(o ociDevice) bool { return o.path == dev.path }):
			r.problem(field+".path", d.Path, "duplicate device")
		default:
			x.devices = append(x.devices, dev)
		}
	}
	r.left.Linux.Devices = nil
	return sb
}

// ociPath reports why p cannot be a masked or read-only path, or "".
func ociPath(p string) string {
	if reason := checkSandboxPath(p); reason != "" {
		return reason
	}
	if path.Clean(p) == "/" || strings.Contains(p, "..") {
		return "must be below the root, without .."
	}
	return ""
}

// cloneResources deep-copies r through JSON.
func cloneResources(r *specs.LinuxResources) *specs.LinuxResources {
	b, _ := json.Marshal(r)
	var c specs.LinuxResources
	_ = json.Unmarshal(b, &c)
	return &c
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
