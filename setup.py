"""The hot path compiled with mypyc (PERFORMANCE.md): the modules every request runs through
become C extensions, a quarter fewer instructions per request. Everything else is in
pyproject.toml.

Each module stays a plain Python file beside its compiled form, and is what runs wherever the
compiled form cannot: when mypyc or a C compiler is missing (the build says so and goes on
without them), under LOCAL_LAMBDAS_COMPILE=0 at install time, and at run time when a source is
newer than its compiled form or LOCAL_LAMBDAS_PURE=1 is set (local_lambdas/__init__.py).
"""

from __future__ import annotations

import os
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any, cast

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The modules a request runs through, in the fast lane and in each transport's exchange.
HOT = [
    "local_lambdas/lane/http1.py",
    "local_lambdas/lane/answer_heads.py",
    "local_lambdas/head_rules.py",
    "local_lambdas/lane/fastlane.py",
    "local_lambdas/lane/connection.py",
    "local_lambdas/lane/writing.py",
    "local_lambdas/lane/timeouts.py",
    "local_lambdas/lane/answers.py",
    "local_lambdas/lane/requests.py",
    "local_lambdas/lane/message.py",
    "local_lambdas/proxy.py",
    "local_lambdas/request_ids.py",
    "local_lambdas/uvloop_import.py",
    "local_lambdas/aio/handler.py",
    "local_lambdas/supervision/pool.py",
    "local_lambdas/supervision/roster.py",
    "local_lambdas/supervision/child_run.py",
    "local_lambdas/supervision/instance.py",
    "local_lambdas/supervision/route_only.py",
    "local_lambdas/supervision/link.py",
    "local_lambdas/supervision/line.py",
    "local_lambdas/envelope.py",
    "local_lambdas/envelope_answer.py",
    "local_lambdas/envelope_fields.py",
    "local_lambdas/router.py",
    "local_lambdas/deadlines.py",
    "local_lambdas/stats.py",
    "local_lambdas/access_log.py",
    "local_lambdas/admin/inspector.py",
    "local_lambdas/lane/relay.py",
    "local_lambdas/lane/relay_request.py",
    "local_lambdas/forwarding.py",
    "local_lambdas/lane/tunnel.py",
    "local_lambdas/transports/keepalive.py",
    "local_lambdas/transports/pipe.py",
    "local_lambdas/transports/http.py",
    "local_lambdas/transports/upstream.py",
    "local_lambdas/transports/closes.py",
    "local_lambdas/transports/child_connection.py",
    "local_lambdas/transports/exchanging.py",
    "local_lambdas/transports/exchange.py",
    "local_lambdas/transports/exchange_headers.py",
    "local_lambdas/transports/answer_head.py",
    "local_lambdas/transports/sink.py",
]


def _can_compile() -> bool:
    """Whether a C compiler and Python's headers work here: asked first, since mypyc takes
    a minute to find out."""
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    with tempfile.TemporaryDirectory() as scratch:
        probe = Path(scratch, "probe.c")
        probe.write_text("#include <Python.h>\nint main(void) { return 0; }\n")
        try:
            compiler = new_compiler()
            customize_compiler(compiler)
            headers = [sysconfig.get_paths()["include"]]
            compiler.compile([str(probe)], output_dir=scratch, include_dirs=headers)
        except Exception:
            return False
    return True


def _compiled() -> list[Extension]:
    if os.environ.get("LOCAL_LAMBDAS_COMPILE") == "0":
        return []
    if not _can_compile():
        print("local-lambdas: no working C compiler (with Python's headers); the pure-Python "
              "modules will run", file=sys.stderr)  # fmt: skip
        return []
    try:
        from mypyc.build import mypycify

        # Types from the packages pyproject.toml's build requirements bring; the errors of
        # the modules that are not compiled are not the build's to judge (silent), and
        # strictness is the test suite's job.
        extensions = mypycify(
            ["--config-file=", "--ignore-missing-imports", "--follow-imports=silent", *HOT],
            group_name="local_lambdas",
            # A C file a module, compiled side by side (_Dated.build_extension), rather than
            # one file for all, which one compiler process took three minutes over.
            multi_file=True,
        )
    except BaseException as exc:  # mypy reports a failed check with SystemExit
        print(f"local-lambdas: not compiled ({exc!r}); the pure-Python modules will run",
              file=sys.stderr)  # fmt: skip
        return []
    for extension in extensions:
        extension.optional = True  # no C compiler: these are left out, the sources run
    return cast("list[Extension]", extensions)  # setuptools' kind, setuptools being loaded


class _Dated(build_ext):
    """Every build's files dated now: setuptools leaves an extension whose C did not change
    with its old time, and local_lambdas/compiled.py compares the sources with it. Built in
    place, the compiled forms of modules no longer compiled are removed: they would load,
    and fail, for want of their code in the library."""

    def build_extension(self, ext: Extension) -> None:
        """The extension's C files compiled as many at a time as there are cores (the
        compiler's own processes: threads only wait on them); a Unix compiler's, whose
        compile() keeps no state between calls."""
        compile_one = self.compiler.compile
        if self.compiler.compiler_type != "unix":
            super().build_extension(ext)
            return

        def compile_all(sources: list[str], *args: Any, **kwargs: Any) -> list[str]:
            with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                done = pool.map(lambda source: compile_one([source], *args, **kwargs), sources)
                return [built for objects in done for built in objects]

        self.compiler.compile = compile_all
        try:
            super().build_extension(ext)
        finally:
            self.compiler.compile = compile_one

    def run(self) -> None:
        super().run()
        built = {Path(self.get_ext_fullpath(e.name)).resolve() for e in self.extensions}
        for path in built:
            if path.is_file():
                os.utime(path)
        if self.inplace:
            for path in Path("local_lambdas").rglob("*.*"):
                compiled = any(path.name.endswith(s) for s in EXTENSION_SUFFIXES)
                if compiled and path.resolve() not in built:
                    path.unlink()


setup(ext_modules=_compiled(), cmdclass={"build_ext": _Dated})
