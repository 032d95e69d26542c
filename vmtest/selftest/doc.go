// Package selftest checks the vmtest VM itself: that it boots with a pure
// cgroup v2 hierarchy, every controller delegated to the root's children, and
// the mounts, kernel modules and binaries that the sandbox tests rely on.
//
// Its tests are built only with the vmtest build tag, which vmtest/run.sh
// sets, so that go test ./... on a host neither runs nor skips them; they
// run inside the VM (VMTEST=1, set by vmtest/init), because they create
// cgroups, links and nftables tables:
//
//	VMTEST_PKG=./vmtest/selftest vmtest/run.sh
package selftest
