#!/usr/bin/env bash
# Regenerate the results section of bench/README.md (between the
# "results:begin" and "results:end" markers) from the newest results files:
#   results/bench-*.jsonl   (bench.sh: floor, gafferd and the installed peers)
#   results/stream-*.jsonl  (stream.sh: relay to HTTP clients)
#   results/http-*.jsonl    (http.sh: wrk against gafferd and bare net/http)
#   results/peers-2026-11-27.jsonl (baseline for peers not installable here)
# The table also goes to results/report.md.
#
#   ./report.sh                 # after bench.sh, stream.sh and http.sh
#   ./report.sh --all           # run the three first (about 45 minutes), then report
set -u
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$BENCH_DIR" || exit 1
if [ "${1:-}" = --all ]; then
	./bench.sh && ./stream.sh && ./http.sh || exit 1
fi
(cd tool && go build -o ../bin/benchtool ./cmd/benchtool) || exit 1
newest() { ls -t results/$1-*.jsonl 2>/dev/null | head -1; }
bench=$(newest bench) stream=$(newest stream) http=$(newest http)
[ -n "$bench" ] || { echo "report.sh: no results/bench-*.jsonl; run ./bench.sh first" >&2; exit 1; }
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")
{
	echo "Generated $(date -u '+%F %H:%M UTC') by \`bench/report.sh\` on $(nproc) × $cpu, $mem RAM, $os, Linux $(uname -r) (a shared VM: other work ran at the same time, so read the ratios, not the absolute figures)."
	echo
	echo "Commands (in \`bench/\`; peers installed with \`./install-peers.sh\`):"
	echo
	echo '    go build -o ../bin/ ../cmd/...   # done by the scripts below'
	echo '    ./bench.sh       # floor, gafferd, installed peers: 7 scenarios x 3 reps -> '"$bench"
	[ -n "$stream" ] && echo '    ./stream.sh      # relay to curl -N / 100 eventsource clients, 3 reps -> '"$stream"
	[ -n "$http" ] && echo '    ./http.sh        # wrk, gafferd vs bare net/http -> '"$http"
	echo '    ./report.sh      # this table'
	echo
	bin/benchtool report -peers results/peers-2026-11-27.jsonl -stream "$stream" -http "$http" "$bench"
} >results/report.md || exit 1
# Both READMEs carry the table: bench/README.md and the repository's.
for readme in README.md ../README.md; do
awk -v f=results/report.md '
	/<!-- results:begin -->/ {print; while ((getline l < f) > 0) print l; skip=1; next}
	/<!-- results:end -->/ {skip=0}
	!skip {print}' "$readme" >"$readme.new" && mv "$readme.new" "$readme"
done
echo "README.md and ../README.md updated from $bench ${stream:-} ${http:-}" >&2
