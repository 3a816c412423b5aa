"""The restart policy (supervision/backoff.py): when a child that ended starts again."""

from __future__ import annotations

import pytest

from local_lambdas.config import Restart
from local_lambdas.supervision.backoff import RestartPolicy, Verdict

# (policy, [(exit code, uptime)] -> expected verdicts)
POLICY = [
    (Restart.ALWAYS, [(1, 0.1), (1, 0.1), (0, 0.1)],
     [Verdict("restart", 0.1), Verdict("restart", 0.2), Verdict("restart", 0.4)]),
    (Restart.ALWAYS, [(1, 0.1)] * 6 + [(1, 0.1)],
     [Verdict("restart", d) for d in (0.1, 0.2, 0.4, 0.8, 1.6)] + [Verdict("give-up")] * 2),
    (Restart.ALWAYS, [(1, 0.1), (1, 0.1), (1, 60.0)],
     [Verdict("restart", 0.1), Verdict("restart", 0.2), Verdict("restart", 0.1)]),
    (Restart.ON_FAILURE, [(1, 1.0), (0, 1.0)], [Verdict("restart", 0.1), Verdict("stay-down")]),
    (Restart.NEVER, [(1, 1.0)], [Verdict("stay-down")]),
    (Restart.ALWAYS, [(None, 0.0)], [Verdict("restart", 0.1)]),
]  # fmt: skip


@pytest.mark.parametrize(("restart", "exits", "verdicts"), POLICY)
def test_restart_policy(restart: Restart, exits: list, verdicts: list[Verdict]) -> None:  # type: ignore[type-arg]
    policy = RestartPolicy(restart)
    assert [policy.after_exit(code, uptime) for code, uptime in exits] == verdicts


def test_a_starting_child_at_work_is_not_out_of_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """readiness.Busy: <startup_timeout> counts the seconds since the child last used a tenth
    of a core, up to Busy.LIMIT times it in all; what it says when the time is out."""
    from local_lambdas._compat import processes
    from local_lambdas.supervision import readiness

    now, ticks = [0.0], [0]
    monkeypatch.setattr(processes, "cpu_ticks", lambda pids: ticks[0])
    busy = readiness.Busy(lambda: [1], clock=lambda: now[0])

    def second(used: float) -> bool:  # one second more, `used` of a core meanwhile
        now[0] += 1.0
        ticks[0] += round(used * readiness._HZ)
        return busy.out_of_time(2)

    assert [second(1.0) for _ in range(5)] == [False] * 5  # compiling: never out of time
    assert [second(0.05) for _ in range(2)] == [False, True]  # then idle for 2 s
    assert busy.worked(2) == (
        "not ready after 7s, the last 2s of them without work (<startup_timeout>)"
    )
    busy = readiness.Busy(lambda: [1], clock=lambda: now[0])
    assert [second(1.0), second(0.0)] == [False, True]  # its first second: its start, no work
    assert readiness.Busy(lambda: [1], clock=lambda: now[0]).worked(2) == ""  # not yet waited
    busy = readiness.Busy(lambda: [1], clock=lambda: now[0])  # (`second` asks this one)
    assert not any(second(1.0) for _ in range(2 * readiness.Busy.LIMIT - 1))
    assert second(1.0)  # LIMIT times <startup_timeout> of work: out of time all the same
    assert busy.worked(2) == "not ready after 60s of work (30 times <startup_timeout>)"


def test_backoff_is_capped() -> None:
    policy = RestartPolicy(max_quick_failures=100, max_delay=3.0)
    delays = [policy.after_exit(1, 0).delay for _ in range(10)]
    assert max(delays) == 3.0 and delays == sorted(delays)
