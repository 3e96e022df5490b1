#!/usr/bin/env bash
# Many eventsource clients of one output stream (issue 19): SUBS clients
# (default 1,000) of /streams/1/stdout?feed=eventsource while one process
# writes FANMB (default 10) MB of 100-byte lines; every client must get
# every line or an explicit gap marker (never a silent loss), gafferd's RSS
# must stay under 150 MB, and a slow client must not slow the process.
# Each rep runs three cases, one gafferd each:
#   alone  the emitter with no client (its own write time: the reference)
#   fast   SUBS clients reading as fast as they can
#   slow   the same plus SLOW clients (default 10) reading SLOW_RATE bytes/s
#          (not expected to finish: cut off once the others are done) and
#          STALL clients (default 10) that read 1 MB, stop reading for 12 s
#          (gafferd then keeps nothing for them), and read on to the end
# The clients run in one process (benchtool fanout), which checks each
# stream as it arrives. The emitter (benchchild emit) waits until every
# client is connected (since=0 covers the moment between a client's
# headers and its subscription). gafferd listens on a unix socket in a
# private dir under /tmp.
#
#   ./fanout.sh                      # REPS=3 FANMB=10 SUBS=1000 SLOW=10 SLOW_RATE=102400 STALL=10
#   REPS=1 SUBS=100 ./fanout.sh
#   CASES=slow REPS=1 ./fanout.sh    # only some of the cases
set -u
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPS=${REPS:-3}
FANMB=${FANMB:-10}
SUBS=${SUBS:-1000}
SLOW=${SLOW:-10}
SLOW_RATE=${SLOW_RATE:-102400}
STALL=${STALL:-10}
CASES=${CASES:-alone fast slow}
OUT=${OUT:-$BENCH_DIR/results/fanout-$(date -u +%F).jsonl}
mkdir -p "$BENCH_DIR/results" "$BENCH_DIR/bin"
(cd "$BENCH_DIR/tool" && go build -o ../bin/benchtool ./cmd/benchtool && go build -o ../bin/benchchild ./cmd/benchchild) || exit 1
if [ -z "${GAFFERD:-}" ]; then
	(cd "$BENCH_DIR/.." && CGO_ENABLED=0 go build -o bin/ ./cmd/gafferd) || exit 1
	GAFFERD=$BENCH_DIR/../bin/gafferd
fi
T=$BENCH_DIR/bin/benchtool
C=$BENCH_DIR/bin/benchchild
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
batch=$(date -u +%Y%m%dT%H%M%SZ)
version=$("$GAFFERD" -version 2>&1 | head -1)
echo "batch $batch -> $OUT" >&2

W=""
GPID=""
cleanup() {
	if [ -n "$GPID" ]; then
		kill -TERM "$GPID" 2>/dev/null
		for _ in $(seq 150); do kill -0 "$GPID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$GPID" 2>/dev/null
	fi
	wait 2>/dev/null
	[ -n "$W" ] && rm -rf "$W"
	W="" GPID=""
}
trap cleanup EXIT

# one CASE CLIENTS SLOWCLIENTS STALLINGCLIENTS REP
one() {
	local case=$1 n=$2 k=$3 j=$4 rep=$5 lines
	lines=$((FANMB * 10000))
	W=$(mktemp -d /tmp/bench-fanout.XXXXXX)
	cat >"$W/gaffer.ini" <<INI
[gaffer]
http_endpoints = sock
log_level = warning

[endpoint:sock]
bind = unix:$W/gafferd.sock

[process:e]
cmd = while [ ! -e $W/go ]; do sleep 0.005; done; exec $C emit $lines 100 $W/emit.stamp
shell = true
redirect_output = stdout, stdout
graceful_timeout = 5
INI
	"$GAFFERD" -c "$W/gaffer.ini" </dev/null >"$W/gafferd.console" 2>&1 &
	GPID=$!
	for _ in $(seq 500); do [ -S "$W/gafferd.sock" ] && break; sleep 0.01; done
	if [ "$case" = alone ]; then
		local t0 s e cpu0 cpu1
		cpu0=$(awk '{print $14+$15}' /proc/$GPID/stat)
		touch "$W/go"
		for _ in $(seq 3000); do grep -q '^E ' "$W/emit.stamp" 2>/dev/null && break; sleep 0.01; done
		sleep 0.5 # the relay of the last chunks
		cpu1=$(awk '{print $14+$15}' /proc/$GPID/stat)
		s=$(awk '$1 == "S" {print $2}' "$W/emit.stamp")
		e=$(awk '$1 == "E" {print $2}' "$W/emit.stamp")
		jq -nc --arg b "$batch" --argjson r "$rep" --arg v "$version" --argjson s "$s" --argjson e "$e" \
			--argjson cpu "$(((cpu1 - cpu0)))" --argjson hwm "$(awk '$1 == "VmHWM:" {print $2}' /proc/$GPID/status)" --argjson lines "$lines" \
			'{scenario: "fanout", label: "alone", clients: 0, slow: 0, lines: $lines, ok: true, producer_s: ((($e - $s) / 1e6 | floor) / 1000), sup_cpu_s: ($cpu / 100), hwm_mb: (($hwm / 102.4 | floor) / 10), batch: $b, rep: $r, system: "gaffer", version: $v}' >>"$OUT"
	else
		"$T" fanout -sock "$W/gafferd.sock" -clients "$n" -slow "$k" -slow-rate "$SLOW_RATE" -stall "$j" -lines "$lines" -size 100 \
			-stamp "$W/emit.stamp" -go "$W/go" -pid "$GPID" -label "$case" |
			jq -c --arg b "$batch" --argjson r "$rep" --arg v "$version" '. + {batch: $b, rep: $r, system: "gaffer", version: $v}' >>"$OUT"
	fi
	tail -1 "$OUT" | jq -c '[.label, .clients, .slow, .producer_s, .fast_done_s_median, .fast_mb_s_median, .clients_complete, .clients_with_gaps, .lines_silent, .slow_lines, .stall_done, .stall_gaps, .rss_max_mb, .hwm_mb, .sup_cpu_s, .ok]' >&2
	cleanup
}

for rep in $(seq 1 "$REPS"); do
	echo "$(date -u +%T) rep $rep" >&2
	case " $CASES " in *" alone "*) one alone 0 0 0 "$rep" ;; esac
	case " $CASES " in *" fast "*) one fast "$SUBS" 0 0 "$rep" ;; esac
	case " $CASES " in *" slow "*) one slow "$SUBS" "$SLOW" "$STALL" "$rep" ;; esac
done
echo "results: $OUT" >&2
