//go:build linux

package main

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/internal/seccomp"
)

// busyboxCandidates are where Debian's busybox-static installs busybox.
var busyboxCandidates = []string{"/bin/busybox", "/usr/bin/busybox"}

// memoryLimit is the memory limit, in bytes, of every contender that sets
// one (all but bwrap and the baselines).
const memoryLimit = 64 << 20

// buildRootfs makes a minimal root file system under dir: a static busybox
// with a few applet links, and the empty directories that the contenders
// mount on. It returns the busybox it copied.
func buildRootfs(dir string) (busybox string, err error) {
	for _, c := range busyboxCandidates {
		if static, err := isStatic(c); err == nil && static {
			busybox = c
			break
		}
	}
	if busybox == "" {
		return "", fmt.Errorf("no static busybox at %v (apt-get install busybox-static)", busyboxCandidates)
	}
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp", "etc", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return "", err
	}
	if err := copyFile(busybox, filepath.Join(dir, "bin", "busybox"), 0o755); err != nil {
		return "", err
	}
	for _, applet := range []string{"true", "false", "sh", "echo", "cat", "ls", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
			return "", err
		}
	}
	return busybox, nil
}

// isStatic reports whether the ELF file at path has no program interpreter,
// that is, needs no dynamic loader or libraries from the root file system.
func isStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ociSpec returns the runtime configuration that runc and crun get: busybox
// true on the read-only root, in new pid, mount, uts, ipc, network (empty,
// loopback only) and cgroup namespaces, with a memory limit of 64 MiB
// (memory+swap, like sandboxkit's WithMemory) under cgroupsPath, and the
// mounts of runc's default spec that sandboxkit also makes: /proc, /dev as
// a tmpfs, /dev/pts, /dev/shm and /sys read only, plus a tmpfs on /tmp.
//
// It has the hardening sandboxkit applies by default, so that both sides do
// the same work: Docker's capability set, no_new_privs, NOFILE 1024 and
// CORE 0, runc's masked and read-only paths, and the same seccomp profile
// (sandboxkit's, converted to the OCI form).
func ociSpec(root, cgroupsPath string) *specs.Spec {
	limit := int64(memoryLimit)
	caps := sandbox.DefaultCapabilities()
	return &specs.Spec{
		// The version the installed runc and crun were built for; both
		// accept every 1.0.x configuration.
		Version: "1.0.2",
		Process: &specs.Process{
			Terminal: false,
			User:     specs.User{UID: 0, GID: 0},
			Args:     []string{"/bin/true"},
			Env:      []string{"PATH=" + sandbox.DefaultPath},
			Cwd:      "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: true,
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024},
				{Type: "RLIMIT_CORE", Hard: 0, Soft: 0},
			},
		},
		Root:     &specs.Root{Path: root, Readonly: true},
		Hostname: sandbox.DefaultHostname,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.MountNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.NetworkNamespace},
				{Type: specs.CgroupNamespace},
			},
			CgroupsPath: cgroupsPath,
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
				"/sys/firmware", "/sys/devices/virtual/powercap",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
			Seccomp:       ociSeccomp(),
			Resources: &specs.LinuxResources{
				// As in runc's default spec; the runtimes then allow
				// only the standard devices they create in /dev.
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				Memory:  &specs.LinuxMemory{Limit: &limit, Swap: &limit},
			},
		},
	}
}

// writeSpec writes spec as bundle/config.json.
func writeSpec(bundle string, spec *specs.Spec) error {
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644)
}

// ociSeccomp converts sandboxkit's default seccomp profile to the OCI form.
func ociSeccomp() *specs.LinuxSeccomp {
	p := seccomp.Default()
	out := &specs.LinuxSeccomp{
		DefaultAction:   specs.LinuxSeccompAction(p.DefaultAction.String()),
		DefaultErrnoRet: errnoRet(p.DefaultErrno),
		Architectures:   []specs.Arch{specs.ArchX86_64, specs.ArchAARCH64},
	}
	for _, r := range p.Rules {
		sc := specs.LinuxSyscall{Names: r.Names, Action: specs.LinuxSeccompAction(r.Action.String())}
		if r.Action == seccomp.ActErrno {
			sc.ErrnoRet = errnoRet(r.Errno)
		}
		for _, a := range r.Args {
			arg := specs.LinuxSeccompArg{Index: uint(a.Index), Value: a.Value, Op: specs.LinuxSeccompOperator(a.Op.String())}
			if a.Op == seccomp.OpMaskedEqual {
				// libseccomp's order, which runc keeps: the mask first,
				// then the value the masked argument must equal.
				arg.Value, arg.ValueTwo = a.Mask, a.Value
			}
			sc.Args = append(sc.Args, arg)
		}
		out.Syscalls = append(out.Syscalls, sc)
	}
	out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{Names: p.Allow, Action: specs.ActAllow})
	return out
}

// errnoRet returns the errno an OCI rule returns: EPERM for 0.
func errnoRet(e uint16) *uint {
	n := uint(e)
	if n == 0 {
		n = 1 // EPERM
	}
	return &n
}
