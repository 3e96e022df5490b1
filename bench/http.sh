#!/usr/bin/env bash
# HTTP goal: requests per second of gafferd's `GET /jobs/default/w` against a
# bare net/http handler serving the same bytes (tool/cmd/barehttp), with wrk
# (Debian package `wrk`), in one run, both on 127.0.0.1. The two servers are
# measured alternately, ROUNDS times each; the ratio is median/median.
#
#   ./http.sh                          # DUR=10s CONNS=32 THREADS=1 ROUNDS=3
#   DUR=5s ROUNDS=1 ./http.sh
#
# gafferd runs a private config (one job `w`, one /bin/sleep child) bound to a
# free loopback port. On a 2-core machine wrk shares the cores with the
# server under test; it does so equally for both.
set -u
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DUR=${DUR:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-$BENCH_DIR/results/http-$(date -u +%F).jsonl}
command -v wrk >/dev/null || { echo "http.sh: wrk not found (apt-get install wrk)" >&2; exit 1; }
mkdir -p "$BENCH_DIR/results" "$BENCH_DIR/bin"
(cd "$BENCH_DIR/tool" && go build -o ../bin/barehttp ./cmd/barehttp) || exit 1
if [ -z "${GAFFERD:-}" ]; then
	(cd "$BENCH_DIR/.." && CGO_ENABLED=0 go build -o bin/ ./cmd/gafferd) || exit 1
	GAFFERD=$BENCH_DIR/../bin/gafferd
fi

W=$(mktemp -d /tmp/bench-http.XXXXXX)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

# barehttp binds 127.0.0.1:0 and reports its port; gafferd needs a port in
# its config: take one the kernel hands out and release it (a collision would
# make gafferd fail to start, which is reported).
"$BENCH_DIR/bin/barehttp" -addr 127.0.0.1:0 -portfile "$W/probe.port" 2>/dev/null &
probe=$!
for _ in $(seq 200); do [ -s "$W/probe.port" ] && break; sleep 0.01; done
port=$(sed 's/.*://' "$W/probe.port")
kill "$probe"
wait "$probe" 2>/dev/null

cat >"$W/gaffer.ini" <<INI
[gaffer]
bind = 127.0.0.1:$port
log_level = warning

[process:w]
cmd = /bin/sleep 86401
numprocesses = 1
graceful_timeout = 5
INI
"$GAFFERD" -c "$W/gaffer.ini" </dev/null >"$W/gafferd.log" 2>&1 &
PIDS+=($!)
G=http://127.0.0.1:$port/jobs/default/w
for _ in $(seq 500); do curl -sf "$G" -o "$W/body.json" && break; sleep 0.01; done
[ -s "$W/body.json" ] || { echo "http.sh: gafferd did not answer on $G" >&2; cat "$W/gafferd.log" >&2; exit 1; }

"$BENCH_DIR/bin/barehttp" -addr 127.0.0.1:0 -body "$W/body.json" -portfile "$W/bare.port" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 200); do [ -s "$W/bare.port" ] && break; sleep 0.01; done
B=http://$(cat "$W/bare.port")/jobs/default/w
curl -sf "$B" -o "$W/bare.json" && cmp -s "$W/body.json" "$W/bare.json" || { echo "http.sh: barehttp does not serve the same body" >&2; exit 1; }

rps() { wrk -t"$THREADS" -c"$CONNS" -d"$DUR" "$1" 2>&1 | tee -a "$W/wrk.log" | awk '/^Requests\/sec:/ {print $2}'; }
g=() b=()
for r in $(seq 1 "$ROUNDS"); do
	g+=("$(rps "$G")")
	b+=("$(rps "$B")")
	echo "round $r: gafferd ${g[-1]} req/s, bare net/http ${b[-1]} req/s" >&2
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
gm=$(med "${g[@]}")
bm=$(med "${b[@]}")
ratio=$(awk -v g="$gm" -v b="$bm" 'BEGIN {printf "%.3f", g/b}')
echo "gafferd $gm req/s, bare $bm req/s, ratio $ratio (goal >= 0.7)" >&2
jq -nc --arg batch "$(date -u +%Y%m%dT%H%M%SZ)" --arg v "$("$GAFFERD" -version)" \
	--arg wrk "wrk -t$THREADS -c$CONNS -d$DUR, $ROUNDS rounds alternating, body $(wc -c <"$W/body.json") bytes" \
	--argjson g "$gm" --argjson b "$bm" --argjson ratio "$ratio" --argjson rounds "$ROUNDS" \
	--arg gs "${g[*]}" --arg bs "${b[*]}" \
	'{scenario: "http", batch: $batch, version: $v, wrk: $wrk, rounds: $rounds, gaffer_rps: $g, bare_rps: $b, ratio: $ratio, gaffer_rounds: $gs, bare_rounds: $bs}' >>"$OUT"
echo "results: $OUT" >&2
