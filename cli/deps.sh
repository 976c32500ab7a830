#!/bin/sh
# Install the Debian packages named on the command line that are missing.
# Quiet when all are there. As root: apt-get update once, then install the
# missing ones. Otherwise print the exact command to run and fail, so a
# developer is never surprised by sudo.
set -eu

missing=
for p in "$@"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	echo "deps: installing$missing" >&2
	# Packages such as nginx start their system service on install (port
	# 80, which may be taken, failing the install). We run our own nginx:
	# keep services down while installing, unless the machine already
	# has a policy of its own.
	policy=/usr/sbin/policy-rc.d
	if [ ! -e "$policy" ]; then
		trap 'rm -f "$policy"' EXIT
		trap 'exit 1' INT TERM
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
	fi
	apt-get update
	# shellcheck disable=SC2086 # one word per package
	DEBIAN_FRONTEND=noninteractive apt-get install -y \
	    --no-install-recommends $missing
	exit 0
fi

echo "deps: missing Debian packages; install them with:" >&2
echo "sudo apt-get install -y --no-install-recommends$missing"
exit 1
