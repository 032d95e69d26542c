package main

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// featuresDoc returns what this runtime implements, as runc features does.
func featuresDoc() *features.Features {
	t, f := true, false
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "poststart", "poststop"},
		MountOptions: []string{"bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec", "exec", "strictatime", "noatime", "relatime", "nodiratime",
			"private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable", "size", "mode"},
		Linux: &features.Linux{
			Namespaces: []string{"pid", "mount", "uts", "ipc", "cgroup", "network", "user"},
			Cgroup:     &features.Cgroup{V1: &t, V2: &t, Systemd: &f, SystemdUser: &f},
			Seccomp: &features.Seccomp{
				Enabled:   &t,
				Actions:   []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_LOG"},
				Operators: []string{"SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_MASKED_EQ"},
				Archs:     []string{"SCMP_ARCH_X86_64"},
			},
			Apparmor: &features.Apparmor{Enabled: &f},
			Selinux:  &features.Selinux{Enabled: &f},
		},
	}
}
