#!/usr/bin/env bash
# Run the whole system from a build directory until Ctrl-C:
#     cli/run.sh BUILD_DIR
# nginx (unprivileged, its config generated into RUN_DIR), one spawn-fcgi
# per FastCGI program, and the relay. PORT, HOST, DB_PATH and RUN_DIR come
# from the environment, else from .env (ENV_FILE), else the defaults, so
# several instances run side by side with different values.
# SIGINT (Ctrl-C), SIGTERM or SIGHUP stop everything. The relay holds only
# live sockets, so when it dies it is started again (with a growing pause
# if it keeps dying); any other program exiting stops the run.
# A script that starts this one in the background hands it SIGINT ignored,
# and bash cannot trap a signal ignored at its start: stop it with SIGTERM.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 BUILD_DIR" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)

die() {
	echo "run: $*" >&2
	exit 1
}

# The value of $1 in the .env file, read as config_load reads it: KEY=VALUE
# lines, optional "export ", 'single' or "double" quotes, or a bare value
# ending at " #". Status 1 when the file does not set it.
dotenv_get() {
	local file=${ENV_FILE:-./.env} line key val found=0
	[ -r "$file" ] || return 1
	while IFS= read -r line || [ -n "$line" ]; do
		line=${line%$'\r'}
		line=${line#"${line%%[![:space:]]*}"}
		case "$line" in
		export[[:space:]]*) line=${line#export}
			line=${line#"${line%%[![:space:]]*}"} ;;
		esac
		case "$line" in
		'#'* | '') continue ;;
		*=*) ;;
		*) continue ;;
		esac
		key=${line%%=*}
		key=${key%"${key##*[![:space:]]}"}
		[ "$key" = "$1" ] || continue
		val=${line#*=}
		val=${val#"${val%%[![:space:]]*}"}
		case "$val" in
		\"*) val=${val#\"} val=${val%%\"*} ;;
		\'*) val=${val#\'} val=${val%%\'*} ;;
		*) val=${val%%[[:space:]]#*}
			val=${val%"${val##*[![:space:]]}"} ;;
		esac
		printf '%s\n' "$val"
		found=1
	done <"$file"
	[ "$found" = 1 ]
}

# As config_load: the environment (even when empty) wins over .env; an
# empty value means the default.
setting() {
	local name=$1 def=$2 v=
	if [ -n "${!name+set}" ]; then
		v=${!name}
	else
		v=$(dotenv_get "$name" | tail -n 1) || v=
	fi
	printf '%s\n' "${v:-$def}"
}

abspath() {
	case "$1" in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s\n' "$PWD/${1#./}" ;;
	esac
}

PORT=$(setting PORT 8080)
HOST=$(setting HOST 0.0.0.0)
RUN_DIR=$(abspath "$(setting RUN_DIR ./var/run)")
DB_PATH=$(abspath "$(setting DB_PATH ./var/voip.db)")
export PORT HOST RUN_DIR DB_PATH

# The database holds password hashes and the logs request details: nothing
# this run creates is for other users of the machine.
umask 077
mkdir -p "$RUN_DIR/log" "$RUN_DIR/nginx" "$(dirname "$DB_PATH")"
chmod 0700 "$RUN_DIR"

if [ -s "$RUN_DIR/nginx.pid" ] && kill -0 "$(cat "$RUN_DIR/nginx.pid")" 2>/dev/null; then
	die "$RUN_DIR is in use by a running instance (nginx pid $(cat "$RUN_DIR/nginx.pid"))"
fi
# Debian keeps nginx in /usr/sbin, off a normal user's PATH.
PATH=$PATH:/usr/sbin:/sbin
for bin in nginx spawn-fcgi; do
	command -v "$bin" >/dev/null || die "$bin not found (make deps installs it)"
done
[ -x "$build/bin/switchboard" ] || die "$build/bin/switchboard: not built"

# Creates and migrates the database; on first run writes a JWT_SECRET to
# .env when none is configured, creates the admin and prints its password,
# the only time it is ever shown.
"$build/bin/switchboard" init

"$top/cli/nginx-conf.sh" "$RUN_DIR" "$HOST" "$PORT" "$top/nginx/html" \
    >"$RUN_DIR/nginx.conf.tmp"
mv "$RUN_DIR/nginx.conf.tmp" "$RUN_DIR/nginx.conf"
nginx_args=(-c "$RUN_DIR/nginx.conf" -p "$RUN_DIR/"
    -e "$RUN_DIR/log/nginx-error.log")
nginx -t -q "${nginx_args[@]}" || die "nginx refused $RUN_DIR/nginx.conf"

declare -A names # pid -> what it runs
stopping=0
nap_pid=

stop_all() {
	local pid
	stopping=1
	trap '' INT TERM HUP
	[ -z "$nap_pid" ] || kill "$nap_pid" 2>/dev/null || true
	for pid in "${!names[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	# Bounded: whatever still runs after 10 s is killed.
	for _ in $(seq 100); do
		for pid in "${!names[@]}"; do
			kill -0 "$pid" 2>/dev/null || unset "names[$pid]"
		done
		[ ${#names[@]} -eq 0 ] && break
		sleep 0.1
	done
	for pid in "${!names[@]}"; do
		echo "run: ${names[$pid]} did not stop; killing it" >&2
		kill -KILL "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -f "$RUN_DIR"/fcgi-*.sock
}

# Once only: `make run` gets the signal twice (from the terminal, or from
# make, which passes SIGTERM on to its children).
on_signal() {
	trap '' INT TERM HUP
	[ $stopping -eq 0 ] || return 0
	stopping=1
	echo
	echo "run: stopping" >&2
	stop_all
	exit 0
}
trap on_signal INT TERM HUP

for prog in "$build"/cgi-bin/*; do
	[ -f "$prog" ] && [ -x "$prog" ] || continue
	name=$(basename "$prog")
	case "$name" in *.*) continue ;; esac
	sock=$RUN_DIR/fcgi-$name.sock
	rm -f "$sock"
	# -n: spawn-fcgi binds, then becomes the program, so $! is its pid.
	# setsid: Ctrl-C reaches this script only, which stops everything in
	# order (and setsid execs in place here, so $! stays the pid).
	setsid spawn-fcgi -n -s "$sock" -M 0600 -- "$prog" \
	    </dev/null >/dev/null 2>>"$RUN_DIR/log/$name.log" &
	names[$!]=$name
done
[ ${#names[@]} -gt 0 ] || die "no FastCGI programs in $build/cgi-bin"

relay_started=0
start_relay() {
	setsid "$build/bin/switchboard-relay" </dev/null >/dev/null \
	    2>>"$RUN_DIR/log/relay.log" &
	names[$!]=relay
	relay_started=$SECONDS
}
relay=0
if [ -x "$build/bin/switchboard-relay" ]; then
	relay=1
	start_relay
fi

setsid nginx "${nginx_args[@]}" -g 'daemon off;' </dev/null &
names[$!]=nginx

url_host=$HOST url_host_raw=$HOST
case "$HOST" in
0.0.0.0 | '') url_host=127.0.0.1 url_host_raw=127.0.0.1 ;;
'::') url_host='[::1]' url_host_raw=::1 ;;
*:*) url_host="[$HOST]" ;;
esac
url=http://$url_host:$PORT

# GET /health answers 200 (bash's /dev/tcp: curl may not be installed).
health_ok() {
	local line
	(
		exec 3<>"/dev/tcp/$url_host_raw/$PORT" || exit 1
		printf 'GET /health HTTP/1.0\r\nHost: %s:%s\r\n\r\n' \
		    "$url_host_raw" "$PORT" >&3
		IFS= read -r -t 2 line <&3 || exit 1
		case "$line" in "HTTP/1."?" 200 "*) exit 0 ;; esac
		exit 1
	) 2>/dev/null
}

# Say "serving" only once nginx and the auth program really answer.
up=0
for _ in $(seq 100); do
	if health_ok; then
		up=1
		break
	fi
	for pid in "${!names[@]}"; do
		kill -0 "$pid" 2>/dev/null && continue
		echo "run: ${names[$pid]} exited at start; see $RUN_DIR/log/" >&2
		stop_all
		exit 1
	done
	sleep 0.2
done
[ $up -eq 1 ] || echo "run: $url/health does not answer yet; see $RUN_DIR/log/" >&2

echo "switchboard is serving on $url (Ctrl-C stops)"
echo "logs: $RUN_DIR/log/"

# The relay comes back after a pause: 0.5 s, then doubling up to 16 s
# while it keeps dying within a minute of its start. Any other process that
# exits on its own ends the run: half a system only confuses.
pauses=(0.5 1 2 4 8 16)
tries=0
while :; do
	status=0 done_pid=
	wait -n -p done_pid || status=$?
	[ $stopping -eq 0 ] || break
	name=
	[ -z "$done_pid" ] || name=${names[$done_pid]-}
	if [ -z "$name" ]; then
		# A stray child (or none left): find who is gone by asking.
		for pid in "${!names[@]}"; do
			kill -0 "$pid" 2>/dev/null && continue
			name=${names[$pid]} done_pid=$pid
		done
		if [ -z "$name" ]; then
			sleep 0.2
			continue
		fi
	fi
	unset "names[$done_pid]"
	if [ "$name" != relay ] || [ $relay -eq 0 ]; then
		echo "run: $name exited (status $status); stopping" >&2
		stop_all
		exit 1
	fi
	[ $((SECONDS - relay_started)) -ge 60 ] && tries=0
	pause=${pauses[tries]}
	[ $tries -lt $((${#pauses[@]} - 1)) ] && tries=$((tries + 1))
	echo "run: relay exited (status $status); restarting in ${pause}s" >&2
	# In the background so that a signal is handled at once, not after
	# the pause.
	sleep "$pause" &
	nap_pid=$!
	wait "$nap_pid" 2>/dev/null || true
	nap_pid=
	[ $stopping -eq 0 ] || break
	start_relay
	echo "run: relay restarted (pid $!)" >&2
done
