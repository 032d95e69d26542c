#!/usr/bin/env bash
# vmtest/run.sh runs the privileged Go tests inside a qemu VM whose kernel has
# a pure cgroup v2 hierarchy. See vmtest/README.md.
#
# Usage: vmtest/run.sh [test binary flags, e.g. -test.run Foo -test.v]
#
# Environment:
#   VMTEST_PKG      packages to test, space separated (default: ".", the root package)
#   VMTEST_TIMEOUT  wall-clock limit for the VM in seconds (default: 1500)
#   VMTEST_CACHE    kernel cache directory (default: /var/cache/sandboxkit-vmtest)
#   VMTEST_KERNEL   Debian kernel package (default: newest cached, else newest
#                   linux-image-6.1.0-*-amd64 that apt knows)
#   VMTEST_MODULES  extra kernel modules to load, space separated ("?name": optional)
#   VMTEST_MEM, VMTEST_SMP  VM memory and CPUs (default: 2G, 2)
#   VMTEST_LOG      keep the console log at this path (default: a temporary file)
#
# Exit status: the test binaries' (the first non-zero one), 1 if the tests do
# not compile, 124 if the VM hit VMTEST_TIMEOUT, 125 if the VM could not be
# built, booted or set up.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo
readonly timeout_s="${VMTEST_TIMEOUT:-1500}"
readonly cache="${VMTEST_CACHE:-/var/cache/sandboxkit-vmtest}"
read -ra pkgs <<<"${VMTEST_PKG:-. ./cmd/sandboxkit-runtime}"
readonly pkgs
readonly packages=(qemu-system-x86 cpio busybox-static xz-utils kmod)
# Modules the sandbox tests need, loaded in this order; "?" marks the ones a
# test may do without. crc32c comes first: libcrc32c (nf_tables, nf_conntrack)
# asks for it with a softdep that nothing in the VM resolves.
modules=(
	crc32c_generic '?crc32c_intel'
	overlay veth bridge
	nf_tables nf_conntrack nf_nat nft_ct nft_nat nft_chain_nat nft_masq nft_redir
	'?br_netfilter' '?nft_fib_inet' '?nft_reject_inet' '?nf_conntrack_netlink' '?tun' '?dummy'
)
read -ra extra_modules <<<"${VMTEST_MODULES:-}"
modules+=("${extra_modules[@]}")

log() { echo "vmtest: $*" >&2; }
die() {
	log "$*"
	exit 125
}

started=$SECONDS
work="$(mktemp -d /tmp/vmtest.XXXXXX)"
qpid=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [[ -n "$qpid" ]]; then
		kill "$qpid" 2>/dev/null || true
		wait "$qpid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ensure_packages fails, naming them, unless the Debian packages this script
# needs are installed.
ensure_packages() {
	local missing=() p
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return
	# Tests install nothing: .ci/run does, and so can whoever runs this.
	die "missing Debian packages: ${missing[*]}; run: apt-get install ${missing[*]}"
}

# kernel_dir prints the directory of an unpacked Debian kernel package in the
# cache, downloading and unpacking it first if needed.
kernel_dir() {
	local pkg="${VMTEST_KERNEL:-}"
	mkdir -p "$cache"
	exec 9>"$cache/.lock"
	flock 9
	if [[ -z "$pkg" ]]; then
		pkg="$(find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'linux-image-*' -printf '%f\n' | sort -V | tail -n 1)"
	fi
	if [[ -z "$pkg" ]]; then
		local list
		list="$(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null || true)"
		if [[ -z "$list" ]]; then
			apt-get update -qq >&2
			list="$(apt-cache pkgnames linux-image-6.1.0-)"
		fi
		pkg="$(grep -E '^linux-image-6\.1\.0-[0-9]+-amd64$' <<<"$list" | sort -V | tail -n 1)"
		[[ -n "$pkg" ]] || die "no linux-image-6.1.0-*-amd64 package known to apt"
	fi
	local dir="$cache/$pkg"
	if [[ ! -f "$dir/.complete" ]]; then
		log "fetching kernel $pkg into $cache"
		rm -rf "$dir" "$cache/download"
		mkdir -p "$cache/download" "$dir"
		# apt's _apt user cannot write a root-only directory; that warning is harmless.
		(cd "$cache/download" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) || true
		local deb
		deb="$(find "$cache/download" -name '*.deb' | head -n 1)"
		[[ -n "$deb" ]] || die "apt-get download $pkg failed"
		dpkg -x "$deb" "$dir"
		rm -rf "$cache/download"
		local ver
		ver="$(ls "$dir/lib/modules")"
		depmod -b "$dir" "$ver"
		touch "$dir/.complete"
	fi
	flock -u 9
	exec 9>&-
	echo "$dir"
}

# add_modules copies the wanted modules and their dependencies, uncompressed,
# from the kernel tree $1 into the initramfs tree $2, with a matching
# modules.dep.
add_modules() {
	local kdir="$1" root="$2" ver src dst name line f
	ver="$(ls "$kdir/lib/modules")"
	src="$kdir/lib/modules/$ver"
	dst="$root/lib/modules/$ver"
	mkdir -p "$dst"
	cp "$src/modules.builtin" "$dst/"
	local -A seen=()
	local queue=()
	for name in "${modules[@]}"; do
		queue+=("${name#\?}")
	done
	while ((${#queue[@]} > 0)); do
		name="${queue[0]//-/_}"
		queue=("${queue[@]:1}")
		[[ -n "${seen[$name]:-}" ]] && continue
		seen[$name]=1
		# modules.dep names files with either - or _; match both.
		line="$(grep -E "(^|/)${name//_/[-_]}\.ko(\.[a-z]+)?:" "$src/modules.dep" || true)"
		[[ -n "$line" ]] || continue # built in, or missing: init reports it
		echo "$line" | sed -E 's/\.ko\.(xz|gz|zst)/.ko/g' >>"$dst/modules.dep"
		for f in ${line/:/}; do
			mkdir -p "$dst/$(dirname "$f")"
			case "$f" in
			*.ko) cp "$src/$f" "$dst/$f" ;;
			*.ko.xz) xz -dc "$src/$f" >"$dst/${f%.xz}" ;;
			*.ko.gz) gzip -dc "$src/$f" >"$dst/${f%.gz}" ;;
			*.ko.zst) zstd -qdc "$src/$f" >"$dst/${f%.zst}" ;;
			esac
			f="$(basename "$f")"
			queue+=("${f%%.ko*}")
		done
	done
	sort -u -o "$dst/modules.dep" "$dst/modules.dep"
	printf '%s\n' "${modules[@]}" >"$root/vmtest/modules"
}

# add_tests builds one test binary per package in $pkgs into the initramfs
# tree $1, copies each package's testdata and writes the list init runs.
add_tests() {
	local root="$1" i=0 pkg dir rel bin list
	list="$(cd "$repo" && go list -f '{{.ImportPath}}{{"\t"}}{{.Dir}}' "${pkgs[@]}")" ||
		die "go list ${pkgs[*]} failed"
	: >"$root/vmtest/tests"
	mkdir -p "$root/vmtest/bin"
	while IFS=$'\t' read -r pkg dir; do
		bin="/vmtest/bin/$(basename "$pkg")-$i.test"
		[[ "$pkg" == "github.com/sandboxkit/sandbox" ]] && bin="/sandbox.test"
		i=$((i + 1))
		if ! (cd "$repo" && CGO_ENABLED=0 go test -tags vmtest -c -o "$root$bin" "$pkg"); then
			log "building the tests of $pkg failed"
			exit 1
		fi
		if [[ ! -f "$root$bin" ]]; then
			log "$pkg: no test files"
			continue
		fi
		# The runtime's tests drive its binary, which they cannot build
		# in the VM (no Go there): it is built here, where they look.
		if [[ "$pkg" == "github.com/sandboxkit/sandbox/cmd/sandboxkit-runtime" ]] &&
			! (cd "$repo" && CGO_ENABLED=0 go build -o "$root/vmtest/bin/sandboxkit-runtime" ./cmd/sandboxkit-runtime); then
			log "building $pkg failed"
			exit 1
		fi
		rel="/src${dir#"$repo"}"
		mkdir -p "$root$rel"
		[[ -d "$dir/testdata" ]] && cp -a "$dir/testdata" "$root$rel/"
		printf '%s\t%s\t%s\n' "$bin" "$rel" "$pkg" >>"$root/vmtest/tests"
	done <<<"$list"
}

# add_base adds init, busybox and /etc to the initramfs tree $1.
add_base() {
	local root="$1" applet
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$root/init" ./vmtest/init)
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,vmtest}
	cp /bin/busybox "$root/bin/busybox"
	for applet in $(/bin/busybox --list-full); do
		[[ -e "$root/$applet" || "$applet" == linuxrc ]] && continue
		ln -s /bin/busybox "$root/$applet"
	done
	printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$root/etc/passwd"
	printf '%s\n' 'root:x:0:' 'tty:x:5:' 'nogroup:x:65534:' >"$root/etc/group"
	printf '%s\n' '127.0.0.1 localhost vmtest' '::1 localhost' >"$root/etc/hosts"
	: >"$root/etc/resolv.conf"
}

# test_args prints the test binary flags, NUL-terminated: go test's short
# names (-v, -run ...) become -test.*, and -test.v and a -test.timeout below
# the VM's wall limit are added unless given.
test_args() {
	local a has_v="" has_timeout=""
	for a in "$@"; do
		case "$a" in
		-v | -run | -run=* | -skip | -skip=* | -count | -count=* | -timeout | -timeout=* | -failfast | -short | -parallel | -parallel=* | -list | -list=* | -shuffle=* | -cpu | -cpu=*)
			a="-test.${a#-}"
			;;
		esac
		case "$a" in
		-test.v | -test.v=*) has_v=1 ;;
		-test.timeout | -test.timeout=*) has_timeout=1 ;;
		esac
		printf '%s\0' "$a"
	done
	[[ -n "$has_v" ]] || printf '%s\0' -test.v
	[[ -n "$has_timeout" ]] || printf '%s\0' "-test.timeout=$((timeout_s > 240 ? timeout_s - 120 : timeout_s / 2))s"
}

main() {
	ensure_packages
	local kdir root initrd kernel logfile rc=0 status
	kdir="$(kernel_dir)"
	kernel="$(find "$kdir/boot" -name 'vmlinuz-*' | head -n 1)"
	root="$work/root"
	mkdir -p "$root/vmtest"
	add_base "$root"
	add_tests "$root"
	add_modules "$kdir" "$root"
	test_args "$@" >"$root/vmtest/args"
	initrd="$work/initramfs.cpio"
	(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$initrd"
	log "built initramfs ($(du -h "$initrd" | cut -f1)) in $((SECONDS - started))s; booting $(basename "$kernel")"

	logfile="${VMTEST_LOG:-$work/console.log}"
	: >"$logfile"
	local vm_start=$SECONDS
	timeout -k 10 "$timeout_s" qemu-system-x86_64 \
		-nodefaults -no-user-config -display none -no-reboot \
		-machine q35 -cpu max -accel tcg,thread=multi \
		-m "${VMTEST_MEM:-2G}" -smp "${VMTEST_SMP:-2}" \
		-serial stdio \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 quiet panic=-1 cgroup_no_v1=all" \
		</dev/null >"$logfile" 2>&1 &
	qpid=$!
	tail -n +1 -s 0.2 -f --pid="$qpid" "$logfile" | sed -u 's/\r$//' &
	local tpid=$!
	wait "$qpid" || rc=$?
	qpid=""
	wait "$tpid" || true

	status="$(tr -d '\r' <"$logfile" | grep -a -o '^VMTEST-EXIT-STATUS=[0-9]*' | tail -n 1 | cut -d= -f2 || true)"
	if [[ -z "$status" ]]; then
		if ((rc == 124)); then
			log "VM killed after ${timeout_s}s (VMTEST_TIMEOUT) without an exit status"
			exit 124
		fi
		die "VM ended (qemu status $rc) without an exit status"
	fi
	log "exit status $status; VM ran $((SECONDS - vm_start))s, total $((SECONDS - started))s"
	exit "$status"
}

main "$@"
