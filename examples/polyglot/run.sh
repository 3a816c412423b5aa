#!/bin/sh
# Build the C child, then run the polyglot manifest: ./run.sh [local-lambdas options]
set -e
cd "$(dirname "$0")"
CC=${CC:-cc}
if ! command -v "$CC" >/dev/null 2>&1; then
  echo "run.sh: no C compiler ($CC) found; install one (Debian: apt-get install gcc) or set CC" >&2
  exit 1
fi
"$CC" -O2 -Wall -o echo-c echo.c
exec local-lambdas manifest.xml "$@"
