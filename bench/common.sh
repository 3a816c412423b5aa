# Sourced by instructions.sh and costs.sh: the benchmark's Node.js child (bench_child.js,
# 100 B answers) behind one local-lambdas process, for ab to drive at 64 connections.
#
#   bench_args REQUESTS "$@"           the script's arguments, [MODE] [REQUESTS] [PROXY
#                                      FLAGS...]: sets $mode, $requests, the array $flags
#   bench_setup TOOL:PACKAGE...        tools from Debian packages when missing; sets $work,
#                                      $manifest, $port, $python; on exit stops $proxy (the
#                                      caller starts it) and removes $work
#   bench_ready                        waits until the proxy answers, then 300 warm-up requests
#   bench_load REQUESTS                REQUESTS more; prints ab's failed-request count
#
# BENCH_CONCURRENCY sets the child's <concurrency> (default 64, as many as ab's connections:
# no request waits for a slot; 16, the default of the envelope modes, makes 48 wait).
# BENCH_CLIENT=browser sends a browser's dozen headers, one changing on every request
# (bench/browser_load.py), rather than ab's four, always the same. BENCH_CONNECTIONS sets
# ab's connections (default 64; 1: each request a turn of the proxy's event loop of its own).
# BENCH_CHANGING=1 has the child's envelope answers change around the body every time (a
# header with a counter), as a child that stamps its answers writes them. BENCH_ROUTES=N
# gives the child N routes more (/fn1/* ...), as a manifest of many functions has; the
# requests still go to /, the last route tried (with ab's repeated head the lane routes the
# first request only: BENCH_CLIENT=browser routes every one).

bench_args() {
  local default=$1
  shift
  mode=${1:-pipe-keepalive}
  requests=${2:-$default}
  flags=("${@:3}")
}

bench_setup() {
  local tool env=""
  for tool in ab:apache2-utils node:nodejs "$@"; do
    command -v "${tool%%:*}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${tool#*:}"; }
  done
  [ "$mode" = passthrough ] && env='<env name="BENCH_PLAIN">1</env>'  # as in bench/run.py
  [ -n "${BENCH_CHANGING:-}" ] && env+='<env name="BENCH_CHANGING">1</env>'  # envelope modes
  for n in $(seq "${BENCH_ROUTES:-0}"); do env+="<route>/fn$n/*</route>"; done
  work=$(mktemp -d /tmp/ll-bench-XXXXXX)
  proxy=""
  trap 'kill $proxy 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
  manifest=$work/manifest.xml
  cat > "$manifest" <<XML
<manifest><process>
  <id>bench</id><executable>node</executable><arg>$PWD/bench/bench_child.js</arg>
  <route>/*</route><communication_mode>$mode</communication_mode>
  <env name="BODY_SIZE">100</env><concurrency>${BENCH_CONCURRENCY:-64}</concurrency>$env
</process></manifest>
XML
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # The real interpreter, not a pyenv shim: valgrind and strace follow no exec.
  python=$(python3 -c 'import sys; print(sys.executable)')
}

bench_ready() {
  for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
  bench_load 300 >/dev/null
}

bench_load() {
  if [ "${BENCH_CLIENT:-ab}" = browser ]; then
    python3 "$PWD/bench/browser_load.py" "$port" "$1" 64
  else
    ab -q -k -n "$1" -c "${BENCH_CONNECTIONS:-64}" "http://127.0.0.1:$port/" \
      | awk '/^Failed requests/ {print $3}'
  fi
}
