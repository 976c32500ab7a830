#!/bin/sh
# Install a build:
#     cli/install.sh DESTDIR PREFIX BUILD_DIR
# (make install calls it). DESTDIR is the staging root ("" for the real
# system), PREFIX where the files live at run time (/usr/local, /usr).
#
#   PREFIX/bin/switchboard                command-line tool
#   PREFIX/sbin/switchboard-relay         WebSocket relay
#   PREFIX/lib/switchboard/cgi-bin/*      FastCGI programs
#   PREFIX/share/switchboard/             nginx snippet, static web client,
#                                         switchboard.env.example
#   PREFIX/lib/systemd/system/            units (socket-activated programs,
#                                         the relay, switchboard.target)
#   PREFIX/lib/{sysusers,tmpfiles}.d/     the switchboard user, /run dir
#   /etc/switchboard/switchboard.env      only when absent: never replaced
set -eu

if [ $# -ne 3 ]; then
	echo "usage: $0 DESTDIR PREFIX BUILD_DIR" >&2
	exit 2
fi
destdir=$1 prefix=$2 build=$3
top=$(cd "$(dirname "$0")/.." && pwd)
case "$prefix" in
/*) ;;
*) echo "$0: PREFIX must be absolute: $prefix" >&2; exit 2 ;;
esac
sysconfdir=/etc
run_dir=/run/switchboard
share=$prefix/share/switchboard
unitdir=$prefix/lib/systemd/system

for f in "$build/bin/switchboard" "$build/bin/switchboard-relay"; do
	[ -x "$f" ] || { echo "$0: $f: not built" >&2; exit 1; }
done

d() { install -d -m 0755 "$destdir$1"; }
subst() {
	sed -e "s|@PREFIX@|$prefix|g" -e "s|@SYSCONFDIR@|$sysconfdir|g" \
	    -e "s|@RUN_DIR@|$run_dir|g" -e "s|@HTML_ROOT@|$share/html|g" \
	    -e "s|@FCGI_SOCKETS@|$sockets|g" "$1"
}

d "$prefix/bin"
d "$prefix/sbin"
d "$prefix/lib/switchboard/cgi-bin"
d "$share/html"
d "$unitdir"
d "$prefix/lib/sysusers.d"
d "$prefix/lib/tmpfiles.d"

install -m 0755 "$build/bin/switchboard" "$destdir$prefix/bin/switchboard"
install -m 0755 "$build/bin/switchboard-relay" \
    "$destdir$prefix/sbin/switchboard-relay"
sockets=
for prog in "$build"/cgi-bin/*; do
	[ -f "$prog" ] && [ -x "$prog" ] || continue
	name=$(basename "$prog")
	case "$name" in *.*) continue ;; esac
	install -m 0755 "$prog" "$destdir$prefix/lib/switchboard/cgi-bin/$name"
	sockets="$sockets${sockets:+ }switchboard-fcgi@$name.socket"
done

subst "$top/nginx/switchboard.conf" >"$destdir$share/switchboard.conf"
chmod 0644 "$destdir$share/switchboard.conf"
for f in "$top"/nginx/html/*; do
	install -m 0644 "$f" "$destdir$share/html/"
done

for f in "$top"/cli/systemd/*.service "$top"/cli/systemd/*.socket \
    "$top"/cli/systemd/*.target; do
	subst "$f" >"$destdir$unitdir/$(basename "$f")"
	chmod 0644 "$destdir$unitdir/$(basename "$f")"
done
install -m 0644 "$top/cli/systemd/switchboard.sysusers" \
    "$destdir$prefix/lib/sysusers.d/switchboard.conf"
install -m 0644 "$top/cli/systemd/switchboard.tmpfiles" \
    "$destdir$prefix/lib/tmpfiles.d/switchboard.conf"

cat >"$destdir$share/switchboard.env.example" <<'ENV'
# switchboard configuration: KEY=VALUE lines, read by every program.
# The environment overrides what is here.
JWT_SECRET=
JWT_EXPIRY_HOURS=24
DEBUG=false
CORS_ORIGINS=
ASTERISK_HOST=
ASTERISK_AMI_PORT=5038
ASTERISK_AMI_USERNAME=
ASTERISK_AMI_SECRET=
SIP_PORT=8088
ENV
chmod 0644 "$destdir$share/switchboard.env.example"

# On the real system, the account and directories now, so the
# configuration below can be given to the switchboard group.
if [ -z "$destdir" ] && [ "$(id -u)" -eq 0 ]; then
	if command -v systemd-sysusers >/dev/null; then
		systemd-sysusers "$prefix/lib/sysusers.d/switchboard.conf"
	fi
	if command -v systemd-tmpfiles >/dev/null; then
		systemd-tmpfiles --create "$prefix/lib/tmpfiles.d/switchboard.conf"
	fi
fi

# The live configuration is the administrator's: created once, with a
# fresh secret, and never touched again. A staged install (DESTDIR) gets
# none: a package must not ship one secret to every machine.
conf=$sysconfdir/switchboard/switchboard.env
if [ -z "$destdir" ] && [ ! -e "$conf" ]; then
	install -d -m 0755 "$sysconfdir/switchboard"
	(
		umask 077
		secret=$(head -c 48 /dev/urandom | base64 | tr -d '\n+/=')
		sed "s|^JWT_SECRET=.*|JWT_SECRET=$secret|" \
		    "$share/switchboard.env.example" >"$conf"
	)
	if getent group switchboard >/dev/null; then
		chgrp switchboard "$conf" && chmod 0640 "$conf"
	fi
	echo "install: created $conf"
elif [ -z "$destdir" ]; then
	echo "install: kept $conf"
fi

cat <<MSG
installed into $destdir$prefix. Next steps (as root):
  systemd-sysusers; systemd-tmpfiles --create   (done when installed as root)
  sudo -u switchboard env ENV_FILE=$conf DB_PATH=/var/lib/switchboard/voip.db \\
      RUN_DIR=$run_dir $prefix/bin/switchboard init   # prints the admin password once
  in the site's nginx http {} block:
      limit_req_zone \$binary_remote_addr zone=switchboard_login:10m rate=10r/s;
      limit_req_zone \$binary_remote_addr zone=switchboard_register:10m rate=6r/m;
  in its server {} block:
      include $share/switchboard.conf;
  systemctl daemon-reload; systemctl enable --now switchboard.target
MSG
