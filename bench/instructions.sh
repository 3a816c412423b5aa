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
# MODE: pipe, pipe-keepalive (default), http or passthrough. Installs valgrind and ab (apache2-utils)
# from Debian packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-pipe-keepalive}
requests=${2:-2000}
shift $(( $# > 2 ? 2 : $# ))
for tool in valgrind:valgrind ab:apache2-utils node:nodejs; do
  command -v "${tool%%:*}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${tool#*:}"; }
done
plain=""  # pass-through: the child is a plain HTTP server, as in bench/run.py
[ "$mode" = passthrough ] && plain='<env name="BENCH_PLAIN">1</env>'
work=$(mktemp -d /tmp/ll-instr-XXXXXX)
trap 'kill $proxy 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
cat > "$work/manifest.xml" <<EOF
<manifest><process>
  <id>bench</id><executable>node</executable><arg>$PWD/bench/bench_child.js</arg>
  <route>/*</route><communication_mode>$mode</communication_mode>
  <env name="BODY_SIZE">100</env><concurrency>64</concurrency>$plain
</process></manifest>
EOF
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The real interpreter, not a pyenv shim: valgrind follows no exec.
python=$(python3 -c 'import sys; print(sys.executable)')
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/out" \
  "$python" -m local_lambdas "$work/manifest.xml" --bind "127.0.0.1:$port" --quiet "$@" \
  >"$work/proxy.log" 2>&1 &
proxy=$!
for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
ab -q -k -n 300 -c 64 "http://127.0.0.1:$port/" >/dev/null
callgrind_control -i on $proxy >/dev/null 2>&1
ab -q -k -n "$requests" -c 64 "http://127.0.0.1:$port/" >"$work/ab.txt"
callgrind_control -i off $proxy >/dev/null 2>&1
callgrind_control -d $proxy >/dev/null 2>&1
failed=$(awk '/^Failed requests/ {print $3}' "$work/ab.txt")
total=$(awk '/^totals:/ {print $2}' "$work/out".*)
echo "mode=$mode requests=$requests failed=$failed flags='$*' instructions_per_request=$((total / requests))"
