package sandbox_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox"
)

// escapeEnv, when set, makes the test binary an escape helper: copied into
// a sandbox's root, it tries the escape the variable names and prints the
// outcome on one line ("ok", or the errno's name), instead of running tests.
const escapeEnv = "SANDBOXKIT_ESCAPE"

// crashEnv, when set to "ROOT" or "ROOT,VARIANT", makes the test binary a
// caller that runs a long sandbox on that root, says "running", and waits
// to be killed, as a crashing service would be. VARIANT "user" runs the
// sandbox as user 1000, "userns" in a user namespace; "bridge:NAME:SUBNET"
// on that bridge with a port published on every host address, and
// "bridge-dnat:NAME:SUBNET" the same with kernel DNAT; "instances:NAME:SUBNET"
// starts long-lived sandboxes of several kinds instead.
const crashEnv = "SANDBOXKIT_CRASH_ROOT"

// leaseEnv, when set to "ROOT,BRIDGE,SUBNET,SHARE,N", makes the test binary
// a second caller that runs N bridge sandboxes at once, each writing its
// address into SHARE and holding it a while.
const leaseEnv = "SANDBOXKIT_LEASE_HOLDER"

func TestMain(m *testing.M) {
	if attempt := os.Getenv(escapeEnv); attempt != "" {
		fmt.Println(tryEscape(attempt, os.Args[1:]))
		os.Exit(0)
	}
	if spec := os.Getenv(leaseEnv); spec != "" {
		os.Exit(holdLeases(spec))
	}
	if spec := os.Getenv(crashEnv); spec != "" {
		root, variant, _ := strings.Cut(spec, ",")
		sb := sandbox.New(sandbox.Dir(root)).WithStdout(os.Stdout)
		kind, bridge, _ := strings.Cut(variant, ":")
		switch kind {
		case "user":
			sb = sb.WithUser(1000, 1000)
		case "userns":
			sb = sb.WithUserNamespace()
		case "bridge", "bridge-dnat":
			name, subnet, _ := strings.Cut(bridge, ":")
			opts := []sandbox.BridgeOption{sandbox.BridgeName(name), sandbox.Subnet(netip.MustParsePrefix(subnet))}
			if kind == "bridge-dnat" {
				opts = append(opts, sandbox.PublishDNAT())
			}
			sb = sb.WithNetwork(sandbox.Bridge(opts...)).WithPublishOn(netip.IPv4Unspecified(), 0, 80)
		}
		if kind == "pool" {
			// Prepared sandboxes and one in use, as a service's pool.
			p, err := sandbox.NewPool(sandbox.New(sandbox.Dir(root)), 3)
			if err != nil {
				fmt.Println("pool:", err)
				os.Exit(1)
			}
			go p.Run(context.Background(), "sleep", "100")
			for p.Stats().InUse == 0 || p.Stats().Ready < 2 {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond)
			fmt.Println("running")
			select {}
		}
		if kind == "instances" {
			// Idle, busy, bridged, user-namespaced and paused instances at once,
			// as a service holding several would.
			name, subnet, _ := strings.Cut(bridge, ":")
			n := sandbox.Bridge(sandbox.BridgeName(name), sandbox.Subnet(netip.MustParsePrefix(subnet)))
			base := sandbox.New(sandbox.Dir(root))
			for _, in := range []struct {
				sb    *sandbox.Sandbox
				argv  []string
				pause bool
			}{
				{base, nil, false},
				{base, []string{"/bin/sh", "-c", "while :; do :; done"}, false},
				{base.WithNetwork(n).WithPublish(0, 80), []string{"sleep", "100"}, false},
				{base.WithUserNamespace(), []string{"sleep", "100"}, false},
				{base.WithUserNamespace().WithNetwork(n), nil, false},
				// A v1 freezer holds even SIGKILL: Collect must thaw it.
				{base, []string{"/bin/sh", "-c", "while :; do :; done"}, true},
			} {
				inst, err := in.sb.Start(context.Background(), in.argv...)
				if err == nil && in.pause {
					err = inst.Pause(context.Background())
				}
				if err != nil {
					fmt.Println("start:", err)
					os.Exit(1)
				}
			}
			fmt.Println("running")
			select {}
		}
		sb.Run(context.Background(), "/bin/sh", "-c", "echo running; sleep 100")
		os.Exit(1)
	}
	os.Exit(runLeavingNoState(m))
}

// runLeavingNoState runs the tests and, if the package's state directory
// did not exist before, removes it afterwards: it holds only a mount point
// and the bridges' lock file, and the machine should be left as found.
func runLeavingNoState(m *testing.M) int {
	const state = "/run/sandboxkit"
	_, err := os.Stat(state)
	existed := err == nil
	code := m.Run()
	if !existed {
		os.RemoveAll(state)
	}
	return code
}

// tryEscape makes one escape attempt from inside a sandbox.
func tryEscape(attempt string, args []string) string {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	switch attempt {
	case "mount":
		return outcome(unix.Mount("tmpfs", arg(0), "tmpfs", 0, ""))
	case "umount":
		return outcome(unix.Unmount("/proc", unix.MNT_DETACH))
	case "unshare-mount":
		return outcome(unix.Unshare(unix.CLONE_NEWNS))
	case "unshare-user":
		return outcome(unix.Unshare(unix.CLONE_NEWUSER))
	case "setns":
		fd, err := unix.Open("/proc/self/ns/net", unix.O_RDONLY, 0)
		if err != nil {
			return "open: " + outcome(err)
		}
		return outcome(unix.Setns(fd, unix.CLONE_NEWNET))
	case "ptrace":
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_ATTACH, uintptr(atoi(arg(0))), 0, 0, 0, 0)
		return outcome(errnoOrNil(e))
	case "kill":
		return outcome(unix.Kill(atoi(arg(0)), 0))
	case "read":
		b, err := os.ReadFile(arg(0))
		if err != nil {
			return outcome(err)
		}
		return fmt.Sprintf("read %d bytes", len(b))
	case "write":
		return outcome(os.WriteFile(arg(0), []byte("h"), 0o644))
	case "list":
		entries, err := os.ReadDir(arg(0))
		if err != nil {
			return outcome(err)
		}
		return fmt.Sprintf("%d entries", len(entries))
	case "finit_module":
		fd, err := unix.Open("/dev/null", unix.O_RDONLY, 0)
		if err != nil {
			return "open: " + outcome(err)
		}
		return outcome(unix.FinitModule(fd, "", 0))
	case "init_module":
		return outcome(unix.InitModule([]byte("not a module"), ""))
	case "reboot":
		// In a PID namespace the CAD commands cannot touch the host even
		// where the call is allowed.
		return outcome(unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF))
	case "mknod-block":
		dev := uint64(atoi(arg(1)))
		if err := unix.Mknod(arg(0), unix.S_IFBLK|0o600, int(dev)); err != nil {
			return "mknod: " + outcome(err)
		}
		fd, err := unix.Open(arg(0), unix.O_RDONLY, 0)
		if err == nil {
			unix.Close(fd)
		}
		return "open: " + outcome(err)
	case "session-key":
		// The caller's session keyring, which a sandbox must not share.
		id, err := unix.KeyctlSearch(unix.KEY_SPEC_SESSION_KEYRING, "user", arg(0), 0)
		if err != nil {
			return outcome(err)
		}
		buf := make([]byte, 64)
		n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0)
		if err != nil {
			return "read: " + outcome(err)
		}
		return "found " + string(buf[:min(n, len(buf))])
	case "socket":
		fd, err := unix.Socket(atoi(arg(0)), socketType(atoi(arg(0)))|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		return outcome(err)
	case "io_uring_setup":
		fd, _, err := ioUringSetup()
		if err == nil {
			unix.Close(fd)
		}
		return outcome(err)
	case "io_uring-socket":
		return ioUringSocket(atoi(arg(0)))
	case "send-ra":
		return outcome(sendRA(arg(0), arg(1)))
	case "status":
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			return outcome(err)
		}
		var keep []string
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch k {
			case "Uid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp":
				keep = append(keep, k+"="+strings.Join(strings.Fields(v), ","))
			}
		}
		return fmt.Sprintf("euid=%d %s", os.Geteuid(), strings.Join(keep, " "))
	}
	return "unknown attempt " + attempt
}

func errnoOrNil(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// outcome names err's errno, or says "ok".
func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	var e unix.Errno
	for u := err; u != nil; {
		if x, ok := u.(unix.Errno); ok {
			e = x
			break
		}
		w, ok := u.(interface{ Unwrap() error })
		if !ok {
			break
		}
		u = w.Unwrap()
	}
	if e == 0 {
		return err.Error()
	}
	return unix.ErrnoName(e)
}

// holdLeases runs the sandboxes leaseEnv describes and returns the exit
// status: 0 when all ran.
func holdLeases(spec string) int {
	f := strings.Split(spec, ",")
	if len(f) != 5 {
		return 2
	}
	n, _ := strconv.Atoi(f[4])
	prefix, err := netip.ParsePrefix(f[2])
	if err != nil {
		return 2
	}
	sb := sandbox.New(sandbox.Dir(f[0])).WithBind(f[3], "/share").
		WithNetwork(sandbox.Bridge(sandbox.BridgeName(f[1]), sandbox.Subnet(prefix)))
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := sb.Run(context.Background(), "/bin/sh", "-c", holdScript)
			errs <- err
		}()
	}
	status := 0
	for range n {
		if err := <-errs; err != nil {
			fmt.Fprintln(os.Stderr, err)
			status = 1
		}
	}
	return status
}

// holders is how many sandboxes TestBridgeLeasesAreUniqueAcrossProcesses
// runs at once: 3 callers of 5.
const holders = 15

// holdScript records the sandbox's address in /share under a unique name
// and keeps it until every holder has recorded its own (for 30 s at most),
// so that all the leases are held at once however slowly they start.
var holdScript = `ip=$(ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1); ` +
	`echo $ip > /share/$ip.$(cat /proc/sys/kernel/random/uuid); ` +
	fmt.Sprintf(`for i in $(seq 600); do [ $(ls /share | wc -l) -ge %d ] && break; sleep 0.05; done`, holders)
