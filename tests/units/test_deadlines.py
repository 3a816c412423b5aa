"""Per-request deadlines (deadlines.py): a dictionary entry each, cancelling only what outlives
its limit."""

from __future__ import annotations

import asyncio

import pytest

from local_lambdas.deadlines import Deadlines


async def _limited(
    deadlines: Deadlines, seconds: float, started: asyncio.Event | None = None
) -> str:
    """Work of `seconds` under `deadlines`, as the proxy runs an exchange."""
    task = deadlines.start()
    if started is not None:
        started.set()
    try:
        await asyncio.sleep(seconds)  # the work itself, not a wait for readiness
        return "done"
    except asyncio.CancelledError:
        if deadlines.stop(task):
            return "timed out"
        raise
    finally:
        deadlines.stop(task)


async def test_deadlines_cancel_only_what_outlives_the_limit() -> None:
    deadlines = Deadlines(0.2)
    results = await asyncio.gather(
        _limited(deadlines, 0.01), _limited(deadlines, 5), _limited(deadlines, 0.05)
    )
    assert list(results) == ["done", "timed out", "done"]
    # A later request gets its own full limit, from a timer armed again.
    assert await _limited(deadlines, 0.1) == "done"
    assert await _limited(deadlines, 5) == "timed out"
    deadlines.close()


async def test_an_outside_cancellation_is_not_a_timeout() -> None:
    deadlines = Deadlines(30)
    started = asyncio.Event()
    task = asyncio.create_task(_limited(deadlines, 30, started))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not deadlines._running and not deadlines._expired
    deadlines.close()
