#!/bin/sh
# dummy.sh: a long-running example process for gaffer.
# Prints a numbered line on stdout every second, and one on stderr every
# 5 lines. Exits 0 on SIGTERM (and SIGINT).
sleeper=
stop() {
	echo "dummy: got $1, exiting"
	[ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null
	exit 0
}
trap 'stop SIGTERM' TERM
trap 'stop SIGINT' INT
i=0
while :; do
	i=$((i + 1))
	echo "dummy $i"
	if [ $((i % 5)) -eq 0 ]; then
		echo "dummy $i (stderr)" >&2
	fi
	# sleep in the background so that the trap runs at once
	sleep 1 &
	sleeper=$!
	wait "$sleeper"
	sleeper=
done
