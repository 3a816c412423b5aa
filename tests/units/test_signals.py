"""Stop signals while a run loads and while it is up (loading_signals.py, run_signals.py)."""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest


def test_run_passes_no_console_event_on_to_its_command_on_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On Windows the console's Ctrl+C and Ctrl+Break reach the command itself, which shares
    the console. (Faked: no console to type in here, nor under the Wine lane; the POSIX
    cases run for real in test_stop_signals.py.)"""
    import signal
    from typing import cast

    from local_lambdas import _compat, run_signals

    class Command:
        def __init__(self) -> None:
            self.sent: list[int] = []

        def send_signal(self, number: int) -> None:
            self.sent.append(number)

    command = Command()
    monkeypatch.setattr(_compat, "IS_WINDOWS", True)
    monkeypatch.setattr(run_signals, "ECHO_SECONDS", 0)  # each signal a new one
    pass_on = run_signals.Stops(None, lambda: None)
    pass_on.starting_command()
    pass_on.started(cast("asyncio.subprocess.Process", command))
    pass_on(signal.SIGINT)
    pass_on(signal.SIGTERM)
    assert command.sent == []
    monkeypatch.setattr(_compat, "IS_WINDOWS", False)
    monkeypatch.setattr(_compat, "in_foreground", lambda: False)
    pass_on(signal.SIGINT)
    assert command.sent == [signal.SIGINT]


def test_a_stop_while_loading_is_taken_once() -> None:
    """The first Ctrl+C or SIGTERM while a run loads stops it (KeyboardInterrupt, said in
    one line); its echo (run_signals.ECHO_SECONDS), raised again while that line was being
    made, ended the run in a traceback instead (13 of 30 runs sent two SIGTERMs 1 ms apart
    in their first 0.2 s)."""
    import signal

    from local_lambdas.loading_signals import Loading

    loading = Loading()
    with pytest.raises(KeyboardInterrupt):
        loading.ctrl_c(signal.SIGTERM, None)
    loading.ctrl_c(signal.SIGINT, None)  # nothing raised
    assert loading.stopped_by == signal.SIGTERM


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX's")
def test_a_group_the_sigterm_ended_still_counts_as_asked_to_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """stop_group sends SIGTERM, then SIGCONT: a group that the SIGTERM ended (reaped at
    once, before the SIGCONT) was asked to stop all the same; taken for none, the stop
    skipped its graceful wait, and what the child left behind (a helper in a session of
    its own) outlived a clean stop. (The reap between the two signals is a race: faked.)"""
    import signal

    from local_lambdas._compat import processes

    sent: list[int] = []

    def killpg(pid: int, sig: int) -> bool:
        sent.append(sig)
        return sig == signal.SIGTERM  # gone by the SIGCONT

    monkeypatch.setattr(processes, "_killpg", killpg)
    assert processes.stop_group(12345)
    assert sent == [signal.SIGTERM, signal.SIGCONT]


@pytest.mark.parametrize(
    ("number", "said", "status"),
    [(signal.SIGINT, "stopped by Ctrl+C", 130), (signal.SIGTERM, "stopped by SIGTERM", 143)],
)
def test_a_stop_as_run_starts_is_said_with_its_keys_or_signal(
    number: int, said: str, status: int
) -> None:
    from local_lambdas.errors import Stopped

    assert (str(Stopped(number)), Stopped(number).status) == (said, status)
