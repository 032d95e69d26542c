package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/sandboxkit/sandbox/internal/oci"
)

// Spec returns the definition as an OCI runtime configuration (the
// config.json of a bundle, runtime-spec 1.3) for a run of argv: the same
// namespaces, mounts, limits, rlimits, capabilities, seccomp profile and
// masked and read-only paths that Run would apply. [FromSpec] reads it
// back into an equal definition.
//
// What the runtime-spec cannot say is an error naming it: a Bridge
// network, published ports, files given to WithFile, stdio, WithTimeout and
// the output limit (a caller's choices, not a container's). A definition
// that Validate refuses returns its [*ConfigError].
func (s *Sandbox) Spec(argv ...string) (*specs.Spec, error) {
	if err := s.validateStart(context.Background(), argv, true); err != nil {
		return nil, err
	}
	var problems []*FieldError
	unsupported := func(field string, value any, what string) {
		problems = append(problems, &FieldError{Field: field, Value: value, Reason: what + " has no OCI runtime-spec form"})
	}
	if s.network.kind == networkBridge {
		unsupported("network", s.network, "a Bridge network")
	}
	if len(s.ports) > 0 {
		unsupported("publish", len(s.ports), "a published port")
	}
	if len(s.files) > 0 {
		unsupported("file", s.files[0].path, "a file given to WithFile")
	}
	if s.stdin != nil || s.stdout != nil || s.stderr != nil {
		unsupported("stdio", "set", "stdio given to WithStdin, WithStdout or WithStderr")
	}
	if s.timeout > 0 {
		unsupported("timeout", s.timeout, "a timeout")
	}
	if s.outputLimit != DefaultOutputLimit {
		unsupported("output limit", s.outputLimit, "an output limit")
	}
	if specOf(s.root).kind == rootImage {
		unsupported("root", s.root, "an image root (write its unpacked root with the image's config into a bundle instead)")
	}
	if len(problems) > 0 {
		return nil, &ConfigError{Problems: problems}
	}
	pl := s.plan(argv)
	spec := &specs.Spec{
		Version:  specs.Version,
		Hostname: pl.hostname,
		Root:     &specs.Root{Path: pl.root.path, Readonly: pl.readOnly},
		Process:  s.specProcess(pl),
		Mounts:   s.specMounts(pl),
		Linux:    s.specLinux(pl),
	}
	switch {
	case pl.root.kind == rootHost:
		spec.Annotations = map[string]string{annotationRoot: "host"}
	case !pl.rootInPlace:
		// A bundle's root is written in place; a definition's is not.
		spec.Annotations = map[string]string{annotationRoot: "overlay"}
	}
	pl.oci.specExtras(spec)
	if !pl.init {
		if spec.Annotations == nil {
			spec.Annotations = map[string]string{}
		}
		spec.Annotations[annotationInit] = "false"
	}
	return spec, nil
}

// The annotations that carry what a definition holds beyond the
// runtime-spec's fields.
const (
	annotationRoot = "org.sandboxkit.root" // "host": HostRoot; "overlay": Dir, under a throw-away overlay
	annotationInit = "org.sandboxkit.init" // "false": WithInit(false)
)

func (s *Sandbox) specProcess(pl *plan) *specs.Process {
	names := capNames(pl.caps)
	caps := &specs.LinuxCapabilities{Bounding: names}
	switch cs := pl.capSets; {
	case cs != nil:
		caps = &specs.LinuxCapabilities{Bounding: capNames(cs.bounding), Effective: capNames(cs.effective),
			Permitted: capNames(cs.permitted), Inheritable: capNames(cs.inheritable), Ambient: capNames(cs.ambient)}
	case pl.uid == 0:
		// A user other than root gets no capabilities (see addCapset).
		caps.Effective, caps.Permitted = slices.Clone(names), slices.Clone(names)
	}
	p := &specs.Process{
		Args:            pl.argv,
		Env:             pl.env,
		Cwd:             pl.workdir,
		User:            specs.User{UID: uint32(pl.uid), GID: uint32(pl.gid)},
		Capabilities:    caps,
		NoNewPrivileges: !s.newPrivs,
	}
	for _, r := range pl.rlimits {
		p.Rlimits = append(p.Rlimits, specs.POSIXRlimit{Type: r.resource.String(), Soft: r.soft, Hard: r.hard})
	}
	return p
}

// specMounts returns the mounts a run makes, in their order: /proc, /dev
// and what is mounted on it, /sys and /tmp, then binds and tmpfs mounts.
func (s *Sandbox) specMounts(pl *plan) []specs.Mount {
	proc := []string{"nosuid", "nodev", "noexec"}
	if !pl.writableProc {
		proc = append(proc, "ro")
	}
	out := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: proc},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "noexec", "mode=755", "size=64k", "ro"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "nodev", "noexec", "mode=1777"}},
	}
	if pl.mqueue {
		out = append(out, specs.Mount{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "nodev", "noexec"}})
	}
	out = append(out, []specs.Mount{
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "nodev", "noexec", "ro"}},
	}...)
	if !pl.oci.noTmp {
		out = append(out, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=" + strconv.FormatInt(pl.scratch, 10)}})
	}
	for _, m := range pl.mounts {
		switch m.kind {
		case mountBind:
			out = append(out, specs.Mount{Destination: m.target, Type: "bind", Source: m.source, Options: m.specOptions()})
		case mountTmpfs:
			out = append(out, specs.Mount{Destination: m.target, Type: "tmpfs", Source: m.tmpfsSource(), Options: m.specOptions()})
		}
	}
	return out
}

// specOptions returns the options of a bind or tmpfs in a spec, in the
// order Spec writes them.
func (m mount) specOptions() []string {
	var opts []string
	if m.kind == mountBind {
		opts = append(opts, "rbind")
	}
	opts = append(opts, "nosuid", "nodev")
	if m.readOnly {
		opts = append(opts, "ro")
	}
	if m.noexec {
		opts = append(opts, "noexec")
	}
	if m.atime != "" {
		opts = append(opts, m.atime)
	}
	if m.nodiratime {
		opts = append(opts, "nodiratime")
	}
	if m.kind == mountTmpfs {
		if m.mode != 0 {
			opts = append(opts, "mode="+strconv.FormatUint(uint64(m.mode), 8))
		}
		opts = append(opts, "size="+strconv.FormatInt(m.size, 10))
	}
	if m.propagation != "" {
		opts = append(opts, m.propagation)
	}
	return opts
}

func (s *Sandbox) specLinux(pl *plan) *specs.Linux {
	l := &specs.Linux{CgroupsPath: s.cgroupPath}
	for _, ns := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.MountNamespace, specs.UTSNamespace, specs.IPCNamespace, specs.CgroupNamespace} {
		l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: ns})
	}
	if pl.net.kind == networkNone {
		l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	for _, j := range pl.oci.joins {
		i := slices.IndexFunc(l.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == j.kind })
		if i < 0 {
			l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: j.kind, Path: j.path})
		} else {
			l.Namespaces[i].Path = j.path
		}
	}
	if pl.userns != nil {
		l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		l.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(pl.userns.uid), Size: uint32(pl.userns.size)}}
		l.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(pl.userns.gid), Size: uint32(pl.userns.gids())}}
	}
	if lim := pl.limits; lim.oci != nil {
		l.Resources = cloneResources(lim.oci)
	} else if lim != (limits{}) {
		r := &specs.LinuxResources{}
		if lim.memory > 0 {
			m, sw := lim.memory, lim.memory
			r.Memory = &specs.LinuxMemory{Limit: &m, Swap: &sw}
		}
		if lim.cpu > 0 {
			period := uint64(cfsPeriod / time.Microsecond)
			quota := int64(float64(lim.cpu) * float64(period))
			r.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
		}
		if lim.pids > 0 {
			n := int64(lim.pids)
			r.Pids = &specs.LinuxPids{Limit: &n}
		}
		l.Resources = r
	}
	if pl.hardened {
		if pl.seccomp != nil && pl.seccomp.profile != nil {
			l.Seccomp = seccompSpec(pl.seccomp.profile.p)
		}
		f := facts()
		l.MaskedPaths = append(slices.Clone(f.maskedFiles), f.maskedDirs...)
		if pl.writableProc {
			l.ReadonlyPaths = slices.Clone(f.readOnly)
		}
	}
	return l
}

// WriteBundle writes an OCI bundle for a run of argv into dir: its
// config.json, as [Sandbox.Spec] returns it, naming the root by its
// absolute path (the root is not copied). dir must exist.
func (s *Sandbox) WriteBundle(dir string, argv ...string) error {
	spec, err := s.Spec(argv...)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return fmt.Errorf("sandbox: write bundle: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("sandbox: write bundle: %w", err)
	}
	return nil
}

// FromSpec returns the definition that an OCI runtime configuration
// describes, for the bundle in bundleDir (against which a relative
// root.path is resolved). It goes through the same builder, so the
// definition is checked as one built by hand. The command is not part of
// a definition: run spec.Process.Args.
//
// Every field it does not honour is an error: the result is a
// [*ConfigError] whose [*FieldError]s name each field by its JSON path
// ("linux.sysctl.kernel.panic", "mounts[6].type"). It honours:
//
//   - ociVersion 1.0.0 through 1.3.x, pre-releases included;
//   - root: the bundle's directory, bound as the root and written in place
//     as under runc (read only with root.readonly); a spec that Spec wrote
//     from a definition on Dir keeps its throw-away overlay;
//   - hostname, and process.args, env, cwd, user (uid, gid,
//     additionalGids; a umask of 022), the five capability sets, rlimits,
//     noNewPrivileges (when false the filter goes on before the
//     capabilities are dropped, as in runc) and oomScoreAdj;
//   - the mounts a sandbox always makes (/proc, its writability included,
//     /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys and /tmp, whose size sets
//     WithScratchSize; no /tmp when the spec has none), each made as a
//     sandbox makes it whatever its options say; binds and tmpfs mounts,
//     in the spec's order (parents before the mounts below them), nosuid
//     and nodev, with ro, rw, noexec, exec, strictatime, noatime,
//     relatime, nodiratime, a tmpfs's source, size= and mode=, and a
//     propagation: private (the default), slave (a bind receives the
//     mounts the host makes below its source, if that is shared, and
//     sends none back), shared (a slave so, and a peer group of its own
//     in the sandbox), unbindable, or their r forms for the whole tree
//     (any other option is refused; mode= and size= of a bind are
//     ignored, as the kernel ignores them on a bind);
//   - the pid, mount, uts, ipc, cgroup, network and user namespaces (no
//     network namespace means the host's network), with one uid and one
//     gid mapping from 0; the network, ipc, uts, cgroup, pid and mount
//     namespaces can be joined by path (a pod's), the user one cannot. In
//     a joined PID namespace the program is not PID 1 (the namespace's
//     own init is); in a joined mount namespace the root is set up among
//     its mounts and made its root, as under runc, which moves every
//     process of it whose root was the namespace's into the sandbox's
//     root: the caller's own and the host's first mount namespace are
//     refused when the sandbox starts;
//   - linux.resources: memory, CPU and pids limits, and the rest (devices,
//     blkio, hugetlb, network, rdma, the other memory and CPU settings)
//     applied by containerd/cgroups in every hierarchy; cgroupsPath, as a
//     path (a relative one below the hierarchies' roots; systemd's
//     slice:prefix:name is refused);
//   - the seccomp profile (SCMP_CMP_EQ, NE and MASKED_EQ conditions; the
//     filter allows the native architecture only and kills calls made
//     through another one's convention);
//   - maskedPaths and readonlyPaths, namespaced sysctls (net.*, the IPC
//     ones, fs.mqueue.*), devices (made in /dev, bound from the host's in
//     a user namespace) and rootfsPropagation.
//
// The sandbox is stricter than a spec in places it does not describe:
// RLIMIT_NOFILE and RLIMIT_CORE have defaults, the uts, ipc and cgroup
// namespaces are always new, and kernel files are always masked.
func FromSpec(spec *specs.Spec, bundleDir string) (*Sandbox, error) {
	if spec == nil {
		return nil, &ConfigError{Problems: []*FieldError{{Field: "spec", Value: nil, Reason: "must not be nil"}}}
	}
	if spec.Linux != nil {
		// The host facts (a few dozen system calls, once per process),
		// which readLinux waits for, are probed while the spec is copied:
		// an OCI runtime is a process per container, which pays for both
		// every time.
		go facts()
	}
	r := &specReader{left: cloneSpec(spec)}
	sb := r.read(spec, bundleDir)
	left, err := oci.Leftovers(r.left)
	if err != nil {
		return nil, fmt.Errorf("sandbox: read spec: %w", err)
	}
	for _, path := range left {
		r.problem(path, leftValue(path), "unsupported")
	}
	if len(r.problems) > 0 {
		return nil, &ConfigError{Problems: r.problems}
	}
	if err := sb.Validate(); err != nil {
		return nil, err
	}
	return sb, nil
}

// leftValue is what a FieldError shows for a field left over: its path's
// last part.
func leftValue(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return strings.TrimSuffix(path[i+1:], "]")
	}
	return path
}

// cloneSpec deep-copies a spec through JSON, so that the reader can clear
// what it handled in the copy. The seccomp profile is left out: readLinux
// reads it from the spec itself and clears it from the copy whole, and its
// hundreds of syscall names are most of a spec's JSON, which an OCI
// runtime would otherwise encode and decode once more per container.
func cloneSpec(spec *specs.Spec) *specs.Spec {
	s := *spec
	if spec.Linux != nil && spec.Linux.Seccomp != nil {
		l := *spec.Linux
		l.Seccomp = nil
		s.Linux = &l
	}
	b, _ := json.Marshal(&s)
	var c specs.Spec
	_ = json.Unmarshal(b, &c)
	return &c
}

// specReader turns a spec into a definition. left is a copy of the spec
// whose handled fields it clears: what remains is unsupported.
type specReader struct {
	left     *specs.Spec
	problems []*FieldError
}

func (r *specReader) problem(field string, value any, reason string) {
	r.problems = append(r.problems, &FieldError{Field: field, Value: value, Reason: reason})
}

func (r *specReader) read(spec *specs.Spec, bundleDir string) *Sandbox {
	if reason := oci.CheckVersion(spec.Version); reason != "" {
		r.problem("ociVersion", spec.Version, reason)
	}
	r.left.Version = ""
	ann := spec.Annotations
	r.left.Annotations = nil // free-form metadata: only ours is read

	var root Root
	switch {
	case spec.Root == nil || spec.Root.Path == "":
		r.problem("root.path", "", "must name the root file system")
	case ann[annotationRoot] == "host":
		root = HostRoot()
	case filepath.IsAbs(spec.Root.Path):
		root = Dir(filepath.Clean(spec.Root.Path))
	default:
		abs, err := filepath.Abs(filepath.Join(bundleDir, spec.Root.Path))
		if err != nil {
			r.problem("root.path", spec.Root.Path, err.Error())
		}
		root = Dir(abs)
	}
	sb := New(root)
	if specOf(root).kind == rootDir && ann[annotationRoot] != "overlay" {
		sb.rootInPlace = true // as runc: the program writes in the bundle's root
	}
	r.left.Root = nil
	if spec.Root != nil && spec.Root.Readonly {
		sb = sb.WithReadOnlyRoot()
	}
	if ann[annotationInit] == "false" {
		sb = sb.WithInit(false)
	}
	if spec.Hostname != "" {
		sb = sb.WithHostname(spec.Hostname)
	}
	r.left.Hostname = ""
	sb = r.readProcess(sb, spec.Process)
	sb = r.readMounts(sb, spec.Mounts)
	sb = r.readLinux(sb, spec.Linux)
	sb = r.readExtras(sb, spec)
	// What the builder refused, under the spec's names.
	r.problems = append(r.problems, sb.problems...)
	sb.problems = nil
	return sb
}

func (r *specReader) readProcess(sb *Sandbox, p *specs.Process) *Sandbox {
	if p == nil {
		r.problem("process", nil, "must be set")
		return sb
	}
	lp := r.left.Process
	lp.Args = nil // the caller runs them
	env := slices.DeleteFunc(slices.Clone(p.Env), func(e string) bool { return e == "" })
	sb = sb.WithEnv(env...)
	lp.Env = nil
	if p.Cwd != "" {
		sb = sb.WithWorkdir(p.Cwd)
	}
	lp.Cwd = ""
	sb = sb.WithUser(int(p.User.UID), int(p.User.GID))
	lp.User.UID, lp.User.GID = 0, 0
	if p.User.Umask != nil && *p.User.Umask == 0o022 {
		lp.User.Umask = nil // what the sandbox sets
	}
	if !p.NoNewPrivileges {
		sb = sb.clone()
		sb.newPrivs = true
	}
	lp.NoNewPrivileges = false
	for i, rl := range p.Rlimits {
		res, ok := rlimitByName(rl.Type)
		if !ok {
			r.problem(fmt.Sprintf("process.rlimits[%d].type", i), rl.Type, "unknown resource")
			continue
		}
		sb = sb.WithRlimit(res, rl.Soft, rl.Hard)
	}
	lp.Rlimits = nil
	if c := p.Capabilities; c != nil {
		var cs capSets
		for _, set := range []struct {
			field string
			names []string
			into  *[]int
		}{
			{"bounding", c.Bounding, &cs.bounding}, {"effective", c.Effective, &cs.effective},
			{"permitted", c.Permitted, &cs.permitted}, {"inheritable", c.Inheritable, &cs.inheritable},
			{"ambient", c.Ambient, &cs.ambient},
		} {
			nums, unknown := capNumbers(set.names)
			if unknown != "" {
				r.problem("process.capabilities."+set.field, unknown, "unknown capability")
			}
			*set.into = nums
		}
		sb = sb.WithCapabilities(c.Bounding...)
		sb.capSets = &cs // after WithCapabilities, which clears it
		lp.Capabilities = nil
	} else {
		sb = sb.WithCapabilities()
	}
	return sb
}

// rlimitByName returns the resource named like "RLIMIT_NOFILE".
func rlimitByName(name string) (Rlimit, bool) {
	for r := RlimitCPU; r <= RlimitRTTIME; r++ {
		if r.String() == name {
			return r, true
		}
	}
	return 0, false
}

// fixedMounts are the mounts every sandbox makes, by target, with the
// file system type a spec must give them.
var fixedMounts = map[string]string{
	"/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs", "/sys": "sysfs", "/tmp": "tmpfs",
	"/dev/mqueue": "mqueue",
}

func (r *specReader) readMounts(sb *Sandbox, mounts []specs.Mount) *Sandbox {
	for i, m := range mounts {
		field := fmt.Sprintf("mounts[%d]", i)
		opts := map[string]string{}
		for _, o := range m.Options {
			k, v, _ := strings.Cut(o, "=")
			opts[k] = v
		}
		_, ro := opts["ro"]
		_, bind := opts["bind"]
		_, rbind := opts["rbind"]
		if fs, ok := fixedMounts[m.Destination]; ok && (m.Type == fs || (m.Type == "" && !bind && !rbind)) {
			switch m.Destination {
			case "/proc":
				if !ro {
					sb = sb.WithWritableProc()
				}
			case "/dev/mqueue":
				sb = sb.clone()
				sb.mqueue = true
			case "/tmp":
				if size, ok := opts["size"]; ok {
					n, err := parseSize(size)
					if err != nil {
						r.problem(field+".options", size, err.Error())
					} else {
						sb = sb.WithScratchSize(n)
					}
				}
			}
			r.left.Mounts[i] = specs.Mount{}
			continue
		}
		var mnt mount
		switch {
		case m.Type == "bind" || bind || rbind:
			var o []MountOption
			if ro {
				o = append(o, ReadOnly)
			}
			src := m.Source
			if !filepath.IsAbs(src) {
				r.problem(field+".source", src, "must be an absolute path")
			}
			sb = sb.WithBind(src, m.Destination, o...)
			mnt = mount{kind: mountBind}
		case m.Type == "tmpfs":
			size := int64(DefaultScratchSize)
			if v, ok := opts["size"]; ok {
				n, err := parseSize(v)
				if err != nil {
					r.problem(field+".options", v, err.Error())
				}
				size = n
			}
			sb = sb.WithTmpfs(m.Destination, size)
			mnt = mount{kind: mountTmpfs, readOnly: ro}
			if m.Source != "tmpfs" {
				mnt.source = m.Source
			}
		default:
			r.problem(field+".type", m.Type, "unsupported: a sandbox mounts binds and tmpfs, beside its own /proc, /dev, /sys and /tmp")
			r.left.Mounts[i] = specs.Mount{}
			continue
		}
		r.readMountOptions(field, m.Options, &mnt)
		if n := len(sb.mounts); n > 0 && sb.mounts[n-1].target == path.Clean(m.Destination) {
			// The builder took it: add what only a spec says.
			sb = sb.clone()
			got := &sb.mounts[n-1]
			got.mode, got.noexec, got.atime, got.nodiratime, got.propagation = mnt.mode, mnt.noexec, mnt.atime, mnt.nodiratime, mnt.propagation
			if mnt.kind == mountTmpfs {
				got.source, got.readOnly = mnt.source, mnt.readOnly
			}
		}
		r.left.Mounts[i] = specs.Mount{}
	}
	r.left.Mounts = nil
	return sb
}

// readMountOptions reads the options of a spec's bind or tmpfs into m.
// A bind or tmpfs is always nosuid and nodev; an option the sandbox
// cannot honour is refused, never dropped. mode= and size= of a bind are
// data of a new file system, which a bind does not make: the kernel
// ignores them on a bind (under runc too), and so does the sandbox.
func (r *specReader) readMountOptions(field string, options []string, m *mount) {
	for _, o := range options {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "bind", "rbind", "ro", "rw", "nosuid", "nodev", "exec", "size":
		case "noexec":
			m.noexec = true
		case "strictatime", "noatime", "relatime":
			m.atime = k
		case "nodiratime":
			m.nodiratime = true
		case "mode":
			n, err := strconv.ParseUint(v, 8, 32)
			switch {
			case m.kind != mountTmpfs:
			case err != nil || n&^0o7777 != 0 || n == 0:
				r.problem(field+".options", o, "mode must be octal permission bits other than 0, such as 755 or 1777")
			default:
				m.mode = uint32(n)
			}
		default:
			if _, ok := mountPropagations[k]; ok && v == "" {
				m.propagation = k // the last one wins, as in runc
				continue
			}
			r.problem(field+".options", o, "unsupported: binds and tmpfs mounts are nosuid and nodev; they take ro, rw, noexec, exec, "+
				"strictatime, noatime, relatime, nodiratime, a propagation (private, shared, slave, unbindable, or their r forms), "+
				"and for a tmpfs size= and mode=")
		}
	}
}

// parseSize reads a tmpfs size: bytes, or with a k, m or g suffix.
func parseSize(v string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(v, "k"):
		mult, v = 1<<10, strings.TrimSuffix(v, "k")
	case strings.HasSuffix(v, "m"):
		mult, v = 1<<20, strings.TrimSuffix(v, "m")
	case strings.HasSuffix(v, "g"):
		mult, v = 1<<30, strings.TrimSuffix(v, "g")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("size must be a positive number of bytes, with an optional k, m or g")
	}
	return n * mult, nil
}

func (r *specReader) readLinux(sb *Sandbox, l *specs.Linux) *Sandbox {
	if l == nil {
		r.problem("linux", nil, "must be set")
		return sb
	}
	ll := r.left.Linux
	have := map[specs.LinuxNamespaceType]bool{}
	sb = sb.clone()
	for i, ns := range l.Namespaces {
		if ns.Path != "" {
			switch {
			case !slices.Contains(joinable, ns.Type):
				r.problem(fmt.Sprintf("linux.namespaces[%d].path", i), ns.Path, fmt.Sprintf("unsupported: a sandbox makes its own %s namespace; it can join network, ipc, uts, cgroup, pid and mount namespaces", ns.Type))
			case !filepath.IsAbs(ns.Path):
				r.problem(fmt.Sprintf("linux.namespaces[%d].path", i), ns.Path, "must be an absolute path")
			default:
				sb.oci.joins = append(sb.oci.joins, nsJoin{kind: ns.Type, path: ns.Path})
			}
			have[ns.Type] = true
			continue
		}
		switch ns.Type {
		case specs.PIDNamespace, specs.MountNamespace, specs.UTSNamespace, specs.IPCNamespace, specs.CgroupNamespace, specs.NetworkNamespace, specs.UserNamespace:
			have[ns.Type] = true
		default:
			r.problem(fmt.Sprintf("linux.namespaces[%d].type", i), ns.Type, "unsupported")
		}
	}
	ll.Namespaces = nil
	for _, need := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.MountNamespace} {
		if !have[need] {
			r.problem("linux.namespaces", need, "must be listed: a sandbox always has its own")
		}
	}
	if !have[specs.NetworkNamespace] || slices.ContainsFunc(sb.oci.joins, func(j nsJoin) bool { return j.kind == specs.NetworkNamespace }) {
		sb = sb.WithNetwork(HostNetwork()) // the host's, or the one joined
	}
	if have[specs.UserNamespace] && len(sb.oci.joins) > 0 {
		r.problem("linux.namespaces", "user", "a user namespace cannot join namespaces by path: the host's user namespace owns them")
	}
	if have[specs.UserNamespace] {
		u, g := l.UIDMappings, l.GIDMappings
		switch {
		case len(u) != 1 || len(g) != 1:
			r.problem("linux.uidMappings", len(u), "must be one mapping each of uids and gids")
		case u[0].ContainerID != 0 || g[0].ContainerID != 0:
			r.problem("linux.uidMappings", u[0], "must map from 0")
		default:
			sb = sb.WithIDMap(int(u[0].HostID), int(g[0].HostID), int(max(u[0].Size, g[0].Size)))
			if sb.userns != nil && u[0].Size != g[0].Size {
				m := *sb.userns
				m.size, m.gidSize = int(u[0].Size), int(g[0].Size)
				sb.userns = &m
			}
		}
		ll.UIDMappings, ll.GIDMappings = nil, nil
	}
	if l.Resources != nil {
		sb = r.readResources(sb, l.Resources)
	}
	if p := l.CgroupsPath; p != "" {
		if !strings.HasPrefix(p, "/") && strings.Count(p, ":") != 2 {
			// Relative: below the hierarchies' roots, as runc puts it
			// below its own cgroup, which is the root here.
			p = "/" + p
		}
		if reason := checkCgroupPath(p); reason != "" {
			r.problem("linux.cgroupsPath", p, reason)
		} else {
			sb = sb.WithCgroupPath(p)
		}
	}
	ll.CgroupsPath = ""
	if l.Seccomp != nil {
		prof, problems := seccompFromSpec(l.Seccomp)
		r.problems = append(r.problems, problems...)
		if prof != nil {
			sb = sb.WithSeccomp(&SeccompProfile{p: prof})
		}
	} else {
		sb = sb.WithSeccomp(nil)
	}
	ll.Seccomp = nil
	f := facts()
	masked := append(append(slices.Clone(f.maskedFiles), f.maskedDirs...), maskedAlways...)
	// The sandbox's own masks are there anyway; the rest are masked too.
	sb = sb.clone()
	for i, p := range l.MaskedPaths {
		switch {
		case slices.Contains(masked, p):
		case ociPath(p) != "":
			r.problem(fmt.Sprintf("linux.maskedPaths[%d]", i), p, ociPath(p))
		default:
			sb.oci.masked = append(sb.oci.masked, path.Clean(p))
		}
	}
	ll.MaskedPaths = nil
	for i, p := range l.ReadonlyPaths {
		switch {
		case slices.Contains(f.readOnly, p) || slices.Contains(readOnlyAlways, p):
		case ociPath(p) != "":
			r.problem(fmt.Sprintf("linux.readonlyPaths[%d]", i), p, ociPath(p))
		default:
			sb.oci.readOnly = append(sb.oci.readOnly, path.Clean(p))
		}
	}
	ll.ReadonlyPaths = nil
	return sb
}

// maskedAlways and readOnlyAlways are paths that specs commonly list and
// that a sandbox hides or protects anyway: the masks of a kernel that
// lacks some files, and what a read-only /sys covers.
var (
	maskedAlways   = []string{"/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/acpi", "/proc/asound", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
	readOnlyAlways = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

func (r *specReader) readResources(sb *Sandbox, res *specs.LinuxResources) *Sandbox {
	lr := r.left.Linux.Resources
	if m := res.Memory; m != nil && m.Limit != nil && *m.Limit > 0 {
		sb = sb.WithMemory(*m.Limit)
		lr.Memory.Limit = nil
		if m.Swap != nil && *m.Swap == *m.Limit {
			lr.Memory.Swap = nil
		}
	}
	if c := res.CPU; c != nil && c.Quota != nil && *c.Quota > 0 {
		period := uint64(cfsPeriod / time.Microsecond)
		if c.Period != nil && *c.Period > 0 {
			period = *c.Period
		}
		sb = sb.WithCPU(Cores(float64(*c.Quota) / float64(period)))
		lr.CPU.Quota, lr.CPU.Period = nil, nil
	}
	if p := res.Pids; p != nil && p.Limit != nil && *p.Limit > 0 {
		sb = sb.WithPids(int(*p.Limit))
		lr.Pids.Limit = nil
	}
	// The rest (devices, blkio, hugetlb, net_cls and net_prio, the other
	// memory and CPU settings, rdma) the cgroup applies as the spec says,
	// with the limits above: the whole section is kept.
	unified := lr.Unified
	lr.Unified = nil
	if rest, _ := oci.Leftovers(lr); len(rest) > 0 {
		sb = sb.clone()
		sb.oci.resources = cloneResources(res)
		sb.oci.resources.Unified = nil
		*lr = specs.LinuxResources{}
	}
	lr.Unified = unified // cgroup v2 files by name: not taken
	return sb
}
