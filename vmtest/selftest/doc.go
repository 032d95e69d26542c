// Package selftest checks the vmtest VM itself: that it boots with a pure
// cgroup v2 hierarchy, every controller delegated to the root's children, and
// the mounts, kernel modules and binaries that the sandbox tests rely on.
//
// Its tests run only inside the VM (VMTEST=1, set by vmtest/init) and skip
// elsewhere, because they create cgroups, links and nftables tables:
//
//	VMTEST_PKG=./vmtest/selftest vmtest/run.sh
package selftest
