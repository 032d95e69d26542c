#!/bin/sh
# run.sh: build the OCI runtime-tools validation suite and run it against
# sandboxkit-runtime (or the runtime named by RUNTIME), and print how many
# of its test files pass.
#
#	sudo conformance/run.sh                 # every test file
#	sudo conformance/run.sh default kill    # only these
#	sudo RUNTIME=runc conformance/run.sh    # the same suite against runc
#
# The suite is github.com/opencontainers/runtime-tools at $RT_VERSION
# (v0.9.0), fetched through the Go module proxy. v0.9.0 has no go.mod: the
# one beside this script pins the versions it builds with
# (runtime-spec v1.0.2, the release nearest the commit the suite vendored).
# A file passes when it exits 0 and its output has no "not ok" test
# point, nor, in a file without any "ok", an "error" diagnostic (see
# CONFORMANCE.md). Needs root, Go and tar; the tests themselves use no
# network.
set -eu

RT_VERSION=${RT_VERSION:-v0.9.0}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${WORK:-/tmp/sandboxkit-conformance}
timeout=${TEST_TIMEOUT:-60}

if [ "$(id -u)" -ne 0 ]; then
	echo "run.sh: must run as root" >&2
	exit 1
fi

mkdir -p "$work/bin"
dir=$(go mod download -json "github.com/opencontainers/runtime-tools@$RT_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ ! -d "$work/src/validation" ]; then
	rm -rf "$work/src"
	cp -r "$dir" "$work/src"
	chmod -R u+w "$work/src"
	cp "$repo/conformance/runtime-tools.go.mod" "$work/src/go.mod"
	cp "$repo/conformance/runtime-tools.go.sum" "$work/src/go.sum"
fi
(
	cd "$work/src"
	# Static: it runs inside the busybox root, which has no C library.
	CGO_ENABLED=0 go build -o "$work/bin/runtimetest" ./cmd/runtimetest
	for d in validation/*/; do
		n=$(basename "$d")
		[ "$n" = util ] && continue
		[ -x "$work/bin/$n.t" ] || go build -o "$work/bin/$n.t" "./$d"
	done
)
if [ -z "${RUNTIME:-}" ]; then
	(cd "$repo" && CGO_ENABLED=0 go build -o "$work/bin/sandboxkit-runtime" ./cmd/sandboxkit-runtime)
	RUNTIME="$work/bin/sandboxkit-runtime"
fi

# The tests untar rootfs-$GOARCH.tar.gz and copy runtimetest from their
# working directory.
run="$work/run"
rm -rf "$run"
mkdir -p "$run/out"
cp "$work/bin/runtimetest" "$work/src/rootfs-$(go env GOARCH).tar.gz" "$run/"

if [ $# -eq 0 ]; then
	set -- $(cd "$work/bin" && ls *.t | sed 's/\.t$//')
fi
pass=0
total=0
failed=""
for t in "$@"; do
	total=$((total + 1))
	out="$run/out/$t.tap"
	rc=0
	(cd "$run" && RUNTIME="$RUNTIME" timeout "$timeout" "$work/bin/$t.t") >"$out" 2>&1 || rc=$?
	# A pass: exit 0, no "not ok", and, in a file with no "ok" either,
	# no "error" diagnostic. The suite reports a failure by a "not ok"
	# test point or a fatal exit, except in the hook tests, which print no
	# test point (a plan of 1..0) and report a failure only as an "error"
	# in a YAML diagnostic; the process_*_fail files print nothing at all
	# when they pass.
	if [ "$rc" -eq 0 ] && ! grep -q '^not ok' "$out" &&
		{ grep -q '^ok' "$out" || ! grep -q '"error":' "$out"; }; then
		pass=$((pass + 1))
		echo "PASS $t"
	else
		failed="$failed $t"
		echo "FAIL $t (exit $rc; $(grep -c '^not ok' "$out" || true) not ok; TAP in $out)"
	fi
done
# Some files leave what they made: a container created without a process
# (start's), or one of a file that failed midway. Those of the suite's
# bundles (/tmp/ocitest*) are deleted, and the suite's empty cgroup
# directories removed, so that the host is as it was.
for id in $("$RUNTIME" list -q 2>/dev/null); do
	if "$RUNTIME" state "$id" 2>/dev/null | grep -q '"bundle": "/tmp/ocitest'; then
		"$RUNTIME" delete --force "$id" >/dev/null 2>&1 || echo "conformance: could not delete the suite's container $id" >&2
	fi
done
for d in /sys/fs/cgroup/*/testdir/cgrouptest /sys/fs/cgroup/*/testdir /sys/fs/cgroup/testdir/cgrouptest /sys/fs/cgroup/testdir; do
	[ -d "$d" ] && rmdir "$d" 2>/dev/null || true
done

echo "runtime-tools $RT_VERSION against $RUNTIME: $pass of $total test files pass"
[ -z "$failed" ] || echo "failed:$failed"
