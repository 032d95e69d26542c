//go:build linux

// Command init is PID 1 of the vmtest VM (see vmtest/README.md).
//
// vmtest/run.sh packs it into an initramfs as /init together with the test
// binaries, busybox and a few kernel modules. It moves the initramfs into a
// tmpfs (pivot_root does not work on the initramfs rootfs), mounts the usual
// filesystems and a pure cgroup v2 hierarchy with every controller enabled,
// loads the kernel modules the tests need, runs each test binary with the
// arguments run.sh recorded, prints "VMTEST-EXIT-STATUS=<n>" and powers the VM
// off, also when something panics.
//
// It must run as PID 1 inside the VM and refuses to run anywhere else: on a
// host it would remount filesystems and power the machine off.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Files that run.sh writes into the initramfs.
const (
	argsFile    = "/vmtest/args"    // test binary arguments, each ended by NUL
	testsFile   = "/vmtest/tests"   // one "binary<TAB>dir<TAB>import path" per line
	modulesFile = "/vmtest/modules" // one module name per line; "?name" is optional
)

// statusSetup is the exit status reported when the VM itself could not be set
// up, as opposed to a test binary failing.
const statusSetup = 125

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "vmtest-init: refusing to run: must be PID 1 inside the vmtest VM")
		os.Exit(2)
	}
	status := statusSetup
	defer func() {
		if r := recover(); r != nil {
			fmt.Printf("vmtest-init: panic: %v\n%s", r, debug.Stack())
			status = statusSetup
		}
		powerOff(status)
	}()
	status = run()
}

// run sets the VM up and runs the tests. It returns the status to report.
func run() int {
	unix.Umask(0)
	if err := openConsole(); err != nil {
		// Nothing can be printed; the missing marker tells run.sh.
		return statusSetup
	}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"switch root", switchRoot},
		{"mount filesystems", mountAll},
		{"enable cgroup controllers", enableControllers},
		{"load kernel modules", loadModules},
		{"bring up lo", loopbackUp},
		{"set hostname", func() error { return unix.Sethostname([]byte("vmtest")) }},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			fmt.Printf("vmtest-init: %s: %v\n", s.name, err)
			return statusSetup
		}
	}
	unix.Umask(0o022)
	return runTests()
}

// openConsole mounts devtmpfs on /dev and makes /dev/console fds 0, 1 and 2,
// in case the kernel found no /dev/console in the initramfs.
func openConsole() error {
	if err := os.MkdirAll("/dev", 0o755); err != nil {
		return err
	}
	if err := unix.Mount("devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"); err != nil && !errors.Is(err, unix.EBUSY) {
		return &fs.PathError{Op: "mount devtmpfs", Path: "/dev", Err: err}
	}
	fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: "/dev/console", Err: err}
	}
	for target := 0; target <= 2; target++ {
		if fd != target {
			if err := unix.Dup3(fd, target, 0); err != nil {
				return fmt.Errorf("dup console to fd %d: %w", target, err)
			}
		}
	}
	if fd > 2 {
		unix.Close(fd)
	}
	return nil
}

// switchRoot copies the initramfs into a tmpfs, frees the initramfs and makes
// the tmpfs the root, like switch_root(8). The process continues in the new
// root; it needs nothing from the old one.
func switchRoot() error {
	const newRoot = "/newroot"
	if err := os.Mkdir(newRoot, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", newRoot, "tmpfs", 0, "mode=0755"); err != nil {
		return &fs.PathError{Op: "mount tmpfs", Path: newRoot, Err: err}
	}
	skip := map[string]bool{newRoot: true, "/dev": true, "/proc": true, "/sys": true}
	if err := copyTree("/", newRoot, skip); err != nil {
		return err
	}
	entries, err := os.ReadDir("/")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if p := "/" + e.Name(); p != newRoot && p != "/dev" {
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("free initramfs: %w", err)
			}
		}
	}
	for _, d := range []string{"dev", "proc", "sys"} {
		if err := os.MkdirAll(filepath.Join(newRoot, d), 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("/dev", newRoot+"/dev", "", unix.MS_MOVE, ""); err != nil {
		return &fs.PathError{Op: "move mount", Path: "/dev", Err: err}
	}
	if err := unix.Chdir(newRoot); err != nil {
		return &fs.PathError{Op: "chdir", Path: newRoot, Err: err}
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return &fs.PathError{Op: "move mount", Path: newRoot, Err: fmt.Errorf("to /: %w", err)}
	}
	if err := unix.Chroot("."); err != nil {
		return &fs.PathError{Op: "chroot", Path: newRoot, Err: err}
	}
	return unix.Chdir("/")
}

// copyTree copies the tree at src into dst, keeping modes and symlinks and
// leaving out the top-level paths in skip.
func copyTree(src, dst string, skip map[string]bool) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if skip[path] {
			return filepath.SkipDir
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode()
		switch {
		case rel == ".":
			return nil
		case mode.IsDir():
			if err := os.Mkdir(target, mode.Perm()); err != nil {
				return err
			}
			return os.Chmod(target, mode) // keeps sticky bits
		case mode&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case mode.IsRegular():
			return copyFile(path, target, mode)
		default:
			st, ok := info.Sys().(*unix.Stat_t)
			if !ok {
				return &fs.PathError{Op: "copy", Path: path, Err: errors.ErrUnsupported}
			}
			if err := unix.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
				return &fs.PathError{Op: "mknod", Path: target, Err: err}
			}
			return nil
		}
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return &fs.PathError{Op: "copy", Path: src, Err: err}
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}

// mountAll mounts the filesystems a test expects on a systemd-like host.
func mountAll() error {
	const (
		nosuid = unix.MS_NOSUID
		nodev  = unix.MS_NODEV
		noexec = unix.MS_NOEXEC
	)
	mounts := []struct {
		source, target, fstype string
		flags                  uintptr
		data                   string
	}{
		{"proc", "/proc", "proc", nosuid | nodev | noexec, ""},
		{"sysfs", "/sys", "sysfs", nosuid | nodev | noexec, ""},
		{"devpts", "/dev/pts", "devpts", nosuid | noexec, "gid=5,mode=620,ptmxmode=666"},
		{"tmpfs", "/dev/shm", "tmpfs", nosuid | nodev, "mode=1777"},
		{"tmpfs", "/tmp", "tmpfs", nosuid | nodev, "mode=1777"},
		{"tmpfs", "/run", "tmpfs", nosuid | nodev, "mode=0755"},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", nosuid | nodev | noexec, "nsdelegate,memory_recursiveprot"},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			return &fs.PathError{Op: "mount " + m.fstype, Path: m.target, Err: err}
		}
	}
	links := [][2]string{
		{"/proc/self/fd", "/dev/fd"},
		{"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"},
		{"/proc/self/fd/2", "/dev/stderr"},
	}
	for _, l := range links {
		if err := os.Symlink(l[0], l[1]); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}

// enableControllers enables every available controller for the children of
// the root cgroup.
func enableControllers() error {
	const root = "/sys/fs/cgroup"
	b, err := os.ReadFile(root + "/cgroup.controllers")
	if err != nil {
		return err
	}
	controllers := strings.Fields(string(b))
	var errs []error
	for _, c := range controllers {
		if err := os.WriteFile(root+"/cgroup.subtree_control", []byte("+"+c), 0); err != nil {
			errs = append(errs, fmt.Errorf("controller %s: %w", c, err))
		}
	}
	fmt.Printf("vmtest-init: cgroup2 controllers: %s\n", strings.Join(controllers, " "))
	return errors.Join(errs...)
}

// loadModules loads the modules named in modulesFile, each after the modules
// it depends on according to modules.dep. A required module that cannot be
// loaded is an error; an optional one ("?name") only a warning.
func loadModules() error {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return err
	}
	dir := "/lib/modules/" + unix.ByteSliceToString(uts.Release[:])
	deps, err := readModulesDep(dir + "/modules.dep")
	if err != nil {
		return err
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(dir + "/modules.builtin"); err == nil {
		for _, line := range strings.Fields(string(b)) {
			builtin[moduleName(line)] = true
		}
	}
	wanted, err := os.ReadFile(modulesFile)
	if err != nil {
		return err
	}

	l := &loader{dir: dir, deps: deps, builtin: builtin, done: map[string]error{}}
	var errs []error
	for _, name := range strings.Fields(string(wanted)) {
		optional := strings.HasPrefix(name, "?")
		name = moduleName(strings.TrimPrefix(name, "?"))
		if err := l.load(name); err != nil {
			if !optional {
				errs = append(errs, err)
			} else {
				fmt.Printf("vmtest-init: warning: optional module %s: %v\n", name, err)
			}
		}
	}
	fmt.Printf("vmtest-init: modules loaded: %s\n", strings.Join(l.loaded, " "))
	return errors.Join(errs...)
}

// loader loads modules with finit_module, each at most once.
type loader struct {
	dir     string
	deps    map[string][]string // module name -> file, then its dependencies' files
	builtin map[string]bool
	done    map[string]error
	loaded  []string
}

func (l *loader) load(name string) error {
	if err, ok := l.done[name]; ok {
		return err
	}
	l.done[name] = nil // breaks dependency cycles
	err := l.loadUncached(name)
	l.done[name] = err
	return err
}

func (l *loader) loadUncached(name string) error {
	if l.builtin[name] {
		return nil
	}
	files, ok := l.deps[name]
	if !ok {
		return fmt.Errorf("module %s: %w", name, fs.ErrNotExist)
	}
	for _, dep := range files[1:] {
		if err := l.load(moduleName(dep)); err != nil {
			return fmt.Errorf("module %s: dependency: %w", name, err)
		}
	}
	path := filepath.Join(l.dir, files[0])
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return &fs.PathError{Op: "finit_module", Path: path, Err: err}
	}
	l.loaded = append(l.loaded, name)
	return nil
}

// readModulesDep parses modules.dep ("file: dep dep ...") into a map from
// module name to the module's file followed by its dependencies' files.
func readModulesDep(path string) (map[string][]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	deps := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		file, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[moduleName(file)] = append([]string{file}, strings.Fields(rest)...)
	}
	return deps, sc.Err()
}

// moduleName turns "kernel/net/foo-bar.ko.xz" or "foo-bar" into "foo_bar".
func moduleName(s string) string {
	s = filepath.Base(s)
	if i := strings.Index(s, ".ko"); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

// loopbackUp sets the IFF_UP flag on lo.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("get lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set lo flags: %w", err)
	}
	return nil
}

// runTests runs every test binary in testsFile and returns the first non-zero
// exit status, or 0.
func runTests() int {
	b, err := os.ReadFile(argsFile)
	if err != nil {
		fmt.Printf("vmtest-init: %v\n", err)
		return statusSetup
	}
	args := strings.Split(string(b), "\x00")
	args = args[:len(args)-1] // each argument ends with NUL
	tests, err := os.ReadFile(testsFile)
	if err != nil {
		fmt.Printf("vmtest-init: %v\n", err)
		return statusSetup
	}
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"USER=root",
		"TERM=dumb",
		"CI=true",
		"VMTEST=1",
	}
	status := 0
	lines := strings.Split(strings.TrimSpace(string(tests)), "\n")
	for _, line := range lines {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			continue
		}
		bin, dir, pkg := f[0], f[1], f[2]
		fmt.Printf("=== VMTEST RUN %s\n", pkg)
		start := time.Now()
		code := runTest(bin, dir, args, env)
		verdict := "ok  "
		if code != 0 {
			verdict = "FAIL"
		}
		fmt.Printf("%s\t%s\t%.3fs (exit status %d)\n", verdict, pkg, time.Since(start).Seconds(), code)
		if code != 0 && status == 0 {
			status = code
		}
	}
	if len(lines) == 0 || lines[0] == "" {
		fmt.Println("vmtest-init: no test binaries (no test files)")
	}
	return status
}

// runTest runs one test binary in dir and returns its exit status (128+signal
// if a signal killed it). As PID 1 it also reaps every orphan that exits
// meanwhile, which is why it waits with wait4(-1) instead of exec.Cmd.Wait.
func runTest(bin, dir string, args, env []string) int {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stdout
	if err := cmd.Start(); err != nil {
		fmt.Printf("vmtest-init: start %s: %v\n", bin, err)
		return statusSetup
	}
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			fmt.Printf("vmtest-init: wait for %s: %v\n", bin, err)
			return statusSetup
		}
		if pid != cmd.Process.Pid {
			continue
		}
		if ws.Signaled() {
			fmt.Printf("vmtest-init: %s killed by signal %v\n", bin, ws.Signal())
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}

// powerOff prints the status marker that run.sh looks for and powers the VM
// off. Should that fail, returning from main makes the kernel panic, and
// panic=-1 with qemu's -no-reboot ends the VM as well.
func powerOff(status int) {
	fmt.Printf("\nVMTEST-EXIT-STATUS=%d\n", status)
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Printf("vmtest-init: power off: %v\n", err)
	}
}
