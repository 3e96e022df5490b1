#!/usr/bin/env bash
# Quick mode for development: floor and gafferd only, one repetition, short
# idle window, smaller output; then the results table on stdout. ~3 minutes.
#
#   ./quick.sh                    # builds ../bin/gafferd from the working tree
#   GAFFERD=/path/to/gafferd SCENARIOS="restart storm:fast" ./quick.sh
#   STREAM=1 ./quick.sh           # also stream.sh with small sizes
set -u
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
d=$(date -u +%F)
export SYSTEMS="floor gaffer" REPS=${REPS:-1} IDLE=${IDLE:-5s}
export SCENARIOS=${SCENARIOS:-"spawn:100 spawn:1000 restart output:200 stop:100 storm:fast storm:default"}
export OUT=$BENCH_DIR/results/logs/quick-$d.jsonl SUMMARY=$BENCH_DIR/results/logs/quick-summary.md
"$BENCH_DIR/bench.sh" || exit 1
stream=""
if [ -n "${STREAM:-}" ]; then
	OUT=$BENCH_DIR/results/logs/quick-stream-$d.jsonl REPS=1 MB=50 FANMB=2 SUBS=${SUBS:-20} \
		GAFFERD=${GAFFERD:-$BENCH_DIR/../bin/gafferd} "$BENCH_DIR/stream.sh" || exit 1
	stream=$BENCH_DIR/results/logs/quick-stream-$d.jsonl
fi
"$BENCH_DIR/bin/benchtool" report -peers "$BENCH_DIR/results/peers-2026-11-27.jsonl" -stream "$stream" "$OUT"
