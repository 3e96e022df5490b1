#!/usr/bin/env bash
# API latency under load: p99 of `GET /jobs/default/x` measured with wrk
# (Debian package `wrk`, installed when missing) while gafferd is idle,
# then under load, and the same for a bare net/http server serving the
# same bytes (tool/cmd/barehttp) under the same load: the control, which
# says how much of the latency is the machine's (2 shared cores) and not
# gafferd's. Goal: p99 <= 5 ms under load. Two loads (LOADS):
#
#   scale  another job is scaled from 0 to N (default 2,000) /bin/sleep.
#          The window is the scale-up: wrk starts 0.2 s before the scale
#          request and runs until it (which returns once the N processes
#          are spawned) has answered, then gets SIGINT and reports. The
#          control is a second scale-up, with wrk on the bare server.
#   crash  job crash, CRASH processes (default 1,000) of /bin/true,
#          flapping off and no restart delay (gafferd's defaults), so each
#          is respawned as soon as it exits; once they are up, wrk runs for
#          WINDOW (10 s) on gafferd, then WINDOW on the bare server; the
#          job's restart counter says how many respawns happened.
#
# wrk's timeout is 120 s, so a request held that long still counts.
#
#   ./api_load.sh                         # N=2000 IDLE=10s CONNS=8 ROUNDS=3 LOADS="scale crash"
#   LOADS=crash ROUNDS=5 ./api_load.sh
#   GAFFERD=/path/to/other/gafferd ./api_load.sh   # e.g. an older build
#   PERF=/tmp/dir ROUNDS=1 ./api_load.sh   # perf record -g of gafferd during each loaded window
#   GAFFERD=gafferd-built-with-tag-gafferd_pprof GAFFERD_PPROF=127.0.0.1:PORT PERF=/tmp/dir ./api_load.sh
#          # ... and a 3 s Go execution trace of each window, mutex and block profiles after it
#
# gafferd runs a private config on a free loopback port (max_processes
# raised to fit N and CRASH); job x has one /bin/sleep, jobs big and crash
# start with none. Between rounds they are scaled back to 0 and every
# process is waited for.
set -u
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${N:-2000}
IDLE=${IDLE:-10s}
CONNS=${CONNS:-8}
ROUNDS=${ROUNDS:-3}
LOADS=${LOADS:-scale crash}
CRASH=${CRASH:-1000}
WINDOW=${WINDOW:-10s}
OUT=${OUT:-$BENCH_DIR/results/api-load-$(date -u +%F).jsonl}
if ! command -v wrk >/dev/null; then
	apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1; }
fi
command -v wrk >/dev/null || { echo "api_load.sh: wrk not found and cannot be installed" >&2; exit 1; }
command -v curl >/dev/null || { echo "api_load.sh: curl not found" >&2; exit 1; }
mkdir -p "$BENCH_DIR/results" "$BENCH_DIR/bin"
(cd "$BENCH_DIR/tool" && go build -o ../bin/barehttp ./cmd/barehttp) || exit 1
if [ -z "${GAFFERD:-}" ]; then
	(cd "$BENCH_DIR/.." && CGO_ENABLED=0 go build -o bin/ ./cmd/gafferd) || exit 1
	GAFFERD=$BENCH_DIR/../bin/gafferd
fi
version=$("$GAFFERD" -version 2>&1 | head -1)

W=$(mktemp -d /tmp/bench-api.XXXXXX)
GPID= BPID=
cleanup() {
	[ -n "$BPID" ] && kill "$BPID" 2>/dev/null
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
max_processes = $((N > CRASH ? N : CRASH))

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
curl -sf "$G/jobs/default/x" -o "$W/body.json" || { echo "api_load.sh: gafferd did not answer" >&2; cat "$W/gafferd.log" >&2; exit 1; }
"$BENCH_DIR/bin/barehttp" -addr 127.0.0.1:0 -path /jobs/default/x -body "$W/body.json" -portfile "$W/bare.port" 2>/dev/null &
BPID=$!
for _ in $(seq 500); do [ -s "$W/bare.port" ] && break; sleep 0.01; done
B=http://$(cat "$W/bare.port")
curl -sf "$B/jobs/default/x" -o /dev/null || { echo "api_load.sh: barehttp did not answer" >&2; exit 1; }

# perf_start NAME / perf_stop: with PERF=DIR, perf record -g of gafferd
# (499 Hz) into DIR/NAME.data while the load runs.
PERFPID=
perf_start() {
	[ -n "${PERF:-}" ] || return 0
	mkdir -p "$PERF"
	PERFNAME=$1
	if [ -n "${GAFFERD_PPROF:-}" ]; then
		curl -s "http://$GAFFERD_PPROF/debug/pprof/mutex" -o "$PERF/$1.mutex0"
		curl -s "http://$GAFFERD_PPROF/debug/pprof/block" -o "$PERF/$1.block0"
		curl -s "http://$GAFFERD_PPROF/debug/pprof/trace?seconds=3" -o "$PERF/$1.trace" &
	fi
	perf record -F 499 -g -p "$GPID" -o "$PERF/$1.data" >/dev/null 2>&1 &
	PERFPID=$!
	sleep 0.1
}
perf_stop() {
	[ -n "$PERFPID" ] || return 0
	kill -INT "$PERFPID" 2>/dev/null
	wait "$PERFPID" 2>/dev/null
	PERFPID=
	if [ -n "${GAFFERD_PPROF:-}" ]; then
		curl -s "http://$GAFFERD_PPROF/debug/pprof/mutex" -o "$PERF/$PERFNAME.mutex"
		curl -s "http://$GAFFERD_PPROF/debug/pprof/block" -o "$PERF/$PERFNAME.block"
	fi
}

# p99 in ms from wrk --latency output.
p99() { awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }; printf "%.3f", v }' "$1"; }
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
running() { curl -sf "$G/jobs/default/$1" | sed -n 's/.*"running":\([0-9]*\).*/\1/p'; }
restarts() { curl -sf "$G/jobs/default/crash" | sed -n 's/.*"restarts":\([0-9]*\).*/\1/p'; }
scale() { curl -sf -X POST -H 'Content-Type: application/json' -d "{\"scale\": \"=$2\"}" "$G/jobs/default/$1/numprocesses" -o /dev/null --max-time 600; }
wrk_for() { wrk -t1 -c"$CONNS" -d"$1" --timeout 120s --latency "$2/jobs/default/x" >"$3" 2>&1; }
idle_round() { # -> idle p99 of gafferd and of the bare server
	wrk_for "$IDLE" "$G" "$W/idle"
	wrk_for "$IDLE" "$B" "$W/bidle"
	echo "$(p99 "$W/idle") $(p99 "$W/bidle")"
}
# scale_during URL FILE: wrk on URL during one scale of big to N; prints the scale's seconds
scale_during() {
	local wrkpid t0 t1 got
	wrk -t1 -c"$CONNS" -d600s --timeout 120s --latency "$1/jobs/default/x" >"$2" 2>&1 &
	wrkpid=$!
	sleep 0.2 # wrk connects
	[ "$1" = "$G" ] && perf_start scale
	t0=$(date +%s.%N)
	scale big "$N"
	t1=$(date +%s.%N)
	perf_stop
	kill -INT "$wrkpid"
	wait "$wrkpid"
	got=$(running big)
	[ "$got" = "$N" ] || echo "job big runs $got processes, want $N" >&2
	scale big 0
	for _ in $(seq 600); do [ "$(running big)" = "0" ] && break; sleep 0.1; done
	sleep 2 # let the stopped processes be reaped
	awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}'
}

scale_rounds() {
	local idle=() bidle=() loaded=() bloaded=() spawn=() r i s
	for r in $(seq 1 "$ROUNDS"); do
		read -r i s <<<"$(idle_round)"
		idle+=("$i") bidle+=("$s")
		spawn+=("$(scale_during "$G" "$W/load.$r")")
		loaded+=("$(p99 "$W/load.$r")")
		scale_during "$B" "$W/bload.$r" >/dev/null
		bloaded+=("$(p99 "$W/bload.$r")")
		echo "round $r: p99 idle ${idle[-1]} ms (bare ${bidle[-1]}), during the scale to $N ${loaded[-1]} ms (bare ${bloaded[-1]}; scale took ${spawn[-1]} s)" >&2
	done
	local im bim lm blm sm
	im=$(med "${idle[@]}") bim=$(med "${bidle[@]}") lm=$(med "${loaded[@]}") blm=$(med "${bloaded[@]}") sm=$(med "${spawn[@]}")
	echo "median p99: idle $im ms (bare $bim), during the scale-up $lm ms (bare $blm; goal <= 5 ms); scale to $N took $sm s" >&2
	printf '{"scenario":"api_load","batch":"%s","version":"%s","n":%s,"conns":%s,"rounds":%s,"p99_idle_ms":%s,"p99_loaded_ms":%s,"bare_p99_idle_ms":%s,"bare_p99_loaded_ms":%s,"scale_s":%s,"idle_rounds":"%s","loaded_rounds":"%s","bare_loaded_rounds":"%s"}\n' \
		"$(date -u +%Y%m%dT%H%M%SZ)" "$version" "$N" "$CONNS" "$ROUNDS" "$im" "$lm" "$bim" "$blm" "$sm" "${idle[*]}" "${loaded[*]}" "${bloaded[*]}" >>"$OUT"
}

crash_rounds() {
	local idle=() bidle=() loaded=() bloaded=() respawns=() r i s n0 n1
	for r in $(seq 1 "$ROUNDS"); do
		read -r i s <<<"$(idle_round)"
		idle+=("$i") bidle+=("$s")
		scale crash "$CRASH"
		sleep 1 # the loop settles
		n0=$(restarts)
		perf_start crash
		wrk_for "$WINDOW" "$G" "$W/crash.$r"
		perf_stop
		n1=$(restarts)
		wrk_for "$WINDOW" "$B" "$W/bcrash.$r"
		loaded+=("$(p99 "$W/crash.$r")") bloaded+=("$(p99 "$W/bcrash.$r")")
		respawns+=("$((n1 - n0))")
		echo "round $r: p99 idle ${idle[-1]} ms (bare ${bidle[-1]}), during the crash loop of $CRASH ${loaded[-1]} ms (bare ${bloaded[-1]}; ${respawns[-1]} respawns in $WINDOW)" >&2
		scale crash 0
		for _ in $(seq 600); do [ "$(running crash)" = "0" ] && break; sleep 0.1; done
		sleep 2
	done
	local im bim lm blm rm
	im=$(med "${idle[@]}") bim=$(med "${bidle[@]}") lm=$(med "${loaded[@]}") blm=$(med "${bloaded[@]}") rm=$(med "${respawns[@]}")
	echo "median p99: idle $im ms (bare $bim), during the crash loop $lm ms (bare $blm; goal <= 5 ms); $rm respawns in $WINDOW" >&2
	printf '{"scenario":"api_load_crash","batch":"%s","version":"%s","n":%s,"conns":%s,"rounds":%s,"window":"%s","p99_idle_ms":%s,"p99_loaded_ms":%s,"bare_p99_idle_ms":%s,"bare_p99_loaded_ms":%s,"respawns":%s,"idle_rounds":"%s","loaded_rounds":"%s","bare_loaded_rounds":"%s","respawn_rounds":"%s"}\n' \
		"$(date -u +%Y%m%dT%H%M%SZ)" "$version" "$CRASH" "$CONNS" "$ROUNDS" "$WINDOW" "$im" "$lm" "$bim" "$blm" "$rm" "${idle[*]}" "${loaded[*]}" "${bloaded[*]}" "${respawns[*]}" >>"$OUT"
}

for l in $LOADS; do
	case $l in
	scale) scale_rounds ;;
	crash) crash_rounds ;;
	*) echo "api_load.sh: unknown load $l (want scale or crash)" >&2; exit 2 ;;
	esac
done
echo "results: $OUT" >&2
