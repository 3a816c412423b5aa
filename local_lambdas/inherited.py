"""What a run inherits from whatever started it and would break it, put right before
anything else (cli.main): a standard stream closed or in an encoding short of Unicode,
signals blocked, SIGCHLD ignored, other descriptors open. A script, a service manager or
another program's spawn may leave any of them so; the proxy then looked fine and was not,
or passed them on. Standard library only: this runs before anything is loaded.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import signal
import sys


def put_right() -> None:
    """The standard streams open and able to say any text, signals delivered and no other
    descriptor passed on to the children, as a terminal's shell leaves a program."""
    _standard_streams_open()
    _standard_streams_say_all()
    _signals_delivered()
    _descriptors_kept()


def _standard_streams_open() -> None:
    """Standard input, output and error open, on the null device where one was closed
    (`local-lambdas ... <&- >&- 2>&-`): with uvloop every child was killed before it ran
    (libuv's spawn asserts that the descriptor it closes is none of 0-2: SIGABRT), and the
    proxy's first socket or pipe would have taken the closed descriptor's number, so that
    a write meant for the terminal went there. Python made the stream None (sys.stdout):
    it is the null device's too, or the output thread failed on it, and a stop waited for
    that thread to finish writing (2 s)."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: this one
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115


def _standard_streams_say_all() -> None:
    """Standard output and error write a character their encoding has not as a JSON escape
    (`caf\\u00e9`), not an error. On an ASCII or Latin-1 stream (PYTHONIOENCODING=ascii,
    LC_ALL=C without UTF-8 mode, a Windows pipe in cp1252) a child's `café` or `日本`, or
    an id's, failed the write, and every line written with it was dropped without a word.
    A JSON escape keeps a --log-format json line JSON; a text line stays readable."""
    codecs.register_error(_ESCAPE, _escaped)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            with contextlib.suppress(ValueError):  # (closed: a test's stream)
                stream.reconfigure(errors=_ESCAPE)


_ESCAPE = "local_lambdas.escape"


def _escaped(error: UnicodeError) -> tuple[str, int]:
    """The codec error handler of _standard_streams_say_all: `\\uXXXX` per UTF-16 unit."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    units = error.object[error.start : error.end].encode("utf-16-be", "surrogatepass")
    escaped = "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))
    return escaped, error.end


def _signals_delivered() -> None:
    """No signal blocked, and SIGCHLD not ignored (POSIX). A blocked mask is inherited
    across exec: with SIGTERM and SIGINT blocked the proxy could not be stopped but by
    SIGKILL. With SIGCHLD ignored the kernel reaps exited children itself, so the standard
    library's loop could not read their exit status ("Unknown child process pid", every
    exit code 255). The children's own start clears both for them already."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
    child = getattr(signal, "SIGCHLD", None)
    if child is not None and signal.getsignal(child) is signal.SIG_IGN:
        with contextlib.suppress(ValueError):  # (not the main thread: a test's run)
            signal.signal(child, signal.SIG_DFL)


def _descriptors_kept() -> None:
    """Descriptors beyond 0-2 that the proxy was started with (a shell's `3>file`, a
    runner's pipes, a make's jobserver) not passed on to its children: uvloop's spawn
    (libuv) passed each inheritable one, where the standard library's loop closes them
    (close_fds); now both alike. Each stays open here, close-on-exec (POSIX)."""
    if sys.platform == "win32":
        return
    folder = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.isdigit() and int(name) > 2:
            with contextlib.suppress(OSError):  # (the listing's own, closed by now)
                os.set_inheritable(int(name), False)
