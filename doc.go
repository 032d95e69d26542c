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
// its program is the child of a small init that is PID 1 (forwarding
// signals, reaping orphans; [Sandbox.WithInit]) and sees only the
// processes it starts. Its root is
// an overlay: the base ([Dir], [HostRoot] or an [*Image] from a [Store]) is
// read only and every change
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
// [OpenStore] keeps OCI images on the host, each layer unpacked once and
// checked against its digests; [Store.Pull] and [Store.Load] return an
// [*Image] to run on.
//
// A definition is also an OCI runtime configuration ([Sandbox.Spec],
// [FromSpec]). [Sandbox.StartDetached] starts a sandbox that outlives its
// caller, held before its program until a gate opens, as an OCI runtime's
// create and start do; [Sandbox.Attach] finds it again by its PID from
// another process, and [Command.StartDetached] runs a second program in it
// that outlives the caller too (an OCI runtime's exec). cmd/sandboxkit-runtime
// is such a runtime, with runc's command line.
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
// fs.ErrNotExist for a missing root or command (a program that cannot be
// executed is an error naming its path and errno), [ErrUnsafePath] for a
// path that would lead out of the root, errors.ErrUnsupported when
// the kernel lacks a feature, an error matching ctx.Err() when the caller's
// context ended the run, and otherwise an error naming the operation and
// path that failed.
//
// # Cleanup
//
// When Run returns, on every path, nothing of the sandbox remains: its
// processes are dead (the end of the program ends its PID namespace, and
// every other process with it), its mounts and network namespace died with
// it, its cgroup is removed after its usage was read, and its veth and
// bridge address, if any, are gone and free. A failure to release any of
// that after the program ran is reported in Result.TeardownErr, beside a
// valid result. A caller that crashes mid-run takes its sandboxes along
// and leaves only what the kernel keeps: empty cgroups and, on a bridge,
// IP leases with their NAT entries, which [Collect] removes.
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
// ([Sandbox.WithRlimit]), a session keyring of its own, and io_uring and
// the socket families Docker refuses denied. Every path the sandbox's
// setup resolves (mount targets, files, the working directory) is resolved
// inside the root with no /proc magic links. The child runs no code of the
// host program between clone and exec, only system calls prepared in
// advance, and executes the payload through a sealed init or stub, so the
// host binary is never what a sandbox can execute or write. SECURITY.md in the repository lists
// each claim with the test that tries the escape.
package sandbox
