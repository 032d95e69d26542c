package sandbox_test

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox"
)

// This example needs Linux and root, so it is compiled but not run by go
// test.
func ExampleSandbox_Run() {
	sb := sandbox.New(sandbox.HostRoot()).
		WithMemory(64 << 20).
		WithCPU(0.5).
		WithPids(32).
		WithTimeout(2 * time.Second)

	res, err := sb.Run(context.Background(), "/bin/sh", "-c", "echo hi")
	switch {
	case errors.Is(err, sandbox.ErrInvalidConfig): // fix the builder calls
		log.Fatal(err)
	case errors.Is(err, fs.ErrPermission): // not root
		log.Fatal(err)
	case err != nil: // the host could not run the sandbox; err names what failed
		log.Fatal(err)
	case res.TimedOut, res.OOMKilled, res.ExitCode != 0: // the program failed
		fmt.Println("failed:", res) // e.g. "killed by SIGKILL (timed out)"
	}
	if res.TeardownErr != nil {
		// The result above is valid; what the run held may be left over
		// (a cgroup it could not remove, say): log it, and Collect later.
		log.Printf("teardown: %v", res.TeardownErr)
	}
	fmt.Printf("%s(cpu %v, memory peak %d bytes)\n", res.Stdout, res.CPU, res.MemoryPeak)
}

// One definition serves as a template: each With returns a copy.
func ExampleNew() {
	base := sandbox.New(sandbox.Dir("/srv/rootfs")).WithMemory(128 << 20)
	strict := base.WithTimeout(time.Second).WithPids(16)
	fmt.Println(base.Validate(), strict.Validate())
	// Output: <nil> <nil>
}

func ExampleSandbox_Validate() {
	err := sandbox.New(sandbox.Dir("./rootfs")).WithMemory(-1).Validate()
	fmt.Println(err)
	// Output:
	// sandbox: invalid configuration: root ./rootfs: must be an absolute path; memory -1: must be positive
}

// A code-execution backend: the source goes in as a file, the program runs
// as an unprivileged user on a read-only root with a scratch tmpfs. Needs
// Linux and root, so it is compiled but not run by go test.
func ExampleSandbox_WithFile() {
	source := []byte("print(sum(range(10)))\n")
	res, err := sandbox.New(sandbox.HostRoot()).
		WithUser(1000, 1000).
		WithReadOnlyRoot().
		WithTmpfs("/work", 64<<20).
		WithFile("/work/main.py", source, 0o644).
		WithWorkdir("/work").
		WithMemory(256<<20).WithPids(64).WithTimeout(5*time.Second).
		Run(context.Background(), "python3", "main.py")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", res.Stdout)
}

// Hand a sandbox a host directory, read only, and another to write
// results into. Needs Linux and root: compiled, not run.
func ExampleSandbox_WithBind() {
	sb := sandbox.New(sandbox.HostRoot()).
		WithBind("/srv/inputs", "/in", sandbox.ReadOnly).
		WithBind("/srv/outputs", "/out")
	res, err := sb.Run(context.Background(), "/bin/sh", "-c", "wc -l /in/* > /out/counts")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.ExitCode)
}

// A database per test, with its own address, reachable from the host on a
// published port. Needs Linux and root: compiled, not run.
func ExampleBridge() {
	n := sandbox.Bridge(sandbox.BridgeName("testnet"), sandbox.Subnet(netip.MustParsePrefix("10.77.0.0/24")))
	defer sandbox.RemoveBridge(context.Background(), n)
	res, err := sandbox.New(sandbox.HostRoot()).
		WithNetwork(n).
		WithPublish(0, 6379). // 0: any free host port
		WithTimeout(time.Minute).
		Run(context.Background(), "redis-server", "--port", "6379")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Network.IP, res.Network.Ports[0].HostPort)
}

// A test database for this host only, as "docker run -p
// 127.0.0.1:15432:5432" (WithPublish(15432, 5432) means the same), and the
// same database for the host's networks too. Validate reports a bad
// address.
func ExampleSandbox_WithPublishOn() {
	db := sandbox.New(sandbox.HostRoot()).WithNetwork(sandbox.Bridge())
	local := db.WithPublishOn(netip.MustParseAddr("127.0.0.1"), 15432, 5432)
	shared := db.WithPublishOn(netip.IPv4Unspecified(), 15432, 5432)
	fmt.Println(local.Validate(), shared.Validate())
	fmt.Println(db.WithPublishOn(netip.IPv6Loopback(), 15432, 5432).Validate())
	// Output:
	// <nil> <nil>
	// sandbox: invalid configuration: publish ::1: host address must be an IPv4 address, or 0.0.0.0 for every one
}

// Root inside, an unprivileged user outside. Needs Linux and root:
// compiled, not run.
func ExampleSandbox_WithUserNamespace() {
	res, err := sandbox.New(sandbox.HostRoot()).WithUserNamespace().
		Run(context.Background(), "cat", "/proc/self/uid_map")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", res.Stdout) // 0 100000 65536
}

// Unknown capability names and system calls are reported by Validate.
func ExampleSandbox_WithCapabilities() {
	err := sandbox.New(sandbox.HostRoot()).
		WithCapabilities("CAP_NET_ADMIN", "CAP_FLY").
		WithSeccomp(sandbox.DefaultSeccompProfile().Allow("no_such_call")).
		Validate()
	var ce *sandbox.ConfigError
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			fmt.Println(p.Field, p.Value)
		}
	}
	// Output:
	// capabilities CAP_FLY
	// seccomp profile
}

// Remove what callers that crashed mid-run left behind, at startup.
// Needs Linux and root: compiled, not run.
func ExampleCollect() {
	if err := sandbox.Collect(context.Background()); err != nil {
		log.Print(err)
	}
}

// A server per test, kept up while the test talks to it: Start returns
// once the program runs, WaitPort once it listens. Needs Linux and root,
// so it is compiled but not run by go test (TestInstanceOnABridge runs the
// same steps).
func ExampleSandbox_Start() {
	ctx := context.Background()
	n := sandbox.Bridge(sandbox.BridgeName("testnet"), sandbox.Subnet(netip.MustParsePrefix("10.77.0.0/24")))
	defer sandbox.RemoveBridge(ctx, n)
	in, err := sandbox.New(sandbox.HostRoot()).WithNetwork(n).WithPublish(0, 80).
		Start(ctx, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
	if err != nil {
		log.Fatal(err)
	}
	defer in.Close() // kills it and frees everything; t.Cleanup(func() { in.Close() }) in a test
	if err := in.WaitPort(ctx, 80); err != nil {
		log.Fatal(err)
	}
	fmt.Println("serving at", in.IP(), "and on 127.0.0.1 port", in.Ports()[0].HostPort)
	if err := in.WriteFile("/tmp/greeting", []byte("hi\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	st, _ := in.Stats()
	fmt.Println("memory now", st.Memory, "bytes")
}

// Command runs a program in a running sandbox with settings of its own;
// this one is a shell on a terminal, as a web terminal would give a user.
// It needs root: it compiles, and does not run as a test.
func ExampleInstance_Command() {
	ctx := context.Background()
	in, err := sandbox.New(sandbox.HostRoot()).Start(ctx) // idles until closed
	if err != nil {
		log.Fatal(err)
	}
	defer in.Close()
	p, err := in.Command("/bin/sh").
		WithUser(1000, 1000).WithWorkdir("/tmp").WithEnv("TERM=xterm").
		WithTTY(sandbox.WindowSize{Rows: 24, Cols: 80}).
		WithStdin(os.Stdin).WithStdout(os.Stdout).
		Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	p.Resize(sandbox.WindowSize{Rows: 50, Cols: 132}) // when the user's window changes
	res, err := p.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the shell exited with", res.ExitCode)
}

// WithConsole gives the program a terminal of the sandbox's own and sends
// its master to a socket, as an OCI runtime's --console-socket; here the
// caller listens on that socket itself and plays the user. It needs root:
// it compiles, and does not run as a test.
func ExampleSandbox_WithConsole() {
	ctx := context.Background()
	sock := "/run/example-console.sock"
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		oob := make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := c.ReadMsgUnix(make([]byte, 64), oob)
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			return
		}
		fds, _ := unix.ParseUnixRights(&msgs[0])
		if len(fds) != 1 {
			return
		}
		master := os.NewFile(uintptr(fds[0]), "pty master")
		defer master.Close()
		io.Copy(os.Stdout, master) // "/dev/pts/0", until the program ends
	}()
	res, err := sandbox.New(sandbox.HostRoot()).
		WithConsole(sock, sandbox.WindowSize{Rows: 24, Cols: 80}).
		Run(ctx, "/usr/bin/tty")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("tty exited with", res.ExitCode)
}

// WaitReady waits for conditions that need nothing inside the image. It
// needs root: it compiles, and does not run as a test.
func ExampleInstance_WaitReady() {
	ctx := context.Background()
	in, err := sandbox.New(sandbox.HostRoot()).
		Start(ctx, "python3", "-u", "-m", "http.server", "8000", "--bind", "127.0.0.1")
	if err != nil {
		log.Fatal(err)
	}
	defer in.Close()
	err = in.WaitReady(ctx,
		sandbox.ForOutput("Serving HTTP"),
		sandbox.ForPort(8000),
		sandbox.ForHTTP(8000, "/").Within(10*time.Second), // from inside its network namespace
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ready")
}

// CopyTo and CopyFrom move tar streams in and out of a running sandbox,
// resolved inside its root. It needs root: it compiles, and does not run
// as a test.
func ExampleInstance_CopyFrom() {
	ctx := context.Background()
	in, err := sandbox.New(sandbox.HostRoot()).WithWorkdir("/work").
		Start(ctx, "sh", "-c", "seq 3 > /work/out.txt; sleep 60")
	if err != nil {
		log.Fatal(err)
	}
	defer in.Close()
	if err := in.WaitReady(ctx, sandbox.ForExec("test", "-s", "/work/out.txt")); err != nil {
		log.Fatal(err)
	}
	rc, err := in.CopyFrom(ctx, "/work")
	if err != nil {
		log.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		fmt.Println(h.Name)
	}
}

// Pull an image and run its default command. Needs Linux, root and the
// registry, so it is compiled but not run by go test (TestImagePullRun
// runs the same steps against an in-process registry).
func ExampleStore_Pull() {
	ctx := context.Background()
	store, err := sandbox.OpenStore("") // sandbox.DefaultStoreDir
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	img, err := store.Pull(ctx, "docker.io/library/busybox:1.37",
		sandbox.WithProgress(func(p sandbox.Progress) { fmt.Println(p.Layer, p.Done, "of", p.Total) }))
	if err != nil {
		log.Fatal(err)
	}
	res, err := sandbox.New(img).WithMemory(64<<20).Run(ctx, "echo", "hi")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(res.Stdout))
}

// Load an image that `docker save` wrote, then drop it and free its
// layers. Needs Linux and root, so it is compiled but not run by go test
// (TestImageLoadFormats and TestImageStorePrune run the same steps).
func ExampleStore_Load() {
	ctx := context.Background()
	store, err := sandbox.OpenStore("/var/lib/myapp/images")
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	img, err := store.Load(ctx, "/tmp/app.tar")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Ref(), img.ID(), img.Command())
	if err := store.Remove(ctx, img.Ref()); err != nil {
		log.Fatal(err)
	}
	removed, err := store.Prune(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("removed", len(removed), "layers")
}

// A warm pool for a code-execution backend: every run gets a fresh
// sandbox prepared ahead. Needs Linux and root, so it is compiled but not
// run by go test.
func ExampleNewPool() {
	def := sandbox.New(sandbox.HostRoot()).
		WithUser(65534, 65534).
		WithMemory(128 << 20).
		WithPids(32).
		WithTimeout(5 * time.Second)
	pool, err := sandbox.NewPool(def, 8)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	res, err := pool.Run(context.Background(), "echo", "hi")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", res.Stdout)
}

// Per-run input: the program's source as a file, its stdin, and a tighter
// limit than the pool's. Needs Linux and root.
func ExamplePool_RunJob() {
	pool, err := sandbox.NewPool(sandbox.New(sandbox.HostRoot()).WithMemory(256<<20), 4)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	job := sandbox.NewJob("python3", "/tmp/main.py").
		WithFile("/tmp/main.py", []byte("print(input().upper())\n"), 0o644).
		WithStdin(strings.NewReader("hello\n")).
		WithMemory(64 << 20).
		WithTimeout(2 * time.Second)
	res, err := pool.RunJob(context.Background(), job)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res, string(res.Stdout))
}

func ExampleJob_WithMemory() {
	job := sandbox.NewJob("true").WithMemory(1)
	_, err := sandbox.New(sandbox.Dir("/srv/rootfs")).RunJob(context.Background(), job)
	fmt.Println(err)
	// Output:
	// sandbox: invalid configuration: memory 1: must be at least 6291456 (MinMemory)
}
