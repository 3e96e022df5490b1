#!/usr/bin/env bash
# API latency under a scale-up: p99 of `GET /jobs/default/x` measured with
# wrk (Debian package `wrk`, installed when missing) while gafferd is idle,
# then while another job is scaled from 0 to N (default 2,000) processes.
# The loaded window is the scale-up: wrk starts 0.2 s before the scale
# request and runs until it (which returns once the N processes are
# spawned) has answered, then gets SIGINT and reports; its timeout is
# 120 s, so a request held that long still counts. Goal: p99 <= 5 ms under
# load.
#
# LOADS=crash (or LOADS="scale crash") measures the other load of the
# goal: job crash, CRASH processes (default 1,000) of /bin/true, flapping
# off and no restart delay (gafferd's defaults), so each is respawned as
# soon as it exits; once the CRASH are up, wrk runs for WINDOW (10 s) and
# the job's restart counter says how many respawns happened meanwhile.
#
#   ./api_load.sh                         # N=2000 IDLE=10s CONNS=8 ROUNDS=3 LOADS=scale
#   LOADS="scale crash" ./api_load.sh     # both loads
#   GAFFERD=/path/to/other/gafferd ./api_load.sh   # e.g. an older build
#
# gafferd runs a private config on a free loopback port; job x has one
# /bin/sleep, jobs big and crash start with none. Between rounds they are
# scaled back to 0 and every process is waited for.
set -u
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${N:-2000}
IDLE=${IDLE:-10s}
CONNS=${CONNS:-8}
ROUNDS=${ROUNDS:-3}
LOADS=${LOADS:-scale}
CRASH=${CRASH:-1000}
WINDOW=${WINDOW:-10s}
OUT=${OUT:-$BENCH_DIR/results/api-load-$(date -u +%F).jsonl}
if ! command -v wrk >/dev/null; then
	apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1; }
fi
command -v wrk >/dev/null || { echo "api_load.sh: wrk not found and cannot be installed" >&2; exit 1; }
command -v curl >/dev/null || { echo "api_load.sh: curl not found" >&2; exit 1; }
mkdir -p "$BENCH_DIR/results"
if [ -z "${GAFFERD:-}" ]; then
	(cd "$BENCH_DIR/.." && CGO_ENABLED=0 go build -o bin/ ./cmd/gafferd) || exit 1
	GAFFERD=$BENCH_DIR/../bin/gafferd
fi

W=$(mktemp -d /tmp/bench-api.XXXXXX)
GPID=
cleanup() {
	if [ -n "$GPID" ]; then
		kill -TERM "$GPID" 2>/dev/null
		for _ in $(seq 300); do kill -0 "$GPID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$GPID" 2>/dev/null
	fi
	wait 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

ulimit -n 65536 2>/dev/null
cat >"$W/gaffer.ini" <<INI
[gaffer]
bind = 127.0.0.1:0
require_key = false
data_dir = $W/data

[process:x]
cmd = /bin/sleep 86401
graceful_timeout = 1

[process:big]
cmd = /bin/sleep 86402
numprocesses = 0
graceful_timeout = 1

[process:crash]
cmd = /bin/true
numprocesses = 0
graceful_timeout = 1
INI
"$GAFFERD" -c "$W/gaffer.ini" </dev/null >"$W/gafferd.log" 2>&1 &
GPID=$!
# gafferd listens on a port of the kernel's choice and logs it.
addr=
for _ in $(seq 500); do
	addr=$(sed -n 's/.*msg=listening.*address=\(127\.0\.0\.1:[0-9]*\).*/\1/p' "$W/gafferd.log" 2>/dev/null | head -1)
	[ -n "$addr" ] && break
	sleep 0.02
done
G=http://$addr
for _ in $(seq 500); do curl -sf "$G/jobs/default/x" -o /dev/null && break; sleep 0.02; done
curl -sf "$G/jobs/default/x" -o /dev/null || { echo "api_load.sh: gafferd did not answer" >&2; cat "$W/gafferd.log" >&2; exit 1; }

# p99 in ms from wrk --latency output.
p99() { awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }; printf "%.3f", v }' "$1"; }
running() { curl -sf "$G/jobs/default/big" | sed -n 's/.*"running":\([0-9]*\).*/\1/p'; }

scale_rounds() {
	local idle=() loaded=() spawn=() r
	for r in $(seq 1 "$ROUNDS"); do
		wrk -t1 -c"$CONNS" -d"$IDLE" --timeout 120s --latency "$G/jobs/default/x" >"$W/idle.$r" 2>&1
		idle+=("$(p99 "$W/idle.$r")")

		wrk -t1 -c"$CONNS" -d600s --timeout 120s --latency "$G/jobs/default/x" >"$W/load.$r" 2>&1 &
		wrkpid=$!
		sleep 0.2 # wrk connects
		t0=$(date +%s.%N)
		curl -sf -X POST -H 'Content-Type: application/json' -d "{\"scale\": \"=$N\"}" "$G/jobs/default/big/numprocesses" -o /dev/null --max-time 600
		t1=$(date +%s.%N)
		kill -INT "$wrkpid"
		wait "$wrkpid"
		loaded+=("$(p99 "$W/load.$r")")
		spawn+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')")
		got=$(running)
		[ "$got" = "$N" ] || echo "round $r: job big runs $got processes, want $N" >&2
		echo "round $r: p99 idle ${idle[-1]} ms, during the scale to $N ${loaded[-1]} ms (scale took ${spawn[-1]} s)" >&2

		curl -sf -X POST -H 'Content-Type: application/json' -d '{"scale": "=0"}' "$G/jobs/default/big/numprocesses" -o /dev/null --max-time 600
		for _ in $(seq 600); do [ "$(running)" = "0" ] && break; sleep 0.1; done
		sleep 2 # let the stopped processes be reaped
	done
	im=$(med "${idle[@]}")
	lm=$(med "${loaded[@]}")
	sm=$(med "${spawn[@]}")
	echo "median p99: idle $im ms, during the scale-up $lm ms (goal <= 5 ms); scale to $N took $sm s" >&2
	printf '{"scenario":"api_load","batch":"%s","version":"%s","n":%s,"conns":%s,"rounds":%s,"p99_idle_ms":%s,"p99_loaded_ms":%s,"scale_s":%s,"idle_rounds":"%s","loaded_rounds":"%s"}\n' \
		"$(date -u +%Y%m%dT%H%M%SZ)" "$("$GAFFERD" -version 2>&1 | head -1)" "$N" "$CONNS" "$ROUNDS" "$im" "$lm" "$sm" "${idle[*]}" "${loaded[*]}" >>"$OUT"
}

crash_rounds() {
	local idle=() loaded=() respawns=() r
	restarts() { curl -sf "$G/jobs/default/crash" | sed -n 's/.*"restarts":\([0-9]*\).*/\1/p'; }
	for r in $(seq 1 "$ROUNDS"); do
		wrk -t1 -c"$CONNS" -d"$IDLE" --timeout 120s --latency "$G/jobs/default/x" >"$W/cidle.$r" 2>&1
		idle+=("$(p99 "$W/cidle.$r")")
		curl -sf -X POST -H 'Content-Type: application/json' -d "{\"scale\": \"=$CRASH\"}" "$G/jobs/default/crash/numprocesses" -o /dev/null --max-time 600
		sleep 1 # the loop settles
		n0=$(restarts)
		wrk -t1 -c"$CONNS" -d"$WINDOW" --timeout 120s --latency "$G/jobs/default/x" >"$W/crash.$r" 2>&1
		n1=$(restarts)
		loaded+=("$(p99 "$W/crash.$r")")
		respawns+=("$((n1 - n0))")
		echo "round $r: p99 idle ${idle[-1]} ms, during the crash loop of $CRASH ${loaded[-1]} ms (${respawns[-1]} respawns in $WINDOW)" >&2
		curl -sf -X POST -H 'Content-Type: application/json' -d '{"scale": "=0"}' "$G/jobs/default/crash/numprocesses" -o /dev/null --max-time 600
		for _ in $(seq 600); do curl -sf "$G/jobs/default/crash" | grep -q '"running":0,' && break; sleep 0.1; done
		sleep 2
	done
	local im lm rm
	im=$(med "${idle[@]}")
	lm=$(med "${loaded[@]}")
	rm=$(med "${respawns[@]}")
	echo "median p99: idle $im ms, during the crash loop $lm ms (goal <= 5 ms); $rm respawns in $WINDOW" >&2
	printf '{"scenario":"api_load_crash","batch":"%s","version":"%s","n":%s,"conns":%s,"rounds":%s,"window":"%s","p99_idle_ms":%s,"p99_loaded_ms":%s,"respawns":%s,"idle_rounds":"%s","loaded_rounds":"%s","respawn_rounds":"%s"}\n' \
		"$(date -u +%Y%m%dT%H%M%SZ)" "$("$GAFFERD" -version 2>&1 | head -1)" "$CRASH" "$CONNS" "$ROUNDS" "$WINDOW" "$im" "$lm" "$rm" "${idle[*]}" "${loaded[*]}" "${respawns[*]}" >>"$OUT"
}

med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
for l in $LOADS; do
	case $l in
	scale) scale_rounds ;;
	crash) crash_rounds ;;
	*) echo "api_load.sh: unknown load $l (want scale or crash)" >&2; exit 2 ;;
	esac
done
echo "results: $OUT" >&2
