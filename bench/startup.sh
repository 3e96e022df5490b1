#!/usr/bin/env bash
# gafferd's start with many jobs in state.json (issue 19): time from exec
# to the first answer of GET /ping, to GET /jobs listing every job, and
# (mode running) to every job's process running; then the latency of
# GET /jobs?details=1. Goals: /ping within 1 s of exec (excluding the
# children's own start: mode stopped isolates gafferd's own work), GET
# /jobs?details=1 under 50 ms. See tool/cmd/benchtool/startup.go.
#
#   ./startup.sh                          # JOBS=1000 REPS=3, modes stopped and running
#   GAFFERD=/path/to/other/gafferd ./startup.sh   # e.g. an older build
#   MODES=stopped REPS=5 ./startup.sh
#
# Results: one JSON line per rep in results/startup-DATE.jsonl.
set -u
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
JOBS=${JOBS:-1000}
REPS=${REPS:-3}
MODES=${MODES:-stopped running}
REQUESTS=${REQUESTS:-200}
SAMPLE=${SAMPLE:-100ms}
OUT=${OUT:-$BENCH_DIR/results/startup-$(date -u +%F).jsonl}
mkdir -p "$BENCH_DIR/results"
(cd "$BENCH_DIR/tool" && go build -o ../bin/benchtool ./cmd/benchtool) || exit 1
if [ -z "${GAFFERD:-}" ]; then
	(cd "$BENCH_DIR/.." && CGO_ENABLED=0 go build -o bin/ ./cmd/gafferd) || exit 1
	GAFFERD=$BENCH_DIR/../bin/gafferd
fi
ulimit -n 65536 2>/dev/null
rc=0
for mode in $MODES; do
	timeout 1800 "$BENCH_DIR/bin/benchtool" startup -gafferd "$GAFFERD" -jobs "$JOBS" -mode "$mode" \
		-reps "$REPS" -requests "$REQUESTS" -sample "$SAMPLE" -out "$OUT" || rc=1
done
echo "results: $OUT" >&2
exit $rc
