// Package sandbox runs programs in isolated, resource-limited Linux
// sandboxes, from Go, with no daemon and no external runtime.
//
// A [Sandbox] is an immutable definition: a root file system, limits,
// environment and I/O. [Sandbox.Run] starts a program in a fresh sandbox
// made from it, waits for it and tears everything down:
//
//	sb := sandbox.New(sandbox.HostRoot()).
//		WithMemory(256 << 20).
//		WithCPU(0.5).
//		WithPids(64).
//		WithTimeout(5 * time.Second)
//	res, err := sb.Run(ctx, "/bin/sh", "-c", "echo hi")
//	if err != nil {
//		return err // the sandbox could not run: bad definition, no root, ...
//	}
//	fmt.Printf("exit %d, %s, cpu %v, memory peak %d\n",
//		res.ExitCode, res.Stdout, res.CPU, res.MemoryPeak)
//
// Each run gets new PID, mount, UTS, IPC, network and cgroup namespaces;
// its program is PID 1 and sees only the processes it starts. Its root is
// an overlay: the base ([Dir] or [HostRoot]) is read only and every change
// goes to a tmpfs layer that disappears with the run. It has a fresh /proc,
// a minimal /dev, a read-only /sys and a tmpfs /tmp, and nothing of the
// host's file system outside the root is reachable (pivot_root, not
// chroot). Its environment is only what WithEnv gives, plus PATH.
//
// [Sandbox.WithBind], [Sandbox.WithTmpfs] and [Sandbox.WithFile] hand a
// sandbox its inputs; [Sandbox.WithReadOnlyRoot] keeps it from writing
// anywhere else. [Bridge] gives it its own address on a shared bridge, with
// ports published to the host by [Sandbox.WithPublish] (on 127.0.0.1) and
// [Sandbox.WithPublishOn] (on another host address, or all of them);
// [Sandbox.WithUserNamespace] maps its root to an unprivileged host user.
//
// # Requirements
//
// Linux 5.12 or later, run as root (uid 0). Cgroup v2, v1, or a hybrid of
// both (v1 controllers are used when the v2 hierarchy has none); the v1
// controllers needed are memory, cpu, cpuacct and pids. Overlayfs and tmpfs.
// The package builds everywhere with CGO_ENABLED=0; on other systems Run
// returns an error matching errors.ErrUnsupported.
//
// # Errors
//
// A program's outcome (exit status, signal, timeout, out of memory) is data
// in [Result], never an error. Run returns an error only when it could not
// run the program: [ErrInvalidConfig] (a [*ConfigError] listing every
// [*FieldError]) for a bad definition, fs.ErrPermission without root,
// fs.ErrNotExist for a missing root or command, errors.ErrUnsupported when
// the kernel lacks a feature, an error matching ctx.Err() when the caller's
// context ended the run, and otherwise an error naming the operation and
// path that failed.
//
// # Cleanup
//
// When Run returns, on every path, nothing of the sandbox remains: its
// processes are dead (the program is PID 1 of its namespace, so its exit
// takes every other process with it), its mounts and network namespace
// died with it, its cgroup is removed after its usage was read, and its
// bridge address, if any, is free again. A caller that crashes mid-run
// leaves only an empty cgroup, which [Collect] removes.
//
// # Security
//
// The root, namespaces and limits above keep a program from the host's
// files, processes and network and bound what it consumes. On top, every
// sandbox is hardened by default: Docker's capability set
// ([DefaultCapabilities], [Sandbox.WithCapabilities]), no_new_privs,
// Docker's seccomp profile ([DefaultSeccompProfile], [Sandbox.WithSeccomp]),
// runc's masked and read-only /proc and /sys paths, nodev mounts, only
// descriptors 0 to 2, RLIMIT_NOFILE 1024 and RLIMIT_CORE 0
// ([Sandbox.WithRlimit]). The child runs no code of the host program
// between clone and exec, only system calls prepared in advance, and
// executes the payload through a sealed stub, so the host binary is never
// what a sandbox can execute or write. SECURITY.md in the repository lists
// each claim with the test that tries the escape.
package sandbox
