#!/bin/sh
# A throwaway PostgreSQL cluster for the tests, listening only on a Unix
# socket in DIR (no TCP port to collide with anything):
#     tests/pgcluster.sh start DIR    initdb (when new) and start
#     tests/pgcluster.sh stop DIR     stop (fast), keep the files
#     tests/pgcluster.sh restart DIR
#     tests/pgcluster.sh createdb DIR NAME   an empty database
# Connect with postgresql:///DBNAME?host=DIR: the cluster's superuser is
# the user running this script, trusted on the socket. PostgreSQL refuses
# to run as root, so as root the server runs as nobody, owning DIR. fsync
# is off: a test cluster is thrown away, not recovered.
set -eu

usage() {
	echo "usage: $0 start|stop|restart DIR, or $0 createdb DIR NAME" >&2
	exit 2
}
[ $# -ge 2 ] || usage
cmd=$1
dir=$2

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
	echo "$0: no PostgreSQL server in /usr/lib/postgresql (make deps)" >&2
	exit 1
fi

user=$(id -un)
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
	else
		"$@"
	fi
}

start() {
	mkdir -p "$dir"
	[ "$(id -u)" -ne 0 ] || chown nobody:nogroup "$dir"
	chmod 0755 "$dir"
	# The server's working directory must be one it may enter.
	cd "$dir"
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		as_owner "$bin/initdb" -D "$dir/data" -U "$user" \
		    --auth=trust --encoding=UTF8 --no-locale --no-sync \
		    >"$dir/initdb.log" 2>&1 || {
			cat "$dir/initdb.log" >&2
			exit 1
		}
	fi
	as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
	    -o "-c listen_addresses='' -c unix_socket_directories='$dir'" \
	    -o "-c fsync=off -c synchronous_commit=off" \
	    -o "-c full_page_writes=off -c max_connections=400" \
	    -o "-c shared_buffers=32MB" \
	    start >/dev/null || {
		tail -n 30 "$dir/server.log" >&2
		exit 1
	}
}

stop() {
	cd "$dir"
	as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
}

case $cmd in
start) start ;;
stop) stop ;;
restart) stop && start ;;
createdb)
	[ $# -eq 3 ] || usage
	"$bin/createdb" -h "$dir" "$3"
	;;
*) usage ;;
esac
