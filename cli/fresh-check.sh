#!/usr/bin/env bash
# The README's two commands on a fresh machine (make fresh-check, as root):
#     cli/fresh-check.sh
# 1. A minimal Debian 12 root (debootstrap --variant=minbase, plus
#    build-essential and git) from the mirror this machine's apt uses, built
#    once and kept pristine in FRESH_CACHE (default
#    /var/cache/switchboard-fresh), outside the clone.
# 2. Each run works on an overlay of it that is thrown away at the end, so
#    nothing one run installs makes the next one less fresh.
# 3. The host's CA certificates, CA variables and apt proxy/CA settings are
#    carried over, so package clients behave as on the host.
# 4. A clean clone of HEAD in /src; there `make run` until /health answers,
#    a stop, then `make test`. Timings of each phase are printed.
# Everything runs in a mount and PID namespace of its own: when it ends,
# however it ends, its mounts are gone and its processes are killed.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
self=$top/cli/fresh-check.sh
SUITE=bookworm
CACHE=${FRESH_CACHE:-/var/cache/switchboard-fresh}
ARCH=$(dpkg --print-architecture)
PRISTINE=$CACHE/$SUITE-$ARCH
# The variables that tell package clients where the CAs (and proxies) are.
CA_VARS="SSL_CERT_FILE SSL_CERT_DIR NODE_EXTRA_CA_CERTS REQUESTS_CA_BUNDLE
CURL_CA_BUNDLE GIT_SSL_CAINFO PIP_CERT http_proxy https_proxy no_proxy
HTTP_PROXY HTTPS_PROXY NO_PROXY"

say() {
	echo "fresh-check: $*" >&2
}

die() {
	say "$*"
	exit 1
}

t0=$SECONDS
phase_start=$SECONDS
phase() { # name: print how long the phase that ends here took
	local d=$((SECONDS - phase_start))
	printf 'fresh-check: %-34s %3dm%02ds\n' "$1" $((d / 60)) $((d % 60)) >&2
	phase_start=$SECONDS
}

# "URI SUITE COMPONENTS..." for each enabled deb source of the host: the
# one-line format (sources.list, *.list) and deb822 (*.sources).
host_sources() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		# deb [options] uri suite component...
		sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
		    awk '$1 == "deb" && NF >= 3 {
			    printf "%s", $2; for (i = 3; i <= NF; i++)
			    printf " %s", $i; printf "\n" }'
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk '
		function flush(  nu, ns, u, s, i, j, us, ss) {
			if (types ~ /(^| )deb( |$)/ && enabled != "no") {
				nu = split(uris, us, " ")
				ns = split(suites, ss, " ")
				for (i = 1; i <= nu; i++)
					for (j = 1; j <= ns; j++)
						print us[i], ss[j], comps
			}
			types = uris = suites = comps = ""; enabled = "yes"
		}
		BEGIN { enabled = "yes" }
		/^[ \t]*#/ { next }
		/^[ \t]*$/ { flush(); next }
		/^[ \t]/ { next } # continuation lines: keys we need are one-line
		{
			key = tolower($1); sub(/:$/, "", key)
			$1 = ""; sub(/^ +/, "")
			if (key == "types") types = $0
			else if (key == "uris") uris = $0
			else if (key == "suites") suites = $0
			else if (key == "components") comps = $0
			else if (key == "enabled") enabled = tolower($0)
		}
		END { flush() }' "$f"
	done
}

# The host's Debian sources for SUITE and its -updates and -security.
suite_sources() {
	host_sources | awk -v s="$SUITE" \
	    '$2 == s || $2 == s "-updates" || $2 == s "-security" ||
	     $2 == s "/updates"' | sort -u
}

build_pristine() {
	local mirror tmp
	mirror=${FRESH_MIRROR:-$(suite_sources | awk -v s="$SUITE" \
	    '$2 == s { print $1; exit }')}
	[ -n "$mirror" ] || die "no apt source for $SUITE on this machine" \
	    "(set FRESH_MIRROR)"
	say "building a pristine $SUITE root from $mirror into $PRISTINE"
	tmp=$CACHE/.build.$$
	rm -rf --one-file-system "$tmp"
	trap 'rm -rf --one-file-system "$tmp"' EXIT
	# In a mount namespace: whatever debootstrap mounts in the root, even
	# when it fails half-way, is gone when it ends.
	unshare --mount --fork -- debootstrap --variant=minbase \
	    --include=build-essential,git "$SUITE" "$tmp" "$mirror" \
	    >"$CACHE/debootstrap.log" 2>&1 || {
		tail -n 30 "$CACHE/debootstrap.log" >&2
		die "debootstrap failed; see $CACHE/debootstrap.log"
	}
	# The root's apt reads the same mirrors as the host's.
	suite_sources | awk '{ printf "deb %s", $1; for (i = 2; i <= NF; i++)
	    printf " %s", $i; printf "\n" }' >"$tmp/etc/apt/sources.list"
	[ -s "$tmp/etc/apt/sources.list" ] ||
	    echo "deb $mirror $SUITE main" >"$tmp/etc/apt/sources.list"
	apt_host_conf >"$tmp/etc/apt/apt.conf.d/90host"
	rm -rf "$tmp/var/cache/apt/archives/"*.deb
	touch "$tmp/.pristine"
	mv "$tmp" "$PRISTINE"
	trap - EXIT
}

# The host's apt settings that decide how packages are fetched: proxies,
# CAs, peer checks and the release-date checks of a snapshot mirror.
apt_host_conf() {
	apt-config dump | grep -E '^Acquire::((https?|ftp)::(Proxy|CaInfo|CaPath|Verify-Peer|Verify-Host|SslCert|SslKey)|Check-Valid-Until|Check-Date)( |::)' || true
}

# ---- inside the namespaces ----------------------------------------------
inside() {
	local work=$1 root=$1/root port
	# Global: the EXIT trap runs after this function has returned.
	fresh_root=$root
	trap 'umount_all "$fresh_root"' EXIT
	mount --make-rprivate /
	mkdir -p "$work/upper" "$work/ovl" "$root"
	if ! mount -t overlay overlay -o "lowerdir=$PRISTINE,upperdir=$work/upper,workdir=$work/ovl" "$root" 2>/dev/null; then
		say "no overlayfs here; copying the pristine root"
		cp -a "$PRISTINE/." "$root/"
	fi
	mount -t proc proc "$root/proc"
	mount -t sysfs sysfs "$root/sys"
	mount --bind /dev "$root/dev"
	mount -t devpts devpts "$root/dev/pts" -o newinstance,ptmxmode=0666
	mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
	cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

	carry_cas "$root"
	git clone -q --no-hardlinks --no-checkout "$top" "$root/src"
	git -C "$root/src" checkout -q --detach "$(git -C "$top" rev-parse HEAD)"
	phase "overlay, CAs, clean clone"

	# The README's make run, in a session of its own (its pid, written
	# to the root's /run, is its group) so that it can be stopped as
	# Ctrl-C would.
	port=$(free_port)
	in_root "$root" 'cd /src && { setsid make run & echo $! >/run/fresh-make.pid; wait $!; }' \
	    PORT="$port" HOST=127.0.0.1 >"$work/run.log" 2>&1 &
	local runner=$! up=0 pgid rc=0
	for _ in $(seq 3600); do
		if curl -fsS -o /dev/null --max-time 2 \
		    "http://127.0.0.1:$port/health" 2>/dev/null; then
			up=1
			break
		fi
		kill -0 "$runner" 2>/dev/null || break
		sleep 0.5
	done
	if [ $up -ne 1 ]; then
		tail -n 40 "$work/run.log" >&2
		die "make run did not answer /health"
	fi
	phase "make run until /health answers"
	pgid=$(cat "$root/run/fresh-make.pid")
	kill -TERM -- "-$pgid" 2>/dev/null || true
	wait "$runner" 2>/dev/null || true
	# run.sh outlives make by its stop: wait until nothing answers.
	for _ in $(seq 60); do
		curl -fsS -o /dev/null --max-time 1 \
		    "http://127.0.0.1:$port/health" 2>/dev/null || break
		sleep 0.5
	done
	if ! grep -q '^run: stopping' "$work/run.log" ||
	    curl -fsS -o /dev/null --max-time 1 \
	    "http://127.0.0.1:$port/health" 2>/dev/null; then
		tail -n 20 "$work/run.log" >&2
		die "make run did not stop"
	fi
	phase "stop"

	in_root "$root" 'cd /src && make test' >"$work/test.log" 2>&1 || rc=$?
	grep -E '^(unit:|FAIL|[0-9]+ (passed|failed)|=+ .*(passed|failed))' \
	    "$work/test.log" >&2 || true
	phase "make test"
	if [ $rc -ne 0 ]; then
		tail -n 60 "$work/test.log" >&2
		die "make test failed in the fresh root (status $rc)"
	fi
}

# Run a command line in the root as a fresh login would: a clean
# environment but for CI and the CA variables. $1 root, $2 command line,
# then VAR=value pairs.
in_root() {
	local root=$1 cmd=$2 v
	shift 2
	local envs=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	    HOME=/root LANG=C.UTF-8 TERM=dumb CI="${CI:-true}"
	    DEBIAN_FRONTEND=noninteractive)
	for v in $CA_VARS; do
		[ -n "${!v:-}" ] && envs+=("$v=${!v}")
	done
	chroot "$root" /usr/bin/env -i "${envs[@]}" "$@" \
	    /bin/bash -c "$cmd" </dev/null
}

# The host's CA certificates and the files the CA variables name.
carry_cas() {
	local root=$1 v f
	mkdir -p "$root/usr/local/share/ca-certificates" "$root/etc/ssl/certs"
	# update-ca-certificates (when the ca-certificates package comes in)
	# keeps local CAs from here in the bundle it rebuilds.
	cp -a /usr/local/share/ca-certificates/. \
	    "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
	[ -r /etc/ssl/certs/ca-certificates.crt ] &&
	    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
	for v in $CA_VARS; do
		f=${!v:-}
		case "$f" in /*) ;; *) continue ;; esac
		[ -f "$f" ] && [ ! -e "$root$f" ] || continue
		mkdir -p "$root$(dirname "$f")"
		cp "$f" "$root$f"
	done
	# apt settings of the host made after the pristine root was built.
	apt_host_conf >"$root/etc/apt/apt.conf.d/90host"
}

free_port() {
	python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

umount_all() {
	local root=$1 m
	# Deepest first; lazily, so a busy mount cannot keep the rest.
	for m in dev/shm dev/pts dev sys proc; do
		mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"
	done
	mountpoint -q "$root" 2>/dev/null && umount -l "$root"
	return 0
}

# ---- on the host --------------------------------------------------------
if [ "${1:-}" = --inside ]; then
	inside "$2"
	exit 0
fi

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mounts)"
for bin in debootstrap unshare chroot curl git python3; do
	command -v "$bin" >/dev/null || die "$bin not found"
done
mkdir -p "$CACHE"
chmod 0755 "$CACHE"

# One run at a time per cache.
exec 9>"$CACHE/lock"
flock 9

if [ ! -e "$PRISTINE/.pristine" ]; then
	rm -rf "$PRISTINE"
	build_pristine
	phase "pristine $SUITE root (cached)"
else
	say "using the pristine root in $PRISTINE"
fi

work=$(mktemp -d "$CACHE/run.XXXXXX")
cleanup() {
	# The root's mounts lived in the namespace only.
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
phase_start=$SECONDS
# --kill-child: if this script dies, everything inside dies with it.
rc=0
unshare --mount --pid --fork --kill-child -- \
    "$self" --inside "$work" || rc=$?
d=$((SECONDS - t0))
printf 'fresh-check: %-34s %3dm%02ds\n' total $((d / 60)) $((d % 60)) >&2
[ $rc -eq 0 ] || die "failed"
say "passed"
