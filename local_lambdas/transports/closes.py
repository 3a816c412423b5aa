"""Whether a child keeps the connections it answers on, for the transports that keep them
(keepalive.py's pipes, upstream.py's HTTP connections).

A child that closes each connection after its first answer without saying so (a one-shot
pipe child put in keep-alive mode, an HTTP server that answers without `Connection: close`
and hangs up) leaves a request sent on a kept connection as it closes it without an answer;
an idempotent one goes again on another (Stale), but one that is not cannot (1 POST in 4,
behind such a server; nginx loses more). So after three connections closed once they
carried one answer each, from a child that never answered twice on one, every request gets
a connection of its own, and the log says so once: learnt once per instance, whatever
its restarts.
"""

from __future__ import annotations

import logging

log = logging.getLogger("local_lambdas.closes")


class Closes:
    """One child instance's, kept across its restarts (link.Link owns it): `kept_on` once a
    connection carried a second answer (the transport sets it), `one_each` once the child
    is seen to close each after one (`dropped`)."""

    def __init__(self, name: str) -> None:
        self.kept_on = False
        self.one_each = False
        self._after_one = 0
        self.name = name  # the process, as the log names it (the address, for one alone)

    def dropped(self, answers: int, told: str) -> None:
        """A kept connection the child closed, after `answers` answers; `told` is what the
        log says (after the process's name) when each request begins to get its own."""
        if answers != 1 or self.kept_on or self.one_each:
            return
        self._after_one += 1
        if self._after_one == 3:
            self.one_each = True
            log.warning("%s: %s", self.name, told)
