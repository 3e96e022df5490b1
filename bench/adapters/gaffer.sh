# gaffer (this repository): gafferd in the foreground with a private config
# in $WORK (`gafferd -c $WORK/gaffer.ini`; its data dir, state.json included,
# is $WORK too). Build it first at the repository root:
#   go build -o bin/ ./cmd/...        (bench.sh and quick.sh do it)
# or point GAFFERD at another binary.
#
# One job `w` in session `default` with numprocesses = N. The API listens
# only on a unix socket in $WORK (mode 0600; no TCP port, so parallel runs
# cannot collide); adapter_status reads GET /jobs/default/w through it.
#
# Restart knobs: flapping (attempts, window, retry_in, max_retry); without it
# an exited process is replaced at once, with no delay or backoff.
#   fast:    no flapping key (protection off, gafferd's shipped default)
#   default: flapping = true, i.e. 2, 1., 7., 5 (2 unexpected exits within
#            1 s -> stop, retry after 7 s, give up after 5 cycles). gafferd
#            ships with flapping off; `true` turns on the reference defaults,
#            which is what the storm:default scenario is meant to show.
# graceful_timeout = 10 (same grace as the other adapters). max_processes
# (default 1,024) is raised to N when N is larger.
# Output: spawn/stop/restart/storm: no redirect_output (children write to
# /dev/null, as with the floor); output scenario: `logfile = $WORK/out.log`
# (stdout and stderr merged into one pipe, like the floor; the LogFile sink
# of logfile.go, no rotation: logfile_maxbytes defaults to 0).
# Stop: SIGTERM -> gafferd stops every job (SIGTERM to each process group,
# all at once) and exits when they are gone.

GAFFERD=${GAFFERD:-$BENCH_DIR/../bin/gafferd}

adapter_version() {
	echo "$("$GAFFERD" -version 2>&1 | head -1) ($(go version "$GAFFERD" 2>/dev/null | awk '{print $2}'))"
}

adapter_setup() {
	if [ ! -x "$GAFFERD" ]; then
		echo "gaffer adapter: $GAFFERD not found; run 'go build -o bin/ ./cmd/...' at the repository root" >&2
		return 1
	fi
	local extra=""
	[ "$PROFILE" = default ] && extra="flapping = true"
	[ "$SCENARIO" = output ] && extra="$extra
logfile = $WORK/out.log"
	cat >"$WORK/gaffer.ini" <<INI
[gaffer]
http_endpoints = sock
log_level = warning
max_processes = $((N > 1024 ? N : 1024))

[endpoint:sock]
bind = unix:$WORK/gafferd.sock
socket_mode = 0600

[process:w]
cmd = $(child_cmd)
args = $(child_args)
numprocesses = $N
graceful_timeout = 10
$extra
INI
}

adapter_start() { bg_launch "$WORK/gafferd.console" "$GAFFERD" -c "$WORK/gaffer.ini"; }

adapter_outfiles() { echo "$WORK/out.log"; }

# graceful shutdown: SIGTERM makes gafferd stop every job, then exit
adapter_stop() { signal_bg TERM; }

# job state, restarts and flaps, from the API
adapter_status() {
	curl -s --max-time 5 --unix-socket "$WORK/gafferd.sock" http://localhost/jobs/default/w |
		jq -r '"\(.state) running=\(.running) restarts=\(.restarts) flaps=\(.flaps)"' 2>/dev/null || echo "?"
}

adapter_teardown() { signal_bg TERM; for p in $(bg_pids); do wait_gone "$p" 15; done; }
