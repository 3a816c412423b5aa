#!/usr/bin/env bash
# The Windows lane: a real Windows CPython 3.11 under Wine (.ci/setup-windows-python.sh), the package's
# dependencies as win_amd64 wheels from PyPI, and the tests that cover named pipes, job
# objects and the proxy end to end, run by that Windows Python. About 3-4 minutes from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."
setup=.ci/setup-windows-python.sh
wp=${WINPY_DIR:-/tmp/winpy}
bash "$setup" "$wp"
winpath() { local p; p=$(realpath "$1"); printf 'Z:%s' "${p//\//\\}"; }
# pydantic-core from 2.17 on, and watchfiles, are built with a Rust that calls ProcessPrng,
# which Wine 8 does not have: the lane pins the last pydantic that loads there (the package
# asks for pydantic >= 2.5), and leaves out watchfiles (only --watch imports it).
deps=(aiohttp lxml "pydantic==2.6.4" "pydantic-core==2.16.3" tenacity rich orjson pybase64 httptools
      prometheus-client python-dotenv pytest pytest-aiohttp)
"$wp/bin/winwheels" "${deps[@]}"
"$wp/bin/winpip" install -q --no-index --find-links "$(winpath "$wp/wheels")" "${deps[@]}"
# The unit tests that need watchfiles skip themselves here, saying so (units/test_watch.py).
PYTHONPATH=$(winpath .) "$wp/bin/winpy" -m pytest -q -p no:cacheprovider \
  tests/test_windows.py tests/test_cache.py tests/units
