#!/usr/bin/env bash
# Relay of a process's output to HTTP clients (gafferd only: the peers have
# no such feed), against the floor's pipe-to-file rate measured in the same
# run:
#   1. floor, output scenario (MB):  pipe -> file, the reference MB/s
#   2. gafferd, output scenario (MB): pipe -> LogFile (logfile.go)
#   3. gafferd -> one `curl -N` on /streams/1/stdout?feed=continuous (MB)
#   4. gafferd -> SUBS `curl -N` on /streams/1/stdout?feed=eventsource (FANMB)
#      each client must get every line (gaps are counted)
# 3 and 4 use the emitter of the output scenario (benchchild emit, 100-byte
# lines in 64 KiB writes), held back by a shell gate until every client is
# connected (`?since=0`, so a client that subscribes a moment after its
# headers arrive still gets the start from the ring). The clients write to
# files in a private dir under /tmp; gafferd listens on a unix socket there.
#
# "Every line" needs a readers' budget as large as the burst: the emitter
# writes at full speed and gafferd never waits for a reader, so what a
# client slower than the emitter has not read yet is kept for it within
# [gaffer] max_subscriber_memory, and beyond it becomes a gap (eventsource)
# or is skipped (continuous). With the default 32MB, a curl -N that lags a
# 200 MB burst loses lines. BUDGET (default: twice the larger burst plus
# 64 MB) is set in gafferd's config here.
#
#   5. the budget holding (hold): gafferd runs `yes`; HOLD clients subscribe
#      to its output and never read, for HOLD_SECS, over each HOLD_PROTO
#      (eventsource, channel = control channel websocket on STREAM:1),
#      while one client reads the eventsource feed and /ping is asked every
#      100 ms; then they leave. gafferd's RSS before, at the peak, after (and
#      how long it took to come within 10 MB of the start), /ping latency,
#      the reader's MB/s and gaps. The baseline is the same run with 0
#      non-reading clients. max_subscriber_memory is left at its default
#      here (HOLD_BUDGET sets it). Its lines go to HOLD_OUT (results/hold-DATE.jsonl).
#
#   ./stream.sh                      # REPS=3 MB=200 FANMB=10 SUBS=100 HOLD=200
#   REPS=1 MB=50 SUBS=10 ./stream.sh
#   BUDGET=32MB ./stream.sh          # the default budget: gaps expected
#   SCENARIOS=hold REPS=1 ./stream.sh  # only the budget scenario
set -u
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export BENCH_DIR
REPS=${REPS:-3}
MB=${MB:-200}
FANMB=${FANMB:-10}
SUBS=${SUBS:-100}
BUDGET=${BUDGET:-$(((MB > FANMB ? MB : FANMB) * 2 + 64))MB}
HOLD=${HOLD:-200}
HOLD_SECS=${HOLD_SECS:-5}
HOLD_PROTO=${HOLD_PROTO:-eventsource channel}
HOLD_BUDGET=${HOLD_BUDGET:-}
SCENARIOS=${SCENARIOS:-relay hold}
OUT=${OUT:-$BENCH_DIR/results/stream-$(date -u +%F).jsonl}
HOLD_OUT=${HOLD_OUT:-$BENCH_DIR/results/hold-$(date -u +%F).jsonl} # not in report.sh's table
mkdir -p "$BENCH_DIR/results/logs" "$BENCH_DIR/bin"
(cd "$BENCH_DIR/tool" && go build -o ../bin/benchtool ./cmd/benchtool && go build -o ../bin/benchchild ./cmd/benchchild) || exit 1
if [ -z "${GAFFERD:-}" ]; then
	(cd "$BENCH_DIR/.." && CGO_ENABLED=0 go build -o bin/ ./cmd/gafferd) || exit 1
	GAFFERD=$BENCH_DIR/../bin/gafferd
fi
export GAFFERD
T=$BENCH_DIR/bin/benchtool
C=$BENCH_DIR/bin/benchchild
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
batch=$(date -u +%Y%m%dT%H%M%SZ)
echo "batch $batch -> $OUT (relay: max_subscriber_memory = $BUDGET)" >&2

W=""
GPID=""
CURLS=()
cleanup() {
	local p
	for p in "${CURLS[@]}"; do kill "$p" 2>/dev/null; done
	if [ -n "$GPID" ]; then
		kill -TERM "$GPID" 2>/dev/null
		for _ in $(seq 150); do kill -0 "$GPID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$GPID" 2>/dev/null
	fi
	wait 2>/dev/null
	[ -n "$W" ] && rm -rf "$W"
	W="" GPID="" CURLS=()
}
trap cleanup EXIT

# relay FEED CLIENTS MEGABYTES REP: one measurement, one JSON line
relay() {
	local feed=$1 n=$2 mb=$3 rep=$4 lines i sse=""
	lines=$((mb * 10000))
	W=$(mktemp -d /tmp/bench-stream.XXXXXX)
	cat >"$W/gaffer.ini" <<INI
[gaffer]
http_endpoints = sock
log_level = warning
max_subscriber_memory = $BUDGET

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
	[ "$feed" = eventsource ] && sse=-sse
	for ((i = 1; i <= n; i++)); do
		curl -sN --unix-socket "$W/gafferd.sock" -D "$W/h$i" -o "$W/c$i" \
			"http://localhost/streams/1/stdout?feed=$feed&since=0&heartbeat=0" &
		CURLS+=($!)
	done
	# every client has its response headers: it is subscribed (or about to
	# be, and since=0 covers the moment in between from the ring)
	for _ in $(seq 1000); do
		local got=0
		for ((i = 1; i <= n; i++)); do [ -s "$W/h$i" ] && got=$((got + 1)); done
		[ "$got" -eq "$n" ] && break
		sleep 0.01
	done
	touch "$W/go"
	local files=()
	for ((i = 1; i <= n; i++)); do files+=("$W/c$i"); done
	"$T" relay -label "$feed x$n" -lines "$lines" -size 100 -stamp "$W/emit.stamp" -pid "$GPID" $sse "${files[@]}" |
		jq -c --arg b "$batch" --argjson r "$rep" --arg v "$("$GAFFERD" -version)" --arg bu "$BUDGET" '. + {batch: $b, rep: $r, system: "gaffer", version: $v, max_subscriber_memory: $bu}' >>"$OUT"
	tail -1 "$OUT" | jq -c '[.label, .mb_s, .capture_s, .sup_cpu_s, .clients_complete, .lines_lost_max, .gaps, .ok]' >&2
	cleanup
}

# hold PROTO CLIENTS REP: the budget scenario, one JSON line
hold() {
	local proto=$1 n=$2 rep=$3
	W=$(mktemp -d /tmp/bench-stream.XXXXXX)
	cat >"$W/gaffer.ini" <<INI
[gaffer]
http_endpoints = sock
log_level = warning
${HOLD_BUDGET:+max_subscriber_memory = $HOLD_BUDGET}

[endpoint:sock]
bind = unix:$W/gafferd.sock

[process:y]
cmd = yes
redirect_output = stdout, stdout
graceful_timeout = 5
INI
	"$GAFFERD" -c "$W/gaffer.ini" </dev/null >"$W/gafferd.console" 2>&1 &
	GPID=$!
	for _ in $(seq 500); do [ -S "$W/gafferd.sock" ] && break; sleep 0.01; done
	"$T" hold -label "hold $proto x$n" -sock "$W/gafferd.sock" -pid "$GPID" -stream 1 -clients "$n" -proto "$proto" -secs "${HOLD_SECS}s" |
		jq -c --arg b "$batch" --argjson r "$rep" --arg v "$("$GAFFERD" -version)" --arg bu "${HOLD_BUDGET:-default}" '. + {batch: $b, rep: $r, system: "gaffer", version: $v, max_subscriber_memory: $bu}' >>"$HOLD_OUT"
	tail -1 "$HOLD_OUT" | jq -c '[.label, .rss_base_mb, .rss_peak_mb, .rss_after_mb, .recovered_s, .ping_ms_median, .ping_ms_max, .reader_mb_s, .reader_gaps, .ok]' >&2
	cleanup
}

for rep in $(seq 1 "$REPS"); do
	case " $SCENARIOS " in *" hold "*)
		for p in $HOLD_PROTO; do
			for n in 0 "$HOLD"; do
				echo "$(date -u +%T) rep $rep hold $p x$n (${HOLD_SECS}s)" >&2
				hold "$p" "$n" "$rep"
			done
		done ;;
	esac
	case " $SCENARIOS " in *" relay "*) ;; *) continue ;; esac
	for s in floor gaffer; do
		echo "$(date -u +%T) rep $rep output:$MB $s" >&2
		"$T" run -system "$s" -scenario output -param "$MB" -rep "$rep" -batch "$batch" | jq -c '. + {scenario: "relay", label: "file"}' >>"$OUT"
		tail -1 "$OUT" | jq -c '[.system, .label, .mb_s, .capture_s, .sup_cpu_s, .lines_lost, .ok]' >&2
	done
	echo "$(date -u +%T) rep $rep continuous x1 ${MB}MB" >&2
	relay continuous 1 "$MB" "$rep"
	echo "$(date -u +%T) rep $rep eventsource x$SUBS ${FANMB}MB" >&2
	relay eventsource "$SUBS" "$FANMB" "$rep"
done
echo "results: $OUT $HOLD_OUT" >&2
