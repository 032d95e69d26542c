#!/bin/sh
# compare.sh: run bench/compare, which times busybox true under sandboxkit,
# runc, crun, bubblewrap, unshare(1) and a plain exec on this machine.
# Installs runc, crun, bubblewrap and busybox-static with apt-get when they
# are missing, then runs `go run ./bench/compare "$@"` from the repository
# root. Needs root and Go; the benchmark itself uses no network.
#
#	sudo bench/compare.sh               # 300 rounds after 20 warm-up rounds
#	sudo bench/compare.sh -n 50 -json results.json
set -eu

cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "compare.sh: must run as root (namespaces, cgroups and mounts)" >&2
	exit 1
fi

missing=""
for pkg in runc crun bubblewrap busybox-static; do
	if ! dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $pkg"
	fi
done
if [ -n "$missing" ]; then
	echo "compare.sh: installing$missing" >&2
	apt-get update -qq
	# $missing is a list of package names: split it.
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
fi

# sandboxkit's OCI runtime runs the same bundle as runc and crun.
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
CGO_ENABLED=0 go build -o "$bin/sandboxkit-runtime" ./cmd/sandboxkit-runtime
PATH="$bin:$PATH" go run ./bench/compare "$@"
