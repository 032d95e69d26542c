package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BusyboxPath is where Debian's busybox-static package installs busybox.
const BusyboxPath = "/bin/busybox"

// Rootfs builds a tiny root file system in a temporary directory: a static
// busybox with a link for each of its applets in /bin, /etc/passwd and
// /etc/group with root and a user 1000, and /etc/hostname holding
// "rootfs-fixture". It needs Debian's busybox-static (.ci/run installs
// it); without it the test skips naming the package, or fails under CI.
func Rootfs(tb testing.TB) string {
	tb.Helper()
	if _, err := os.Stat(BusyboxPath); err != nil {
		skipOrFail(tb, "needs a static busybox at "+BusyboxPath+"; run: apt-get install busybox-static")
	}
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		tb.Fatalf("busybox --list: %v", err)
	}
	root := tb.TempDir()
	for _, d := range []string{"bin", "etc", "root", "home/user"} {
		must(tb, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	data, err := os.ReadFile(BusyboxPath)
	must(tb, err)
	must(tb, os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755))
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		must(tb, os.Symlink("busybox", filepath.Join(root, "bin", applet)))
	}
	files := map[string]string{
		"etc/passwd":   "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
		"etc/group":    "root:x:0:\nuser:x:1000:\n",
		"etc/hostname": "rootfs-fixture\n",
	}
	for name, content := range files {
		must(tb, os.WriteFile(filepath.Join(root, name), []byte(content), 0o644))
	}
	return root
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
