"""CORS answered by the proxy (--cors ORIGIN, <cors>ORIGIN</cors>), so that a front-end on
another origin (localhost:5173) can call the children without each of them implementing it.

For a route whose process has CORS on (its own <cors> list, else the --cors list): a
preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered by the proxy,
204, and never reaches the child; actual answers get Access-Control-Allow-Origin (and
-Credentials unless the list is `*`) and expose X-Request-Id besides the headers the child
exposes. A preflight asking for Private Network Access (Chromium's, from a page on a public
address to one on this machine) is allowed with it for an allowed origin. An origin not in
the list gets no CORS header at all, so the browser refuses, as it should. Where CORS is
off, a child's own CORS headers are left alone; where it is on, the proxy's replace them.
Pure functions over header lists: both HTTP servers use them.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_AGE = "600"  # seconds a browser may keep a preflight's answer
_OWN = frozenset({"access-control-allow-origin", "access-control-allow-credentials",
                  "access-control-expose-headers", "access-control-allow-methods",
                  "access-control-allow-headers", "access-control-max-age",
                  "access-control-allow-private-network"})  # fmt: skip


@dataclass(frozen=True)
class Policy:
    """The origins allowed on a route: `*` for any."""

    origins: frozenset[str]

    @property
    def any_origin(self) -> bool:
        return "*" in self.origins

    def allows(self, origin: str | None) -> bool:
        return origin is not None and (self.any_origin or origin in self.origins)

    def preflight(
        self,
        origin: str | None,
        method: str,
        requested_headers: str | None,
        methods: tuple[str, ...] | None,
        private_network: str | None,
    ) -> list[tuple[str, str]]:
        """The headers of the 204 answer to a preflight (none of CORS's when the origin, or
        the method the route does not take, is refused); `private_network` is its
        Access-Control-Request-Private-Network header."""
        vary = [("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")]
        if not self.allows(origin) or (methods is not None and method not in methods):
            return vary
        headers = [*self._origin(origin), ("Access-Control-Allow-Methods", method)]
        if requested_headers:
            headers.append(("Access-Control-Allow-Headers", requested_headers))
        if private_network is not None and private_network.strip().lower() == "true":
            headers.append(("Access-Control-Allow-Private-Network", "true"))
        return [*headers, ("Access-Control-Max-Age", MAX_AGE), *vary]

    def answer(self, origin: str | None, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """An actual answer's headers, with the child's CORS headers replaced by ours (or
        dropped, for an origin not allowed). The headers the child exposes to scripts stay
        exposed (a page reads its pagination's X-Total-Count), with X-Request-Id."""
        kept = []
        exposed = []
        for name, value in headers:
            lower = name.lower()
            if lower not in _OWN:
                kept.append((name, value))
            elif lower == "access-control-expose-headers":
                exposed += [n.strip() for n in value.split(",") if n.strip()]
        kept.append(("Vary", "Origin"))
        if self.allows(origin):
            if not any(n.lower() == "x-request-id" for n in exposed):
                exposed.append("X-Request-Id")
            kept += [*self._origin(origin), ("Access-Control-Expose-Headers", ", ".join(exposed))]
        return kept

    def _origin(self, origin: str | None) -> list[tuple[str, str]]:
        if self.any_origin:
            return [("Access-Control-Allow-Origin", "*")]
        return [("Access-Control-Allow-Origin", origin or ""),
                ("Access-Control-Allow-Credentials", "true")]  # fmt: skip


def is_preflight(method: str, origin: str | None, requested_method: str | None) -> bool:
    return method == "OPTIONS" and origin is not None and requested_method is not None


def policy_for(own: tuple[str, ...], default: tuple[str, ...]) -> Policy | None:
    """A process's policy: its own <cors> list, else the --cors list; None: CORS is off."""
    origins = own or default
    return Policy(frozenset(origins)) if origins else None
