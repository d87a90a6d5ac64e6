#!/usr/bin/env bash
# User and system CPU per request, per thread, of a server already running under load.
#   [CONNS=1000] bench/cpu_split.sh PORT PATH PID [SECONDS]
# Starts wrk (CPU 1, CONNS connections, 128 unless set) against http://127.0.0.1:PORT/PATH,
# reads each thread's utime/stime from /proc/PID/task/*/stat over SECONDS of the load, and
# prints microseconds per request for each thread. Start the server pinned to CPU 0 first
# (taskset -c 0 ...); for a server with worker processes (nginx) pass the worker's PID.
set -euo pipefail
PORT=$1; URLPATH=$2; PID=$3; SECS=${4:-4}; CONNS=${CONNS:-128}
TICK_US=$((1000000 / $(getconf CLK_TCK)))
OUT=$(mktemp)
taskset -c 1 wrk -t1 -c"$CONNS" -d"$((SECS + 3))s" "http://127.0.0.1:$PORT$URLPATH" >"$OUT" &
WRK=$!
snap() { for t in /proc/"$PID"/task/*; do echo "$(basename "$t") $(awk '{print $14, $15}' "$t/stat") $(cat "$t/comm")"; done; }
sleep 1.5; BEFORE=$(snap); sleep "$SECS"; AFTER=$(snap)
wait "$WRK"
RPS=$(awk '/Requests\/sec/{print $2}' "$OUT"); rm -f "$OUT"
REQS=$(awk -v r="$RPS" -v s="$SECS" 'BEGIN{print r * s}')
join <(echo "$BEFORE" | sort) <(echo "$AFTER" | sort) | awk -v n="$REQS" -v t="$TICK_US" '
  { u = ($5 - $2) * t / n; s = ($6 - $3) * t / n; if (u + s > 0)
      printf "%-16s user %5.1f us/req  sys %5.1f us/req\n", $4, u, s }'
echo "req/s $RPS"
