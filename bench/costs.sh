#!/usr/bin/env bash
# What one request costs the proxy and the child in CPU time (user + system, from
# /proc/PID/stat) and in system calls (counted by strace -c), with the benchmark's Node.js
# child at 64 connections driven by ab. CPU time moves with the machine (by up to half
# here); the system-call counts repeat. Together with bench/instructions.sh (user space,
# exact) they say where a row's time goes.
#
#   bench/costs.sh [MODE] [REQUESTS] [PROXY FLAGS...]     MODE as for instructions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
bench_args 20000 "$@"
bench_setup strace:strace
"$python" -m local_lambdas "$manifest" --bind "127.0.0.1:$port" --quiet "${flags[@]}" >"$work/proxy.log" 2>&1 &
proxy=$!
bench_ready
child=$(pgrep -P $proxy node)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
p0=$(ticks $proxy) c0=$(ticks $child)
failed=$(bench_load "$requests")
p1=$(ticks $proxy) c1=$(ticks $child)
us_per_tick=$((1000000 / $(getconf CLK_TCK)))
echo "mode=$mode requests=$requests failed=$failed flags='${flags[*]}'"
echo "cpu_us_per_request proxy=$(( (p1 - p0) * us_per_tick / requests )) child=$(( (c1 - c0) * us_per_tick / requests ))"
# System calls, over a second batch (strace slows the traced process down).
for who in proxy child; do
  strace -c -o "$work/$who.strace" -p "${!who}" 2>"$work/$who.err" & tracer=$!
  for _ in $(seq 100); do grep -q attached "$work/$who.err" && break; sleep 0.05; done
  bench_load "$requests" >/dev/null
  kill -INT $tracer; wait $tracer 2>/dev/null || true
  # strace -c: % time, seconds, usecs/call, calls, [errors,] syscall
  calls=$(awk -v n="$requests" '$1 ~ /^[0-9.]+$/ && $NF != "total" && $4 / n >= 0.05 {
      printf "%.2f %s\n", $4 / n, $NF }' "$work/$who.strace" | sort -rn |
    awk '{ printf "%s%s %s", sep, $2, $1; sep = ", " }')
  echo "syscalls_per_request $who: $calls"
done
