"""When an exited child starts again, and after how long: pure logic, no clock of its own.

Each exit is judged from its code and how long the child had been up. Restarts wait
exponentially longer (first_delay, doubled each time, capped at max_delay); a run that lasted
`stable_after` seconds, once ready, wipes the slate clean. After `max_quick_failures` quick
exits in a row the child is given up on (FATAL) until a reload; a process that never became
ready (killed at its <startup_timeout>) counts as a quick exit, however long it ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from local_lambdas.config import Restart


@dataclass(frozen=True)
class Verdict:
    action: Literal["restart", "stay-down", "give-up"]
    delay: float = 0.0


@dataclass
class RestartPolicy:
    restart: Restart = Restart.ALWAYS
    first_delay: float = 0.1
    max_delay: float = 10.0
    max_quick_failures: int = 5
    stable_after: float = 10.0
    quick_failures: int = 0

    def after_exit(self, code: int | None, uptime: float, *, ready: bool = True) -> Verdict:
        """Judge one exit. `code` None means the child never ran (it could not be spawned);
        `ready` False, that it never became ready."""
        if self.restart is Restart.NEVER or (self.restart is Restart.ON_FAILURE and code == 0):
            return Verdict("stay-down")
        if ready and uptime >= self.stable_after:
            self.quick_failures = 0
        self.quick_failures += 1
        if self.quick_failures > self.max_quick_failures:
            return Verdict("give-up")
        delay = self.first_delay * 2 ** (self.quick_failures - 1)
        return Verdict("restart", min(delay, self.max_delay))
