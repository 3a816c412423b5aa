#!/usr/bin/env bash
# Instructions the proxy executes per request, counted by valgrind's callgrind: unlike req/s
# on a shared virtual machine (+-30% run to run), the count repeats to within 0.5%, so it
# shows what a change to the hot path is worth. The proxy runs under callgrind with the
# benchmark's Node.js child; ab sends 300 warm-up requests, then REQUESTS more at 64
# connections with counting switched on for those alone.
#
#   bench/instructions.sh [MODE] [REQUESTS] [PROXY FLAGS...]
#   bench/instructions.sh pipe-keepalive 2000 --event-loop asyncio
#
# MODE: pipe, pipe-keepalive (default), http or passthrough. BENCH_ACCESS_LOG=1: with the
# access log (and the dashboard's log of it), written to a file. Installs valgrind and ab
# (apache2-utils) from Debian packages when missing. User-space only: bench/costs.sh gives the kernel's side.
# BENCH_DASHBOARD=1: with a dashboard page open (curl reading /_/events) all along.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
bench_args 2000 "$@"
# --quiet, as nginx runs here (access_log off); BENCH_ACCESS_LOG=1 counts the access log too.
quiet=--quiet
[ "${BENCH_ACCESS_LOG:-}" = 1 ] && quiet=""
bench_setup valgrind:valgrind
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/out" \
  "$python" -m local_lambdas "$manifest" --bind "127.0.0.1:$port" $quiet "${flags[@]}" \
  >"$work/proxy.log" 2>&1 &
proxy=$!
bench_ready
if [ "${BENCH_DASHBOARD:-}" = 1 ]; then  # a dashboard page open, reading every event
  curl -sN "http://127.0.0.1:$port/_/events" >"$work/events" &
  page=$!
  for _ in $(seq 100); do  # its first events sent: the page is open (10 s at most)
    grep -q "^event: requests" "$work/events" 2>/dev/null && break
    sleep 0.1
  done
  grep -q "^event: requests" "$work/events" || { echo "no dashboard page opened" >&2; exit 1; }
fi
callgrind_control -i on $proxy >/dev/null 2>&1
failed=$(bench_load "$requests")
callgrind_control -i off $proxy >/dev/null 2>&1
callgrind_control -d $proxy >/dev/null 2>&1
total=$(awk '/^totals:/ {print $2}' "$work/out".*)
echo "mode=$mode requests=$requests failed=$failed flags='${flags[*]}' instructions_per_request=$((total / requests))"
if [ -n "${page:-}" ]; then
  for _ in $(seq 20); do  # the last events, gathered for 50 ms, reach the page (2 s at most)
    [ "$(grep -c '^event: request$' "$work/events")" -ge "$requests" ] && break
    sleep 0.1
  done
  kill "$page"
  echo "dashboard page: $(grep -c '^event: request$' "$work/events") request events"
fi
