#!/usr/bin/env bash
# Instruction counts per request for a build of sandman_asgi._core, under callgrind:
# deterministic, unlike wall-clock figures on a shared machine. Usage:
#   bench/callgrind_ab.sh BUILD.so [APP] [CONNS] [SECONDS]
# Prints instructions per request (whole process, all threads, after warm-up).
# The build runs with the sandman_asgi of the `python` first on PATH, so a build whose
# Python package differs (one from before a change to it) needs its own venv first:
#   PATH=OTHER_VENV/bin:$PATH bench/callgrind_ab.sh OTHER_BUILD.so
# With CACHE=1 callgrind also simulates the caches of one core of the bench machine
# (32 KiB L1i and L1d, 1 MiB L2 as the last level) and prints misses per request: a stable
# before/after figure for the cost that grows with the number of connections
# (docs/performance.md, "Many connections").
# With ACCESS_LOG=1 the server writes its access log (to a file) instead of running with
# --no-access-log. EXTRA="..." adds server options (EXTRA="--http h11": HTTP/1.1 only).
set -euo pipefail
SO=$1; APP=${2:-apps:hello}; CONNS=${3:-32}; SECS=${4:-20}
HERE=$(cd "$(dirname "$0")" && pwd)
TARGET=$(python -c "import sandman_asgi._core as c; print(c.__file__)")
# Swap with mv (atomic rename): copying over the mapped file would crash running servers.
cp "$TARGET" "$TARGET.cg-backup"; cp "$SO" "$TARGET.cg-new"; mv -f "$TARGET.cg-new" "$TARGET"
trap 'mv -f "$TARGET.cg-backup" "$TARGET"' EXIT
PORT=$(python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
OUT=$(mktemp -d)
cd "$HERE"
LOG_ARGS=(--log-level warning --no-access-log)
if [ -n "${ACCESS_LOG:-}" ]; then LOG_ARGS=(--log-level info); fi
# EXTRA="--http h11" (say) passes more options to the server.
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
CACHE_ARGS=()
if [ -n "${CACHE:-}" ]; then CACHE_ARGS=(--cache-sim=yes --I1=32768,8,64 --D1=32768,8,64 --LL=1048576,16,64); fi
setsid valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.%p" --instr-atstart=no "${CACHE_ARGS[@]}" \
  python -m sandman_asgi "$APP" --port "$PORT" "${LOG_ARGS[@]}" "${EXTRA_ARGS[@]}" >"$OUT/log" 2>&1 &
VPID=$!
for _ in $(seq 1 600); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.2; done
wrk -t1 -c"$CONNS" -d3s "http://127.0.0.1:$PORT/" >/dev/null   # warm-up
callgrind_control -i on "$VPID" >/dev/null 2>&1
RES=$(wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$PORT/")
callgrind_control -i off "$VPID" >/dev/null 2>&1
callgrind_control -d "$VPID" >/dev/null 2>&1; sleep 1
REQS=$(echo "$RES" | awk '/requests in/{print $1}')
kill -INT "$VPID"; wait "$VPID" 2>/dev/null || true
# The totals line lists the events in the order of the "Events shown:" line, each followed
# by its share in parentheses; one "EVENT COUNT" line per event.
TOTALS=$(callgrind_annotate "$OUT"/cg.*.1 2>/dev/null | awk '
  /^Events shown:/ { for (i = 3; i <= NF; i++) ev[i - 2] = $i }
  /PROGRAM TOTALS/ && !d { d = 1; gsub(/\([^)]*\)/, ""); gsub(",", ""); for (i = 1; i in ev; i++) print ev[i], $i }')
IR=$(echo "$TOTALS" | awk '$1 == "Ir" { print $2 }')
echo "requests=$REQS instructions=$IR per_request=$((IR / REQS))"
if [ -n "${CACHE:-}" ]; then
  echo "$TOTALS" | awk -v n="$REQS" '{ t[$1] = $2 } END {
    printf "per request: L1d misses %.1f (read %.1f, write %.1f), L2 misses %.1f (read %.1f, write %.1f)\n",
      (t["D1mr"] + t["D1mw"]) / n, t["D1mr"] / n, t["D1mw"] / n,
      (t["DLmr"] + t["DLmw"]) / n, t["DLmr"] / n, t["DLmw"] / n
    printf "per request: L1i misses %.1f, L2 instruction misses %.1f\n", t["I1mr"] / n, t["ILmr"] / n }'
  # The share of Sandman's own module (the rest is libpython, libc, uvloop).
  callgrind_annotate --show=Ir,I1mr --threshold=100 --inclusive=no "$OUT"/cg.*.1 2>/dev/null | awk -v n="$REQS" '
    /\/_core\.[^\/]*\.so\]$/ { gsub(/\([^)]*\)/, ""); gsub(",", ""); ir += $1; if ($2 != ".") i1 += $2 }
    END { printf "per request in sandman_asgi._core: instructions %.0f, L1i misses %.1f\n", ir / n, i1 / n }'
fi
if [ -n "${KEEP:-}" ]; then cp "$OUT"/cg.*.1 "$KEEP"; fi
rm -rf "$OUT"
